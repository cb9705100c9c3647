import test from 'ava';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runExecSync } from './exec-sync.js';

test('stdout and stderr are kept apart and each capped', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'execsync-'));
  const r = await runExecSync({
    file: 'sh', args: ['-c', 'yes | head -c 100000; printf err >&2; exit 5'], pidFile: join(dir, 'pid'),
    timeoutMs: 10_000, cmd: ['x'], cap: 1000,
  });
  t.is(r.stdout.length, 1000);
  t.is(r.stderr.toString(), 'err');
  t.is(r.exitCode, 5);
  await rm(dir, { recursive: true });
});

test('at the deadline the process named by the pid file is killed and the call is DeadlineExceeded', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'execsync-'));
  const pf = join(dir, 'pid');
  const t0 = Date.now();
  // the "runtime" (sh) waits for its child like runc exec does; the child is what gets killed
  const err = await t.throwsAsync(runExecSync({
    file: 'sh', args: ['-c', `sleep 30 & echo $! > ${pf}; wait $!; exit $?`], pidFile: pf, timeoutMs: 300, cmd: ['sleep', '30'],
  }));
  t.is((err as any).kind, 'DeadlineExceeded');
  t.regex(err!.message, /timed out after 0.3s/);
  t.true(Date.now() - t0 < 2000);
  await rm(dir, { recursive: true });
});

test('an aborted call kills the process and is Cancelled', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'execsync-'));
  const pf = join(dir, 'pid');
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 200);
  const err = await t.throwsAsync(runExecSync({
    file: 'sh', args: ['-c', `sleep 30 & echo $! > ${pf}; wait $!`], pidFile: pf, timeoutMs: 0, cmd: ['sleep'], signal: ac.signal,
  }));
  t.is((err as any).kind, 'Cancelled');
  await rm(dir, { recursive: true });
});
