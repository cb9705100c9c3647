import test from 'ava';
import { spawnSync } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fsops } from './fsops.js';
import { linux, MNT_DETACH } from './syscalls.js';
import { createUserNamespace, idMapText, probeIdmap } from './userns.js';

const rtest = process.getuid?.() === 0 ? test.serial : test.serial.skip;

test('idMapText: one line per mapping, as uid_map takes it', (t) => {
  t.is(idMapText([{ containerId: 0, hostId: 231072, length: 65536 }]), '0 231072 65536\n');
});

rtest('createUserNamespace: user, net, ipc and uts pinned, with the maps written', async (t) => {
  const dir = await fs.mkdtemp(join(tmpdir(), 'corral-userns-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  const pins = await createUserNamespace(dir, { uids: [{ containerId: 0, hostId: 231072, length: 65536 }], gids: [{ containerId: 0, hostId: 300000, length: 1000 }] }, linux);
  try {
    t.deepEqual(Object.keys(pins).sort(), ['ipc', 'net', 'user', 'uts']);
    // nsenter into the pinned namespaces: the maps are those written, and the net namespace
    // has only its loopback (it is new).
    const maps = spawnSync('nsenter', [`--user=${pins.user}`, '--', 'cat', '/proc/self/uid_map', '/proc/self/gid_map'], { encoding: 'utf8' });
    t.regex(maps.stdout, /^\s*0\s+231072\s+65536\n\s*0\s+300000\s+1000\n$/, maps.stderr);
    const links = spawnSync('nsenter', [`--net=${pins.net}`, '--', 'ip', '-o', 'link'], { encoding: 'utf8' });
    t.regex(links.stdout, /^1: lo:/);
    t.is(links.stdout.trim().split('\n').length, 1);
    // That the net namespace belongs to the user namespace shows in a container: sysfs mounts
    // there (e2e/tests/userns.e2e.ts).
  } finally {
    for (const p of Object.values(pins)) {
      linux.umount2(p, MNT_DETACH);
      await fs.rm(p);
    }
  }
});

rtest('createUserNamespace: a failure leaves no pin', async (t) => {
  const dir = await fs.mkdtemp(join(tmpdir(), 'corral-userns-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  // Host id 0 with a length past 2^32 is refused by the kernel when the map is written.
  await t.throwsAsync(createUserNamespace(dir, { uids: [{ containerId: 0, hostId: 4294967295, length: 10 }], gids: [{ containerId: 0, hostId: 1, length: 1 }] }, linux));
  t.deepEqual(await fs.readdir(dir), []);
});

rtest('probeIdmap: a local file system can be idmapped; ramfs cannot', async (t) => {
  const dir = await fs.mkdtemp(join(tmpdir(), 'corral-idmap-'));
  t.teardown(() => fs.rm(dir, { recursive: true, force: true }));
  t.deepEqual(await probeIdmap(dir, linux, fsops.mountIdmapped), { ok: true });
  const ram = join(dir, 'ram');
  await fs.mkdir(ram);
  linux.mount('ramfs', ram, 'ramfs', 0, null);
  try {
    const r = await probeIdmap(ram, linux, fsops.mountIdmapped);
    t.false(r.ok);
    t.regex((r as { reason: string }).reason, /mount_setattr/);
    t.deepEqual(await fs.readdir(ram), []);
  } finally {
    linux.umount2(ram, MNT_DETACH);
  }
  t.deepEqual(await fs.readdir(dir), ['ram']);
});
