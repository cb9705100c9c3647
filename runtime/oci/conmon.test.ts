import test from 'ava';
import { mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { conmonCreateArgs, createWithConmon, cleanRuntimeMessage, type ConmonCreateOptions } from './conmon.js';

async function fakeConmonBin(dir: string, body: string): Promise<string> {
  const p = join(dir, 'conmon');
  await writeFile(p, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return p;
}

function opts(dir: string, conmonPath: string): ConmonCreateOptions {
  return {
    conmonPath, id: 'c1', name: 'k8s_c_p_ns_uid_0', bundleDir: join(dir, 'b'),
    runtime: { name: 'runc', path: '/usr/sbin/runc', root: '/run/x', options: ['--debug'], monitorPath: '/usr/sbin/runc' },
    exitDir: join(dir, 'exits'), persistDir: join(dir, 'b'), socketDir: join(dir, 'attach'),
    timeoutMs: 5000, containerPidFile: join(dir, 'b', 'pidfile'), conmonPidFile: join(dir, 'b', 'conmon.pid'),
    logPath: join(dir, 'log'), logSizeMax: 1024,
  };
}

test('arguments follow CRI-O: api v1, runtime root, exit/persist/socket dirs, k8s-file log, size cap', (t) => {
  const a = conmonCreateArgs(opts('/d', '/usr/bin/conmon'));
  const s = a.join(' ');
  t.regex(s, /^--api-version 1 -c c1 -u c1 -n k8s_c_p_ns_uid_0 -r \/usr\/sbin\/runc -b \/d\/b --runtime-arg --root=\/run\/x --runtime-arg --debug/);
  t.regex(s, /--socket-dir-path \/d\/attach --exit-dir \/d\/exits --persist-dir \/d\/b/);
  t.regex(s, /-p \/d\/b\/pidfile -P \/d\/b\/conmon.pid -l k8s-file:\/d\/log/);
  t.regex(s, /--log-size-max 1024/);
});

test('stdin stays open across detaches unless stdin_once', (t) => {
  const open = conmonCreateArgs({ ...opts('/d', '/usr/bin/conmon'), stdin: true });
  t.true(open.includes('-i'));
  t.true(open.includes('--leave-stdin-open'));
  const once = conmonCreateArgs({ ...opts('/d', '/usr/bin/conmon'), stdin: true, stdinOnce: true });
  t.true(once.includes('-i'));
  t.false(once.includes('--leave-stdin-open'));
  t.false(conmonCreateArgs(opts('/d', '/usr/bin/conmon')).includes('--leave-stdin-open'));
});

test('an exec never gets the exit or persist dir (its code would pose as the container exit)', async (t) => {
  const { conmonExecArgs } = await import('./conmon.js');
  const a = conmonExecArgs({ ...opts('/d', '/usr/bin/conmon'), processSpecPath: '/d/p.json', pidFile: '/d/e.pid', execTimeoutSec: 5 });
  t.false(a.includes('--exit-dir'));
  t.false(a.includes('--persist-dir'));
  t.regex(a.join(' '), /-e --exec-process-spec \/d\/p.json -p \/d\/e.pid -l k8s-file:\/d\/log --log-level warning -T 5/);
});

test('waits for the start pipe, then returns the pid from the sync pipe', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'conmon-'));
  // reads the start pipe (fd 4) first, as conmon does, and forks a child that answers
  const bin = await fakeConmonBin(dir, `
cat <&4 > "${dir}/started"
while [ $# -gt 0 ]; do [ "$1" = -P ] && echo 777 > "$2"; shift; done
( sleep 0.1; printf '{"data": 4242}\\n' >&3 ) &
exit 0`);
  const r = await createWithConmon(opts(dir, bin));
  t.deepEqual(r, { pid: 4242, conmonPid: 777 });
  t.is(await readFile(join(dir, 'started'), 'utf8'), '0');
  await rm(dir, { recursive: true });
});

test('a runtime failure reported on the sync pipe becomes the error message', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'conmon-'));
  const bin = await fakeConmonBin(dir, `cat <&4 >/dev/null; printf '{"data": -1, "message": "time=\\\\"x\\\\" level=error msg=\\\\"exec: \\\\\\\\\\\\"nope\\\\\\\\\\\\": not found\\\\""}\\n' >&3; exit 0`);
  const err = await t.throwsAsync(createWithConmon(opts(dir, bin)));
  t.regex(err!.message, /creating container c1 with runc: exec: .*nope.*not found/);
  await rm(dir, { recursive: true });
});

test('conmon exiting non-zero fails with its stderr', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'conmon-'));
  const bin = await fakeConmonBin(dir, `echo "bad option" >&2; exit 1`);
  const err = await t.throwsAsync(createWithConmon(opts(dir, bin)));
  t.regex(err!.message, /exited 1: bad option/);
  await rm(dir, { recursive: true });
});

test('no answer within the timeout is DeadlineExceeded', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'conmon-'));
  const bin = await fakeConmonBin(dir, `cat <&4 >/dev/null; ( sleep 3 ) 3>&3 & exit 0`);
  const err = await t.throwsAsync(createWithConmon({ ...opts(dir, bin), timeoutMs: 300 }));
  t.is((err as any).kind, 'DeadlineExceeded');
  await rm(dir, { recursive: true });
});

test('runc logrus lines are reduced to their messages', (t) => {
  t.is(cleanRuntimeMessage('time="2026" level=error msg="container_linux.go:1: starting \\"x\\" failed"'), 'container_linux.go:1: starting "x" failed');
  t.is(cleanRuntimeMessage('plain'), 'plain');
});

test('joinCgroup writes the pid into the conmon cgroup of each accounting hierarchy (v1) or the one tree (v2)', async (t) => {
  const { joinCgroup } = await import('./conmon.js');
  const root = await mkdtemp(join(tmpdir(), 'cgroot-'));
  await joinCgroup(1234, '/corral-conmon', { mode: 'hybrid', driver: 'cgroupfs', root, controllers: ['cpuset', 'memory', 'pids', 'devices'], unifiedControllers: [] });
  t.is(await readFile(join(root, 'memory', 'corral-conmon', 'cgroup.procs'), 'utf8'), '1234');
  t.is(await readFile(join(root, 'pids', 'corral-conmon', 'cgroup.procs'), 'utf8'), '1234');
  await t.throwsAsync(readFile(join(root, 'cpuset', 'corral-conmon', 'cgroup.procs'), 'utf8'));
  await joinCgroup(99, 'conmon.slice', { mode: 'v2', driver: 'cgroupfs', root, controllers: [], unifiedControllers: [] });
  t.is(await readFile(join(root, 'conmon.slice', 'cgroup.procs'), 'utf8'), '99');
  await rm(root, { recursive: true });
});
