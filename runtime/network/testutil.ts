/**
 * Fake CNI plugins for tests: small shell scripts that record their environment and stdin
 * and print a canned result or CNI error.
 */
import { promises as fs, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultConfig, type Config } from '../config.js';

export interface FakeBehaviour {
  /** Printed on ADD (JSON). Default: prevResult passes through, or an empty 1.0.0 result. */
  result?: unknown;
  /** Printed on failure with exit status 1 (any command). */
  error?: { code: number; msg: string; details?: string };
  /** Fail only for this command. */
  failOn?: 'ADD' | 'DEL' | 'CHECK';
  /** Raw text on stderr with exit status 2 instead of a CNI error. */
  stderr?: string;
  sleepSeconds?: number;
  /** Sleep only for this command. */
  sleepOn?: 'ADD' | 'DEL' | 'CHECK';
}

export interface Call { plugin: string; env: Record<string, string>; stdin: Record<string, unknown>; at: bigint }

const created: string[] = [];
// The test process removes what it made when it exits, whichever test made it.
process.once('exit', () => {
  for (const d of created) rmSync(d, { recursive: true, force: true });
});

export async function makeTempDirs(): Promise<{ base: string; binDir: string; confDir: string; logDir: string; config: Config }> {
  const base = await fs.mkdtemp(join(tmpdir(), 'corral-cni-'));
  created.push(base);
  const binDir = join(base, 'bin');
  const confDir = join(base, 'net.d');
  const logDir = join(base, 'log');
  await Promise.all([binDir, confDir, logDir].map((d) => fs.mkdir(d, { recursive: true })));
  const config = defaultConfig();
  config.root_dir = join(base, 'root');
  config.cni = { conf_dir: confDir, bin_dirs: [join(base, 'nobin'), binDir], cache_dir: join(base, 'cache') };
  return { base, binDir, confDir, logDir, config };
}

const q = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

export async function fakePlugin(binDir: string, logDir: string, name: string, b: FakeBehaviour = {}): Promise<void> {
  const result = b.result !== undefined ? JSON.stringify(b.result) : '';
  const lines = [
    '#!/bin/sh',
    'in=$(cat)',
    `id=$(date +%s%N)-$$`,
    `env > ${q(logDir)}/$id.${q(name)}.env`,
    `printf '%s' "$in" > ${q(logDir)}/$id.${q(name)}.json`,
  ];
  if (b.sleepSeconds) lines.push(b.sleepOn ? `[ "$CNI_COMMAND" = ${b.sleepOn} ] && sleep ${b.sleepSeconds}` : `sleep ${b.sleepSeconds}`);
  const failCond = b.failOn ? `[ "$CNI_COMMAND" = ${b.failOn} ]` : 'true';
  if (b.error) lines.push(`if ${failCond}; then printf '%s' ${q(JSON.stringify({ cniVersion: '1.0.0', ...b.error }))}; exit 1; fi`);
  if (b.stderr) lines.push(`if ${failCond}; then printf '%s' ${q(b.stderr)} >&2; exit 2; fi`);
  lines.push('[ "$CNI_COMMAND" = ADD ] || exit 0');
  if (result) {
    lines.push(`printf '%s' ${q(result)}`);
  } else {
    // Pass prevResult through, as a meta plugin does; sed keeps this free of jq.
    lines.push(`case "$in" in *'"prevResult"'*) printf '%s' "$in" | sed 's/.*"prevResult":\\({.*}\\)}$/\\1/' | sed 's/,"runtimeConfig":.*$//' ;; *) printf '%s' '{"cniVersion":"1.0.0"}';; esac`);
  }
  const p = join(binDir, name);
  await fs.writeFile(p, lines.join('\n') + '\n', { mode: 0o755 });
}

/** The recorded calls in the order they started. */
export async function readCalls(logDir: string): Promise<Call[]> {
  const names = (await fs.readdir(logDir)).filter((n) => n.endsWith('.env'));
  const calls: Call[] = [];
  for (const n of names) {
    const stem = n.slice(0, -4);
    const m = /^(\d+)-\d+\.(.+)$/.exec(stem)!;
    const ts = m[1]!;
    const plugin = m[2]!;
    const envText = await fs.readFile(join(logDir, n), 'utf8');
    const env: Record<string, string> = {};
    for (const line of envText.split('\n')) {
      const i = line.indexOf('=');
      if (i > 0) env[line.slice(0, i)] = line.slice(i + 1);
    }
    const stdin = JSON.parse(await fs.readFile(join(logDir, `${stem}.json`), 'utf8')) as Record<string, unknown>;
    calls.push({ plugin, env, stdin, at: BigInt(ts) });
  }
  return calls.sort((a, b) => (a.at < b.at ? -1 : a.at > b.at ? 1 : 0));
}

export async function clearCalls(logDir: string): Promise<void> {
  for (const n of await fs.readdir(logDir)) await fs.rm(join(logDir, n));
}
