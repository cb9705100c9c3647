import test from 'ava';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fsops } from '../linux/fsops.js';
import { linux } from '../linux/syscalls.js';
import { silentLogger } from '../util/log.js';
import { Snapshotter } from './snapshotter.js';

const rtest = process.getuid?.() === 0 ? test.serial : test.serial.skip;

async function filled(s: Snapshotter, key: string, file: string) {
  return s.ensure(key, async (dir) => {
    await fs.writeFile(join(dir, file), key);
    return { size: key.length, inodes: 1, implicitDirs: [] };
  });
}

rtest('many layers on long paths mount through fsconfig when mount(2) data would exceed a page', async (t) => {
  // A deep root makes every lowerdir long: 140 layers * ~140 bytes is far over 4096.
  const base = await fs.mkdtemp(join(tmpdir(), 'corral-snap-'));
  const root = join(base, 'd'.repeat(100));
  t.teardown(() => fs.rm(base, { recursive: true, force: true }));
  const s = new Snapshotter(join(root, 'snapshots'), join(root, 'rw'), linux, fsops, silentLogger());
  await s.load();
  const keys: string[] = [];
  for (let i = 0; i < 140; i++) {
    keys.push(`k${i}`);
    await filled(s, `k${i}`, `f${i}`);
  }
  const target = join(base, 'mnt');
  await fs.mkdir(target);
  const m = await s.prepare('ctr', [...keys].reverse(), false);
  t.true(`lowerdir=${m.lowers.join(':')}`.length > 4096);
  s.mount(m, target);
  try {
    t.is(await fs.readFile(join(target, 'f0'), 'utf8'), 'k0');
    t.is(await fs.readFile(join(target, 'f139'), 'utf8'), 'k139');
    await fs.writeFile(join(target, 'new'), 'x');
    t.is(await fs.readFile(join(root, 'rw', 'ctr', 'upper', 'new'), 'utf8'), 'x');
  } finally {
    await s.release('ctr', target);
  }
  await t.throwsAsync(fs.access(join(target, 'f0')));
  await t.throwsAsync(fs.access(join(root, 'rw', 'ctr')));
  // Idempotent.
  await s.release('ctr', target);
});

rtest('ensure joins concurrent fills of one key and leaves nothing when a fill fails', async (t) => {
  const base = await fs.mkdtemp(join(tmpdir(), 'corral-snap-'));
  t.teardown(() => fs.rm(base, { recursive: true, force: true }));
  const s = new Snapshotter(join(base, 'snapshots'), join(base, 'rw'), linux, fsops, silentLogger());
  await s.load();
  let fills = 0;
  const fill = async (dir: string) => {
    fills++;
    await new Promise((r) => setTimeout(r, 20));
    await fs.writeFile(join(dir, 'x'), 'x');
    return { size: 1, inodes: 1, implicitDirs: [] };
  };
  const [a, b] = await Promise.all([s.ensure('same', fill), s.ensure('same', fill)]);
  t.is(fills, 1);
  t.is(a, b);
  await t.throwsAsync(s.ensure('bad', async () => { throw new Error('boom'); }), { message: 'boom' });
  t.deepEqual((await fs.readdir(join(base, 'snapshots'))).sort(), [String(a.n)]);
  // A restart finds the committed snapshot again.
  const again = new Snapshotter(join(base, 'snapshots'), join(base, 'rw'), linux, fsops, silentLogger());
  await again.load();
  t.is(again.get('same')?.n, a.n);
});

rtest('a view (image volume) is read-only, works with one layer and through fsconfig, survives a reload and is released', async (t) => {
  const base = await fs.mkdtemp(join(tmpdir(), 'corral-snap-'));
  t.teardown(() => fs.rm(base, { recursive: true, force: true }));
  const make = async () => {
    const s = new Snapshotter(join(base, 'snapshots'), join(base, 'rw'), linux, fsops, silentLogger());
    await s.load();
    return s;
  };
  let s = await make();
  await filled(s, 'one', 'f1');
  await filled(s, 'two', 'f2');
  const single = join(base, 'single');
  const both = join(base, 'both');
  s.mount(await s.prepareView('c1.iv0', ['one'], single), await fs.mkdir(single).then(() => single));
  const m = await s.prepareView('c1.iv1', ['two', 'one'], both);
  t.is(m.upper, '');
  await fs.mkdir(both);
  fsops.mountOverlayFsconfig(m.lowers, m.upper, m.work, both, true);
  t.is(await fs.readFile(join(single, 'f1'), 'utf8'), 'one');
  t.is(await fs.readFile(join(both, 'f2'), 'utf8'), 'two');
  t.is(await fs.readFile(join(both, 'f1'), 'utf8'), 'one');
  await t.throwsAsync(fs.writeFile(join(both, 'x'), ''), { code: 'EROFS' });
  t.deepEqual(s.containerIds(), []);
  t.deepEqual([...s.inUseByContainers()].sort(), ['one', 'two']);

  s = await make(); // a daemon restart: the views are known again, with their mount points
  t.deepEqual(s.viewKeys('c1.iv').sort(), ['c1.iv0', 'c1.iv1']);
  for (const k of s.viewKeys()) await s.releaseView(k);
  const mi = await fs.readFile('/proc/self/mountinfo', 'utf8');
  t.false(mi.includes(single) || mi.includes(both), 'unmounted');
  t.deepEqual(s.viewKeys(), []);
  t.deepEqual([...s.inUseByContainers()], []);
  t.deepEqual(await fs.readdir(join(base, 'rw')), []);
});
