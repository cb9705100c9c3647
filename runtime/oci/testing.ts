/**
 * Test doubles for the OCI runtime layer (used by unit tests only): a fake runtime binary
 * (a Node script speaking the runc command line, keeping state as JSON files under --root)
 * and a fake conmon start that records the container as created.
 *
 * Fake runtime behaviour, per container id, steered by files under --root:
 *   <id>.json          the state (`state` prints it)
 *   <id>.ignore-term   kill TERM does nothing (a process ignoring SIGTERM)
 *   <id>.exit-on-start the container exits at once on start with the code in the file
 *   exit-dir           where kill/exit write conmon-style exit files
 *   calls.log          one JSON argv per call
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { ConmonCreateOptions, ConmonCreateResult } from './conmon.js';

const FAKE_RUNTIME = `
const fs = require('fs'), path = require('path'), cp = require('child_process');
const argv = process.argv.slice(2);
let root = '/tmp/fake-runtime';
const rest = [];
for (let i = 0; i < argv.length; i++) {
  if (argv[i] === '--root') root = argv[++i];
  else if (argv[i].startsWith('--root=')) root = argv[i].slice(7);
  else rest.push(argv[i]);
}
fs.mkdirSync(root, { recursive: true });
fs.appendFileSync(path.join(root, 'calls.log'), JSON.stringify(rest) + '\\n');
const cmd = rest[0];
const flagsWithValue = new Set(['--process', '--pid-file', '--resources']);
const pos = [];
const flags = {};
for (let i = 1; i < rest.length; i++) {
  if (flagsWithValue.has(rest[i])) flags[rest[i]] = rest[++i];
  else if (rest[i].startsWith('--')) flags[rest[i]] = true;
  else pos.push(rest[i]);
}
const id = pos[0];
const sf = () => path.join(root, id + '.json');
const read = () => { try { return JSON.parse(fs.readFileSync(sf(), 'utf8')); } catch { return undefined; } };
const write = (s) => fs.writeFileSync(sf(), JSON.stringify(s));
const fail = (m) => { process.stderr.write(m + '\\n'); process.exit(1); };
const exitWith = (code) => {
  const s = read(); s.status = 'stopped'; write(s);
  const dir = fs.readFileSync(path.join(root, 'exit-dir'), 'utf8').trim();
  fs.writeFileSync(path.join(dir, id), String(code));
};
const has = (suffix) => fs.existsSync(path.join(root, id + suffix));
switch (cmd) {
  case '--version': console.log('fake-runtime version 1.0'); break;
  case 'state': { const s = read(); if (!s) fail('container "' + id + '" does not exist'); console.log(JSON.stringify(s)); break; }
  case 'start': {
    const s = read(); if (!s) fail('container "' + id + '" does not exist');
    if (s.status !== 'created') fail('cannot start a container that is ' + s.status);
    s.status = 'running'; write(s);
    if (has('.exit-on-start')) exitWith(Number(fs.readFileSync(path.join(root, id + '.exit-on-start'), 'utf8')));
    break;
  }
  case 'kill': {
    const s = read(); if (!s) fail('container "' + id + '" does not exist');
    if (s.status !== 'running' && s.status !== 'created') fail('container not running');
    const sig = (pos[1] || 'TERM').replace(/^SIG/, '');
    if (sig === 'TERM' && has('.ignore-term')) break;
    exitWith(128 + (sig === 'KILL' || sig === '9' ? 9 : sig === 'TERM' || sig === '15' ? 15 : sig === 'INT' ? 2 : 1));
    break;
  }
  case 'delete': {
    const s = read(); if (!s) fail('container "' + id + '" does not exist');
    if (s.status === 'running' && !flags['--force']) fail('cannot delete a running container');
    fs.rmSync(sf());
    break;
  }
  case 'update': {
    const input = fs.readFileSync(flags['--resources'] === '-' ? 0 : flags['--resources'], 'utf8');
    fs.writeFileSync(path.join(root, id + '.resources.json'), input);
    break;
  }
  case 'exec': {
    const s = read(); if (!s || s.status !== 'running') fail('container not running');
    const proc = JSON.parse(fs.readFileSync(flags['--process'], 'utf8'));
    const child = cp.spawn(proc.args[0], proc.args.slice(1), { stdio: 'inherit', env: Object.fromEntries(proc.env.map((e) => [e.split('=')[0], e.slice(e.indexOf('=') + 1)])) });
    fs.writeFileSync(flags['--pid-file'], String(child.pid));
    child.on('exit', (code, signal) => process.exit(code === null ? 128 + (signal === 'SIGKILL' ? 9 : 15) : code));
    break;
  }
  default: fail('unknown command ' + cmd);
}
`;

/** Writes the fake runtime into dir; returns its path. */
export async function writeFakeRuntime(dir: string): Promise<string> {
  await fs.mkdir(dir, { recursive: true });
  const p = join(dir, 'fake-runtime');
  await fs.writeFile(p, `#!${process.execPath}\n${FAKE_RUNTIME}`, { mode: 0o755 });
  return p;
}

/** Tells the fake runtime (by its --root) where exit files go. */
export async function setFakeExitDir(root: string, exitDir: string): Promise<void> {
  await fs.mkdir(root, { recursive: true });
  await fs.writeFile(join(root, 'exit-dir'), exitDir);
}

/** A conmon stand-in: records the container as created in the fake runtime's root. */
export function fakeConmon(opts: { pid?: number; fail?: string; conmonPid?: number } = {}): (o: ConmonCreateOptions) => Promise<ConmonCreateResult> {
  return async (o) => {
    if (opts.fail) throw new Error(opts.fail);
    const pid = opts.pid ?? 4242;
    await fs.mkdir(o.runtime.root, { recursive: true });
    await fs.writeFile(join(o.runtime.root, `${o.id}.json`), JSON.stringify({ ociVersion: '1.0.2', id: o.id, pid, status: 'created', bundle: o.bundleDir }));
    await fs.writeFile(o.logPath, '', { flag: 'a' });
    return { pid, conmonPid: opts.conmonPid ?? 0 };
  };
}

export async function fakeCalls(root: string): Promise<string[][]> {
  const text = await fs.readFile(join(root, 'calls.log'), 'utf8').catch(() => '');
  return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as string[]);
}
