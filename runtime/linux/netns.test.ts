/**
 * Root-only: pins real namespaces through the worker thread, checks them from outside with
 * nsenter, and checks that unpinning leaves no mount and no file, and that the daemon's own
 * namespaces never changed.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, promises as fs, readlinkSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { linux } from './syscalls.js';
import { SysctlWriteError, WorkerPinner } from './netns.js';

const run = promisify(execFile);
const canRun = process.getuid?.() === 0 && existsSync('/usr/bin/nsenter');
const rtest = canRun ? test.serial : test.skip;

async function mountsUnder(dir: string): Promise<string[]> {
  const info = await fs.readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m === dir || m.startsWith(`${dir}/`));
}

function ownNs(): string[] {
  return ['net', 'ipc', 'uts'].map((n) => readlinkSync(`/proc/self/ns/${n}`));
}

/** A temp dir and a pinner, both gone (mounts included) after the test. */
async function setup(t: { teardown(fn: () => Promise<void>): void }): Promise<{ base: string; pinner: WorkerPinner }> {
  const base = await fs.mkdtemp(join(tmpdir(), 'corral-pin-'));
  const pinner = new WorkerPinner(linux);
  t.teardown(async () => {
    for (const m of (await mountsUnder(base)).reverse()) await run('umount', ['-l', m]).catch(() => undefined);
    await fs.rm(base, { recursive: true, force: true });
    await pinner.close();
  });
  return { base, pinner };
}

rtest('pin: hostname and sysctls inside the new namespaces, host untouched; unpin leaves nothing', async (t) => {
  const { base, pinner } = await setup(t);
  const before = ownNs();
  const hostPortStart = (await fs.readFile('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8')).trim();
  const dirs = [join(base, 'a'), join(base, 'b')];
  for (const d of dirs) await fs.mkdir(d);
  const a = await pinner.pin({
    dir: dirs[0]!, namespaces: ['net', 'ipc', 'uts'], hostname: 'pod-a',
    sysctls: [['net/ipv4/ip_unprivileged_port_start', '80'], ['kernel/shmmni', '1234']],
  });
  const b = await pinner.pin({ dir: dirs[1]!, namespaces: ['net', 'uts'], hostname: 'pod-b' });
  t.deepEqual(a, { net: join(dirs[0]!, 'net'), ipc: join(dirs[0]!, 'ipc'), uts: join(dirs[0]!, 'uts') });
  t.deepEqual(Object.keys(b), ['net', 'uts']);
  t.is((await run('nsenter', [`--uts=${a.uts}`, 'hostname'])).stdout.trim(), 'pod-a');
  t.is((await run('nsenter', [`--uts=${b.uts}`, 'hostname'])).stdout.trim(), 'pod-b');
  t.is((await run('nsenter', [`--net=${a.net}`, 'cat', '/proc/sys/net/ipv4/ip_unprivileged_port_start'])).stdout.trim(), '80');
  t.is((await run('nsenter', [`--ipc=${a.ipc}`, 'cat', '/proc/sys/kernel/shmmni'])).stdout.trim(), '1234');
  // Only loopback, down, in a fresh netns.
  t.regex((await run('nsenter', [`--net=${a.net}`, 'ip', '-o', 'link'])).stdout, /^1: lo:[^\n]*\n$/);
  // nsfs inode numbers are the namespace ids.
  t.not((await fs.stat(a.net!)).ino, (await fs.stat('/proc/self/ns/net')).ino);
  t.is(`net:[${(await fs.stat(a.net!)).ino}]`, (await run('nsenter', [`--net=${a.net}`, 'readlink', '/proc/self/ns/net'])).stdout.trim());
  t.true(await pinner.isPinned(a.net!));
  t.false(await pinner.isPinned(join(base, 'nothing')));
  // The daemon's thread kept its namespaces, hostname and sysctls.
  t.deepEqual(ownNs(), before);
  t.is(hostname(), (await run('hostname')).stdout.trim());
  t.is((await fs.readFile('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8')).trim(), hostPortStart);

  for (const p of [...Object.values(a), ...Object.values(b)]) await pinner.unpin(p!);
  await pinner.unpin(a.net!); // idempotent
  t.deepEqual(await mountsUnder(base), []);
  for (const d of dirs) t.deepEqual(await fs.readdir(d), []);
});

rtest('pin: a refused sysctl fails with its name and leaves no pin; the worker keeps serving', async (t) => {
  const { base, pinner } = await setup(t);
  const before = ownNs();
  const err = await t.throwsAsync(pinner.pin({ dir: base, namespaces: ['net', 'uts'], hostname: 'x', sysctls: [['net/ipv4/no_such_knob', '1']] }));
  t.true(err instanceof SysctlWriteError);
  t.is((err as SysctlWriteError).sysctl, 'net/ipv4/no_such_knob');
  t.regex(err!.message, /net\.ipv4\.no_such_knob/);
  t.deepEqual(await fs.readdir(base), []);
  t.deepEqual(await mountsUnder(base), []);
  const again = await pinner.pin({ dir: base, namespaces: ['ipc'] });
  t.true(await pinner.isPinned(again.ipc!));
  await pinner.unpin(again.ipc!);
  t.deepEqual(await mountsUnder(base), []);
  t.deepEqual(ownNs(), before);
});
