import test from 'ava';
import { fastSpawn, fastSpawnAsync, type FastChild } from './spawn.js';

function collect(c: FastChild): Promise<{ code: number | null; signal: string | null; out: string; err: string }> {
  let out = '';
  let err = '';
  c.stdout?.on('data', (b: Buffer) => { out += b.toString(); });
  c.stderr?.on('data', (b: Buffer) => { err += b.toString(); });
  return new Promise((resolve) => c.on('close', (code, signal) => resolve({ code, signal, out, err })));
}

test('exit status, stdout and stderr come back; close follows exit', async (t) => {
  const c = fastSpawn('/bin/sh', ['-c', 'echo out; echo err >&2; exit 7']);
  let exited = false;
  c.on('exit', () => { exited = true; });
  const r = await collect(c);
  t.true(exited);
  t.deepEqual(r, { code: 7, signal: null, out: 'out\n', err: 'err\n' });
});

test('stdin is a pipe that ends; env and cwd are the given ones', async (t) => {
  const c = fastSpawn('/bin/sh', ['-c', 'cat; echo "$FOO"; pwd'], { stdio: ['pipe', 'pipe', 'ignore'], env: { FOO: 'bar', PATH: '/usr/bin:/bin' }, cwd: '/tmp' });
  c.stdin!.end('in\n');
  t.is((await collect(c)).out, 'in\nbar\n/tmp\n');
});

test('a signal is reported by name; a missing binary throws ENOENT at once', async (t) => {
  const c = fastSpawn('/bin/sleep', ['30']);
  const r = collect(c);
  t.true(c.kill('SIGKILL'));
  t.like(await r, { code: null, signal: 'SIGKILL' });
  t.false(c.kill());
  t.throws(() => fastSpawn('/no/such/binary', []), { message: /ENOENT/ });
});

test('the child starts with default signal dispositions and no blocked signal', async (t) => {
  const r = await collect(fastSpawn('/bin/grep', ['-E', '^Sig(Blk|Ign)', '/proc/self/status']));
  t.regex(r.out, /SigBlk:\s+0{16}/);
  // SIGPIPE (13) is ignored by node; the child must not inherit that (bit 12 of SigIgn).
  const ign = BigInt(`0x${/SigIgn:\s+([0-9a-f]+)/.exec(r.out)![1]}`);
  t.is(ign & (1n << 12n), 0n);
});

test('detached: a session of its own; extra fds and fds of ours', async (t) => {
  const r = await collect(fastSpawn('/bin/sh', ['-c', 'ps -o sid= -p $$; echo three >&3'], { detached: true, stdio: ['ignore', 'pipe', 'pipe', 'pipe'] }));
  t.not(Number(r.out.split('\n')[0]), 0);
  const c = fastSpawn('/bin/sh', ['-c', 'echo three >&3'], { stdio: ['ignore', 'ignore', 'ignore', 'pipe'] });
  let three = '';
  c.stdio[3]!.on('data', (b: Buffer) => { three += b.toString(); });
  await new Promise((resolve) => c.on('close', resolve));
  t.is(three, 'three\n');
});

test('many children in parallel are all reaped', async (t) => {
  const rs = await Promise.all(Array.from({ length: 40 }, (_, i) => collect(fastSpawn('/bin/sh', ['-c', `exit ${i % 5}`]))));
  t.deepEqual(rs.map((r) => r.code), Array.from({ length: 40 }, (_, i) => i % 5));
});

test('a source fd numbered like one of the targets reaches its target intact', async (t) => {
  // Our fd 2 given as the child's fd 4 while a pipe becomes its fd 2: without care, the child's
  // fd 4 would be a copy of its new fd 2 (the pipe), not of ours.
  const c = fastSpawn('/bin/sh', ['-c', 'echo to-pipe >&2; echo to-our-stderr >&4'], { stdio: ['ignore', 'ignore', 'pipe', 'ignore', 2] });
  let piped = '';
  c.stderr!.on('data', (b: Buffer) => { piped += b.toString(); });
  await new Promise((resolve) => c.on('close', resolve));
  t.is(piped, 'to-pipe\n');
});

test('fastSpawnAsync: the same child, started from a worker thread; one that exits at once is still reaped; errors reject', async (t) => {
  const c = await fastSpawnAsync('/bin/sh', ['-c', 'read x; echo "got $x"; exit 3'], { stdio: ['pipe', 'pipe', 'ignore'] });
  t.true(c.pid > 0);
  c.stdin!.end('it\n');
  t.deepEqual(await collect(c), { code: 3, signal: null, out: 'got it\n', err: '' });
  // Exits before fastSpawnAsync lists it: its SIGCHLD finds nothing; the reap after the spawn does.
  // Listeners attached right after the await, as callers do (and as with node:child_process, before the next turn of the loop).
  const codes = await Promise.all(Array.from({ length: 20 }, async () => {
    const q = await fastSpawnAsync('/bin/true', [], { stdio: ['ignore', 'ignore', 'ignore'] });
    return new Promise<number | null>((r) => q.on('close', (code: number | null) => r(code)));
  }));
  t.deepEqual(codes, Array(20).fill(0));
  const err = await t.throwsAsync(fastSpawnAsync('/nonexistent/binary', []));
  t.is((err as NodeJS.ErrnoException).code, 'ENOENT');
});
