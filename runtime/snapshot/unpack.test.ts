import test from 'ava';
import { promises as fs, constants as C } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fsops } from '../linux/fsops.js';
import { writeTar, type WEntry } from './tar-writer.js';
import { unpackLayer } from './unpack.js';

const root = process.getuid?.() === 0;
const rtest = root ? test : test.skip;

interface Sandbox { base: string; root: string; outside: string }

/** A layer root next to an "outside" directory holding a victim file and a victim dir. */
async function sandbox(): Promise<Sandbox> {
  const base = await fs.mkdtemp(join(tmpdir(), 'corral-unpack-'));
  const r = join(base, 'root');
  const outside = join(base, 'outside');
  await fs.mkdir(r);
  await fs.mkdir(join(outside, 'dir'), { recursive: true });
  await fs.writeFile(join(outside, 'victim'), 'original\n');
  await fs.writeFile(join(outside, 'dir', 'victim'), 'original\n');
  return { base, root: r, outside };
}

async function outsideState(s: Sandbox): Promise<string> {
  const names = (await fs.readdir(s.outside, { recursive: true })).sort();
  const parts = [names.join(',')];
  for (const n of names) {
    const st = await fs.lstat(join(s.outside, n));
    parts.push(`${n}:${st.mode}:${st.isFile() ? await fs.readFile(join(s.outside, n), 'utf8') : ''}`);
  }
  const dst = await fs.lstat(join(s.outside, 'dir'));
  parts.push(String(fsops.lgetxattr(join(s.outside, 'dir'), 'trusted.overlay.opaque') ?? ''), String(dst.mode));
  return parts.join('|');
}

function unpack(s: Sandbox, entries: WEntry[]) {
  return unpackLayer(s.root, [writeTar(entries)], fsops);
}

const hostile: Array<[string, (s: Sandbox) => WEntry[], string]> = [
  ['.. in the name', () => [{ name: '../outside/pwned', data: 'x' }], '../outside/pwned'],
  ['.. after a dir', () => [{ name: 'etc/', type: 'dir' }, { name: 'etc/../../outside/victim', data: 'x' }], 'etc/../../outside/victim'],
  ['absolute name', (s) => [{ name: `${s.outside}/victim`, data: 'x' }], '/outside/victim'],
  ['absolute dir name', (s) => [{ name: `${s.outside}/newdir/`, type: 'dir' }], '/outside/newdir'],
  ['write through an absolute symlink', (s) => [{ name: 'esc', type: 'symlink', linkname: s.outside }, { name: 'esc/victim', data: 'x' }], 'esc/victim'],
  ['write through a relative symlink', () => [{ name: 'up', type: 'symlink', linkname: '../outside' }, { name: 'up/victim', data: 'x' }], 'up/victim'],
  ['write through a symlink chain', () => [
    { name: 'a', type: 'symlink', linkname: 'b' }, { name: 'b', type: 'symlink', linkname: '../outside' }, { name: 'a/dir/victim', data: 'x' },
  ], 'a/dir/victim'],
  ['mkdir through a symlink', (s) => [{ name: 'esc', type: 'symlink', linkname: s.outside }, { name: 'esc/newdir/', type: 'dir' }], 'esc/newdir'],
  ['hard link to an absolute path', (s) => [{ name: 'h', type: 'link', linkname: `${s.outside}/victim` }, { name: 'h', data: 'x' }], '"h"'],
  ['hard link climbing out', () => [{ name: 'h', type: 'link', linkname: '../outside/victim' }], '"h"'],
  ['hard link through a symlink', (s) => [{ name: 'esc', type: 'symlink', linkname: s.outside }, { name: 'h', type: 'link', linkname: 'esc/victim' }], '"h"'],
  ['whiteout climbing out', () => [{ name: '../outside/.wh.victim', data: '' }], '.wh.victim'],
  ['absolute whiteout', (s) => [{ name: `${s.outside}/.wh.victim`, data: '' }], '.wh.victim'],
  ['whiteout through a symlink', (s) => [{ name: 'esc', type: 'symlink', linkname: s.outside }, { name: 'esc/.wh.victim', data: '' }], 'esc/.wh.victim'],
  ['opaque marker outside', () => [{ name: '../outside/dir/.wh..wh..opq', data: '' }], '.wh..wh..opq'],
  ['opaque marker through a symlink', (s) => [{ name: 'esc', type: 'symlink', linkname: `${s.outside}/dir` }, { name: 'esc/.wh..wh..opq', data: '' }], 'esc/.wh..wh..opq'],
  ['device through a symlink', (s) => [{ name: 'esc', type: 'symlink', linkname: s.outside }, { name: 'esc/null', type: 'char', devmajor: 1, devminor: 3 }], 'esc/null'],
];

