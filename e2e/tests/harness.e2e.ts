/**
 * The harness' own leak check, proven on leftovers made on purpose: a process carrying the run's
 * marker, a mount under the harness dir, a cgroup and an iptables chain naming one of the
 * daemon's ids, a veth on the harness bridge. Each must be reported, then removed by cleanup(),
 * and a second look must find nothing.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { runOk, run, sleep } from '../harness/exec.js';
import { cleanup, findLeaks, readMounts, takeSnapshot, type LeakScope } from '../harness/leaks.js';

test('leftovers are found, attributed and cleaned up', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'corral-e2e-selftest-'));
  const id = randomBytes(32).toString('hex');
  const marker = randomBytes(8).toString('hex');
  const bridge = `crlt${marker.slice(0, 6)}`;
  const veth = `vt${marker.slice(0, 8)}`;
  const chain = `CNI-DN-t${marker.slice(0, 10)}`;
  const cgroupRoot = existsSync('/sys/fs/cgroup/pids/cgroup.procs') ? '/sys/fs/cgroup/pids' : '/sys/fs/cgroup';
  const cgroup = join(cgroupRoot, `corral-selftest-${id}`);
  const scope: LeakScope = { dir, marker, bridge, ids: [id], exclusive: false };
  const before = await takeSnapshot();
  const child = spawn('sleep', ['600'], { env: { ...process.env, CORRAL_E2E_RUN: marker }, stdio: 'ignore' });
  try {
    mkdirSync(join(dir, 'mnt'));
    await runOk('mount', ['-t', 'tmpfs', 'selftest', join(dir, 'mnt')]);
    mkdirSync(cgroup);
    await runOk('ip', ['link', 'add', bridge, 'type', 'bridge']);
    await runOk('ip', ['link', 'add', veth, 'type', 'veth', 'peer', 'name', `${veth}p`]);
    await runOk('ip', ['link', 'set', veth, 'master', bridge]);
    await runOk('iptables', ['-w', '-t', 'nat', '-N', chain]);
    await runOk('iptables', ['-w', '-t', 'nat', '-A', chain, '-m', 'comment', '--comment', `id: "${id}"`, '-j', 'RETURN']);
    await runOk('iptables', ['-w', '-t', 'nat', '-A', 'OUTPUT', '-d', '127.0.0.254/32', '-j', chain]);

    const found = (await findLeaks(before, scope)).filter((l) => !l.note);
    const has = (kind: string, what: string) => found.some((l) => l.kind === kind && l.what.includes(what));
    t.true(has('process', String(child.pid)), JSON.stringify(found));
    t.true(has('mount', join(dir, 'mnt')), JSON.stringify(found));
    t.true(has('cgroup', cgroup), JSON.stringify(found));
    t.true(has('link', veth), JSON.stringify(found));
    t.true(has('iptables', chain), JSON.stringify(found));

    const problems = await cleanup(before, scope);
    t.deepEqual(problems, []);
    await sleep(100);
    t.false(existsSync(cgroup));
    t.false(readMounts().some((m) => m.point.startsWith(dir)));
    t.not((await run('ip', ['link', 'show', bridge])).code, 0, 'bridge removed');
    t.not((await run('ip', ['link', 'show', veth])).code, 0, 'veth removed');
    t.not((await run('iptables', ['-w', '-t', 'nat', '-S', chain])).code, 0, 'chain removed');
    t.false((await run('iptables-save', ['-t', 'nat'])).stdout.includes(chain), 'no rule jumps to it');
    t.is(child.exitCode ?? child.signalCode, 'SIGKILL');
    t.deepEqual((await findLeaks(before, scope)).filter((l) => !l.note), []);
  } finally {
    // Whatever an assertion left: undo by hand, ignoring errors.
    try { child.kill('SIGKILL'); } catch { /* gone */ }
    await run('umount', ['-l', join(dir, 'mnt')]);
    await run('rmdir', [cgroup]);
    await run('ip', ['link', 'del', veth]);
    await run('ip', ['link', 'del', bridge]);
    await run('iptables', ['-w', '-t', 'nat', '-D', 'OUTPUT', '-d', '127.0.0.254/32', '-j', chain]);
    await run('iptables', ['-w', '-t', 'nat', '-F', chain]);
    await run('iptables', ['-w', '-t', 'nat', '-X', chain]);
    if (!readMounts().some((m) => m.point.startsWith(dir))) rmSync(dir, { recursive: true, force: true });
  }
});
