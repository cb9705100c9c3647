import test from 'ava';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync, chmodSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { normalizeEntries, readTar, writeTar, DEFAULT_MTIME, type TarEntry } from './tar.js';
import { euidProgram } from './elf.js';

const cap = Buffer.from([0x01, 0x00, 0x00, 0x02, 0x00, 0x20, 0x00, 0x00, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
const longName = 'deep/' + 'x'.repeat(120) + '/file.txt';

const sample = (): TarEntry[] => [
  { type: 'dir', path: 'etc/' },
  { type: 'file', path: 'etc/passwd', data: Buffer.from('root:x:0:0::/root:/bin/sh\n') },
  { type: 'file', path: 'bin/suid', data: Buffer.from('x'), mode: 0o4755, uid: 0, gid: 0 },
  { type: 'file', path: 'bin/cap', data: Buffer.from('y'), mode: 0o755, xattrs: { 'security.capability': cap } },
  { type: 'symlink', path: 'bin/sh', target: 'busybox' },
  { type: 'hardlink', path: 'bin/ls', target: 'bin/suid' },
  { type: 'file', path: longName, data: Buffer.from('long\n'), uid: 1100, gid: 1200 },
];

test('writeTar is deterministic and readTar reads back every field', (t) => {
  const a = writeTar(sample());
  const b = writeTar(sample());
  t.true(a.equals(b));
  t.is(a.length % 512, 0);
  const entries = readTar(a);
  t.deepEqual(entries.map((e) => e.path), ['etc/', 'etc/passwd', 'bin/suid', 'bin/cap', 'bin/sh', 'bin/ls', longName]);
  const byPath = new Map(entries.map((e) => [e.path, e]));
  t.is(byPath.get('bin/suid')!.mode, 0o4755);
  t.is(byPath.get('bin/sh')!.type, 'symlink');
  t.is(byPath.get('bin/sh')!.linkname, 'busybox');
  t.is(byPath.get('bin/ls')!.type, 'hardlink');
  t.true(byPath.get('bin/cap')!.xattrs['security.capability'].equals(cap));
  t.is(byPath.get(longName)!.data.toString(), 'long\n');
  t.is(byPath.get(longName)!.uid, 1100);
  for (const e of entries) t.is(e.mtime, DEFAULT_MTIME);
});

test('GNU tar accepts the archive: names, PAX long paths, modes, links and xattrs', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'corral-tar-test-'));
  try {
    const tarFile = join(dir, 'x.tar');
    writeFileSync(tarFile, writeTar(normalizeEntries([...sample(), { type: 'file', path: 'bin/busybox', data: Buffer.from('bb') }])));
    const listing = execFileSync('tar', ['-tvf', tarFile], { encoding: 'utf8' });
    t.regex(listing, /-rwsr-xr-x 0\/0 .* bin\/suid/);
    t.regex(listing, /bin\/sh -> busybox/);
    t.regex(listing, /bin\/ls link to bin\/suid/);
    t.true(listing.includes(longName));
    const out = join(dir, 'out');
    execFileSync('mkdir', [out]);
    execFileSync('tar', ['--xattrs', '--xattrs-include=*', '-xf', tarFile, '-C', out]);
    t.is(execFileSync('cat', [join(out, longName)], { encoding: 'utf8' }), 'long\n');
    const ino = (p: string): string => execFileSync('stat', ['-c', '%i', join(out, p)], { encoding: 'utf8' });
    t.is(ino('bin/ls'), ino('bin/suid'));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('normalizeEntries sorts, adds parent directories and puts hard links after their target', (t) => {
  const out = normalizeEntries([
    { type: 'hardlink', path: 'usr/bin/[', target: 'bin/busybox' },
    { type: 'file', path: 'bin/busybox', data: Buffer.from('bb') },
    { type: 'hardlink', path: 'bin/ash', target: 'bin/busybox' },
    { type: 'file', path: './etc/x', data: Buffer.from('1') },
    { type: 'file', path: 'etc/x', data: Buffer.from('2') },
  ]);
  t.deepEqual(out.map((e) => e.path), ['bin/', 'bin/busybox', 'bin/ash', 'etc/', 'etc/x', 'usr/', 'usr/bin/', 'usr/bin/[']);
  const x = out.find((e) => e.path === 'etc/x');
  t.is(x?.type === 'file' ? x.data.toString() : '', '2');
});

test('hostile names are written verbatim (no normalization in writeTar)', (t) => {
  const tar = writeTar([
    { type: 'file', path: '../../escape', data: Buffer.from('x') },
    { type: 'file', path: '/abs/path', data: Buffer.from('y') },
  ]);
  t.deepEqual(readTar(tar).map((e) => e.path), ['../../escape', '/abs/path']);
});

test('the hand-made ELF prints the effective uid', (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'corral-elf-test-'));
  try {
    const bin = join(dir, 'euid');
    writeFileSync(bin, euidProgram());
    chmodSync(bin, 0o755);
    const uid = process.geteuid?.() ?? 0;
    t.is(execFileSync(bin, { encoding: 'utf8' }), `Effective uid: ${uid}\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
