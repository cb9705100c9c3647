import test from 'ava';
import { spawn, execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import net from 'node:net';
import { execProcessSpec, startFailureCode } from './exec.js';
import { NetnsPortForwardBackend } from './portforward.js';
import { ResizeEvents } from './types.js';

test('startFailureCode: 255 from the runtime with its "not found" message is 127, permission is 126', (t) => {
  t.is(startFailureCode(255, 'executable file `nosuch` not found in $PATH: No such file or directory'), 127);
  t.is(startFailureCode(255, 'exec failed: unable to start container process: exec: "/x": permission denied'), 126);
  t.is(startFailureCode(255, 'something else'), 255);
  t.is(startFailureCode(3, 'not found'), 3);
});

test('execProcessSpec: the container process with the command, terminal and TERM', (t) => {
  const base = { terminal: false, args: ['nginx'], env: ['PATH=/bin'], cwd: '/srv', user: { uid: 5, gid: 6 } };
  const p = execProcessSpec(base, ['sh', '-c', 'id'], true, { width: 80, height: 24 });
  t.deepEqual(p.args, ['sh', '-c', 'id']);
  t.true(p.terminal);
  t.deepEqual(p.env, ['PATH=/bin', 'TERM=xterm']);
  t.deepEqual(p.consoleSize, { height: 24, width: 80 });
  t.is(p.cwd, '/srv');
  t.deepEqual((p as { user?: unknown }).user, { uid: 5, gid: 6 });
  t.deepEqual(base.args, ['nginx'], 'the container spec is not changed');
  const q = execProcessSpec({ ...base, env: ['TERM=vt100'] }, ['ls'], false);
  t.false(q.terminal);
  t.deepEqual(q.env, ['TERM=vt100']);
  t.is(q.consoleSize, undefined);
});

test('ResizeEvents keeps the latest size and drops nonsense', (t) => {
  const r = new ResizeEvents();
  const seen: unknown[] = [];
  const off = r.onResize((s) => seen.push(s));
  r.push({ width: 80, height: 24 });
  r.push({ width: -1, height: 24 });
  r.push({ width: 1.5, height: 24 });
  off();
  r.push({ width: 100, height: 30 });
  t.deepEqual(seen, [{ width: 80, height: 24 }]);
  t.deepEqual(r.current, { width: 100, height: 30 });
});

const isRoot = process.getuid?.() === 0;
function hasCmd(cmd: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

(isRoot && hasCmd('ip') && hasCmd('socat') ? test.serial : test.skip)('port-forward dials 127.0.0.1 inside the pod netns, not the host loopback', async (t) => {
  const name = `corral-pf-${randomBytes(4).toString('hex')}`;
  execFileSync('ip', ['netns', 'add', name]);
  const port = 20000 + Math.floor(Math.random() * 20000);
  // The same port on the host's loopback answers differently: a dial that leaks out would show it.
  const host = net.createServer((c) => c.end('host\n'));
  await new Promise<void>((r) => host.listen(port, '127.0.0.1', () => r()));
  const inside = spawn('ip', ['netns', 'exec', name, 'sh', '-c', `ip link set lo up && exec socat TCP-LISTEN:${port},bind=127.0.0.1,fork SYSTEM:'echo pod'`], { stdio: 'ignore' });
  const backend = new NetnsPortForwardBackend({ get: (id) => ({ id, namespaces: id === 'hostnet' ? {} : { net: `/run/netns/${name}` } }) });
  try {
    const read = (s: NodeJS.ReadableStream) => new Promise<string>((resolve) => {
      let text = '';
      s.on('data', (b: Buffer) => { text += b.toString(); });
      s.on('end', () => resolve(text));
    });
    let got = '';
    for (let i = 0; i < 50 && got === ''; i++) {
      try {
        got = await read(await backend.connect('pod', port));
      } catch {
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    t.is(got, 'pod\n');
    t.is(await read(await backend.connect('hostnet', port)), 'host\n');
    const err = await t.throwsAsync(backend.connect('pod', port === 65535 ? port - 1 : port + 1));
    t.regex(err!.message, /ECONNREFUSED/);
  } finally {
    inside.kill('SIGKILL');
    host.close();
    await backend.close();
    await new Promise((r) => setTimeout(r, 100));
    execFileSync('ip', ['netns', 'del', name]);
  }
});