for (const [title, entries, named] of hostile) {
  rtest(`hostile layer is rejected and nothing outside changes: ${title}`, async (t) => {
    const s = await sandbox();
    try {
      const before = await outsideState(s);
      const err = await t.throwsAsync(unpack(s, entries(s)));
      t.regex(err!.message, /layer rejected: entry/);
      t.true(err!.message.includes(named), err!.message);
      t.is(await outsideState(s), before);
    } finally {
      await fs.rm(s.base, { recursive: true, force: true });
    }
  });
}

rtest('a file written over a symlink replaces the link, not its target', async (t) => {
  const s = await sandbox();
  try {
    const before = await outsideState(s);
    await unpack(s, [{ name: 'v', type: 'symlink', linkname: join(s.outside, 'victim') }, { name: 'v', data: 'mine\n' }]);
    t.is(await outsideState(s), before);
    const st = await fs.lstat(join(s.root, 'v'));
    t.true(st.isFile());
    t.is(await fs.readFile(join(s.root, 'v'), 'utf8'), 'mine\n');
  } finally {
    await fs.rm(s.base, { recursive: true, force: true });
  }
});

rtest('symlinks pointing out are kept as links (only writing through them is refused)', async (t) => {
  const s = await sandbox();
  try {
    await unpack(s, [{ name: 'bin/', type: 'dir' }, { name: 'bin/sh', type: 'symlink', linkname: '/bin/busybox' }, { name: 'lib', type: 'symlink', linkname: 'usr/lib' },
      { name: 'usr/lib/x', data: 'x' }, { name: 'lib/y', data: 'y' }]);
    t.is(await fs.readlink(join(s.root, 'bin/sh')), '/bin/busybox');
    // A relative link inside the root is followed, with the write landing inside.
    t.is(await fs.readFile(join(s.root, 'usr/lib/y'), 'utf8'), 'y');
  } finally {
    await fs.rm(s.base, { recursive: true, force: true });
  }
});

rtest('whiteouts become overlay whiteouts', async (t) => {
  const s = await sandbox();
  try {
    await unpack(s, [
      { name: 'etc/', type: 'dir' },
      { name: 'etc/.wh.passwd', data: '' },
      { name: '.wh.gone', data: '' },
      { name: 'opq/', type: 'dir' },
      { name: 'opq/.wh..wh..opq', data: '' },
      { name: 'opq/kept', data: 'k' },
      { name: '.wh..wh.plnk', data: '' },
    ]);
    for (const p of ['etc/passwd', 'gone']) {
      const st = await fs.lstat(join(s.root, p));
      t.true(st.isCharacterDevice(), p);
      t.is(st.rdev, 0);
    }
    t.is(fsops.lgetxattr(join(s.root, 'opq'), 'trusted.overlay.opaque')?.toString(), 'y');
    t.is(await fs.readFile(join(s.root, 'opq/kept'), 'utf8'), 'k');
    await t.throwsAsync(fs.lstat(join(s.root, '.wh.gone')));
    await t.throwsAsync(fs.lstat(join(s.root, '.wh..wh.plnk')));
  } finally {
    await fs.rm(s.base, { recursive: true, force: true });
  }
});

rtest('ownership, modes, setuid, xattrs, links, devices, fifos and mtimes are preserved', async (t) => {
  const s = await sandbox();
  try {
    const cap = Buffer.from('0100000200200000000000000000000000000000', 'hex');
    const stats = await unpack(s, [
      { name: 'd/', type: 'dir', mode: 0o750, uid: 1000, gid: 1001, mtime: 1_000_000_000 },
      { name: 'd/suid', data: '#!/bin/sh\n', mode: 0o4755, uid: 0, gid: 0, mtime: 1_200_000_000 },
      { name: 'd/cap', data: 'bin', mode: 0o755, xattrs: { 'security.capability': cap, 'user.note': 'hi' } },
      { name: 'd/owned', data: 'o', mode: 0o640, uid: 1234, gid: 5678 },
      { name: 'd/hl', type: 'link', linkname: 'd/owned' },
      { name: 'd/sl', type: 'symlink', linkname: 'owned', uid: 1234, gid: 5678 },
      { name: 'd/null', type: 'char', devmajor: 1, devminor: 3, mode: 0o666 },
      { name: 'd/loop', type: 'block', devmajor: 7, devminor: 0, mode: 0o660 },
      { name: 'd/fifo', type: 'fifo', mode: 0o600 },
      { name: `d/${'long'.repeat(40)}`, data: 'long name' },
    ]);
    const st = (p: string) => fs.lstat(join(s.root, p));
    t.is((await st('d/suid')).mode & 0o7777, 0o4755);
    t.is((await st('d')).mode & 0o7777, 0o750);
    t.is((await st('d')).uid, 1000);
    t.is((await st('d')).gid, 1001);
    t.is((await st('d')).mtimeMs, 1_000_000_000_000);
    t.is((await st('d/suid')).mtimeMs, 1_200_000_000_000);
    t.deepEqual(fsops.lgetxattr(join(s.root, 'd/cap'), 'security.capability'), cap);
    t.is(fsops.lgetxattr(join(s.root, 'd/cap'), 'user.note')?.toString(), 'hi');
    t.is((await st('d/owned')).uid, 1234);
    t.is((await st('d/owned')).ino, (await st('d/hl')).ino);
    t.is((await st('d/sl')).uid, 1234);
    t.is(await fs.readlink(join(s.root, 'd/sl')), 'owned');
    t.true((await st('d/null')).isCharacterDevice());
    t.is((await st('d/null')).rdev, (1 << 8) | 3);
    t.true((await st('d/loop')).isBlockDevice());
    t.true((await st('d/fifo')).isFIFO());
    t.is(await fs.readFile(join(s.root, `d/${'long'.repeat(40)}`), 'utf8'), 'long name');
    t.true(stats.inodes >= 9);
    t.is(stats.size, '#!/bin/sh\n'.length + 3 + 1 + 9);
  } finally {
    await fs.rm(s.base, { recursive: true, force: true });
  }
});

rtest('an entry replaces what an earlier entry put at its path', async (t) => {
  const s = await sandbox();
  try {
    const stats = await unpack(s, [
      { name: 'x/', type: 'dir' }, { name: 'x/inner', data: 'i' },
      { name: 'x', data: 'now a file' },
      { name: 'y', data: 'file' },
      { name: 'y/', type: 'dir' },
      { name: 'y/z', data: 'z' },
      { name: 'implicit/a/b', data: 'b' },
    ]);
    t.is(await fs.readFile(join(s.root, 'x'), 'utf8'), 'now a file');
    t.is(await fs.readFile(join(s.root, 'y/z'), 'utf8'), 'z');
    t.deepEqual(stats.implicitDirs.sort(), ['implicit', 'implicit/a']);
    const fd = await fs.open(join(s.root, 'x'), C.O_RDONLY | C.O_NOFOLLOW);
    await fd.close();
  } finally {
    await fs.rm(s.base, { recursive: true, force: true });
  }
});

test('a truncated or corrupt tar is an error, not a partial success', async (t) => {
  const s = await sandbox();
  try {
    const tar = writeTar([{ name: 'a', data: 'x'.repeat(2000) }]);
    await t.throwsAsync(unpackLayer(s.root, [tar.subarray(0, 1024)], fsops), { message: /unexpected end/ });
    const bad = Buffer.from(tar);
    bad[0] = bad[0]! ^ 0xff;
    await t.throwsAsync(unpackLayer(s.root, [bad], fsops), { message: /checksum/ });
  } finally {
    await fs.rm(s.base, { recursive: true, force: true });
  }
});
