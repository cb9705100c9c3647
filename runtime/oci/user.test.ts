import test from 'ava';
import { mkdtemp, mkdir, rm, symlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError } from '../errors.js';
import { securityContextDefaults } from './spec/fixtures.js';
import { readFileInRoot, resolveInRoot, resolveUser, type ResolveUserOptions } from './user.js';

const PASSWD = [
  'root:x:0:0:root:/root:/bin/sh',
  'daemon:x:1:1:daemon:/usr/sbin:/usr/sbin/nologin',
  'alice:x:1000:1000::/home/alice:/bin/sh',
  'bob:x:1001:100::/home/bob:/bin/sh',
  '# a comment',
  'broken-line',
].join('\n');
const GROUP = [
  'root:x:0:',
  'daemon:x:1:',
  'users:x:100:',
  'alice:x:1000:',
  'wheel:x:10:alice,carol',
  'audio:x:29:bob,alice',
  'staff:x:50:bob',
].join('\n');

async function rootfs(files: Record<string, string>): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'corral-user-'));
  for (const [p, content] of Object.entries(files)) {
    await mkdir(join(dir, p, '..'), { recursive: true });
    await writeFile(join(dir, p), content);
  }
  return dir;
}

let root: string;
test.before(async () => {
  root = await rootfs({ 'etc/passwd': PASSWD, 'etc/group': GROUP });
});
test.after.always(async () => {
  await rm(root, { recursive: true, force: true });
});

const int64 = (n: number) => ({ value: String(n) });

interface Row {
  title: string;
  sc?: Parameters<typeof securityContextDefaults>[0];
  imageUser?: string;
  runAsNonRoot?: boolean;
  want?: { uid: number; gid: number; additionalGids: number[]; username?: string };
  error?: RegExp;
}

const rows: Row[] = [
  { title: 'no user anywhere: root', want: { uid: 0, gid: 0, additionalGids: [0], username: 'root' } },
  { title: 'image USER name', imageUser: 'alice', want: { uid: 1000, gid: 1000, additionalGids: [1000, 10, 29], username: 'alice' } },
  { title: 'image USER uid known', imageUser: '1001', want: { uid: 1001, gid: 100, additionalGids: [100, 29, 50], username: 'bob' } },
  { title: 'image USER uid unknown: gid 0', imageUser: '4242', want: { uid: 4242, gid: 0, additionalGids: [0] } },
  { title: 'image USER uid:gid', imageUser: '4242:77', want: { uid: 4242, gid: 77, additionalGids: [77] } },
  { title: 'image USER name:group', imageUser: 'alice:staff', want: { uid: 1000, gid: 50, additionalGids: [50, 10, 29], username: 'alice' } },
  { title: 'image USER name:gid', imageUser: 'bob:5', want: { uid: 1001, gid: 5, additionalGids: [5, 29, 50], username: 'bob' } },
  { title: 'image USER unknown name', imageUser: 'mallory', error: /image USER: user "mallory" does not exist/ },
  { title: 'image USER unknown group', imageUser: 'alice:nogroup', error: /group "nogroup" does not exist/ },
  { title: 'run_as_user overrides image user', imageUser: 'alice', sc: { run_as_user: int64(1001) }, want: { uid: 1001, gid: 100, additionalGids: [100, 29, 50], username: 'bob' } },
  { title: 'run_as_user 0', imageUser: 'alice', sc: { run_as_user: int64(0) }, want: { uid: 0, gid: 0, additionalGids: [0], username: 'root' } },
  { title: 'run_as_user + run_as_group', sc: { run_as_user: int64(1000), run_as_group: int64(3000) }, want: { uid: 1000, gid: 3000, additionalGids: [3000, 10, 29], username: 'alice' } },
  { title: 'run_as_username', sc: { run_as_username: 'bob' }, want: { uid: 1001, gid: 100, additionalGids: [100, 29, 50], username: 'bob' } },
  { title: 'run_as_username unknown', sc: { run_as_username: 'eve' }, error: /run_as_username: user "eve" does not exist in the image/ },
  { title: 'run_as_group without user', sc: { run_as_group: int64(5) }, error: /run_as_group is set without/ },
  { title: 'run_as_user and run_as_username', sc: { run_as_user: int64(1), run_as_username: 'bob' }, error: /only one/ },
  { title: 'supplemental groups merged', sc: { run_as_user: int64(1000), run_as_group: int64(3000), supplemental_groups: ['4000', '29'] }, want: { uid: 1000, gid: 3000, additionalGids: [3000, 10, 29, 4000], username: 'alice' } },
  { title: 'supplemental groups strict', sc: { run_as_user: int64(1000), run_as_group: int64(3000), supplemental_groups: ['4000'], supplemental_groups_policy: 'Strict' }, want: { uid: 1000, gid: 3000, additionalGids: [3000, 4000], username: 'alice' } },
  { title: 'runAsNonRoot with root', runAsNonRoot: true, error: /runAsNonRoot.*uid 0 \(root\)/ },
  { title: 'runAsNonRoot with a named non-root user', runAsNonRoot: true, imageUser: 'alice', want: { uid: 1000, gid: 1000, additionalGids: [1000, 10, 29], username: 'alice' } },
  { title: 'runAsNonRoot with a name that maps to uid 0', runAsNonRoot: true, sc: { run_as_username: 'root' }, error: /runAsNonRoot/ },
];

for (const row of rows) {
  test(`user: ${row.title}`, async (t) => {
    const opts: ResolveUserOptions = { rootfs: root, securityContext: securityContextDefaults(row.sc), imageUser: row.imageUser, runAsNonRoot: row.runAsNonRoot };
    if (row.error) {
      const err = await t.throwsAsync(resolveUser(opts), { instanceOf: InvalidArgumentError });
      t.regex(err!.message, row.error);
    } else {
      t.deepEqual(await resolveUser(opts), row.want);
    }
  });
}

test('user: image without /etc/passwd: numeric users work, names fail', async (t) => {
  const empty = await rootfs({ 'bin/.keep': '' });
  try {
    t.deepEqual(await resolveUser({ rootfs: empty, securityContext: null, imageUser: '65534:65534' }), { uid: 65534, gid: 65534, additionalGids: [65534] });
    t.deepEqual(await resolveUser({ rootfs: empty, securityContext: null }), { uid: 0, gid: 0, additionalGids: [0] });
    await t.throwsAsync(resolveUser({ rootfs: empty, securityContext: null, imageUser: 'nobody' }), { message: /user "nobody" does not exist/ });
  } finally {
    await rm(empty, { recursive: true, force: true });
  }
});

test('user: a symlinked /etc/passwd pointing outside the rootfs is not followed out', async (t) => {
  // The "host" file the attacker wants read: it defines a user the image does not.
  const outside = await rootfs({ 'etc/passwd': 'hostonly:x:4000:4000::/:/bin/sh\n', 'etc/group': 'hostgrp:x:4001:alice\n' });
  const evil = await rootfs({ 'etc/.keep': '', 'inner/passwd': 'alice:x:1000:1000::/:/bin/sh\n' });
  try {
    await symlink(join(outside, 'etc/passwd'), join(evil, 'etc/passwd')); // absolute link to a host path
    await symlink('../../../../../../../../' + join(outside, 'etc/group'), join(evil, 'etc/group')); // relative escape attempt
    await t.throwsAsync(resolveUser({ rootfs: evil, securityContext: null, imageUser: 'hostonly' }), { message: /user "hostonly" does not exist/ });
    t.is(await readFileInRoot(evil, '/etc/group'), undefined);
    // An absolute link is resolved against the rootfs: /inner/passwd inside the image.
    await rm(join(evil, 'etc/passwd'));
    await symlink('/inner/passwd', join(evil, 'etc/passwd'));
    t.deepEqual(await resolveUser({ rootfs: evil, securityContext: null, imageUser: 'alice' }), { uid: 1000, gid: 1000, additionalGids: [1000], username: 'alice' });
  } finally {
    await rm(outside, { recursive: true, force: true });
    await rm(evil, { recursive: true, force: true });
  }
});

test('user: resolveInRoot clamps .. and restarts absolute links at the root', async (t) => {
  const r = await rootfs({ 'a/b/file': 'x' });
  try {
    await symlink('/a/b', join(r, 'link'));
    await symlink('../../../../a', join(r, 'a/b/up'));
    t.is(await resolveInRoot(r, '/../../etc/passwd'), join(r, 'etc/passwd'));
    t.is(await resolveInRoot(r, '/link/file'), join(r, 'a/b/file'));
    t.is(await resolveInRoot(r, '/a/b/up/b/file'), join(r, 'a/b/file'));
    await symlink('loop2', join(r, 'loop1'));
    await symlink('loop1', join(r, 'loop2'));
    await t.throwsAsync(resolveInRoot(r, '/loop1'), { message: /too many levels/ });
  } finally {
    await rm(r, { recursive: true, force: true });
  }
});

test('user: a fifo or directory at /etc/passwd is refused, not read', async (t) => {
  const r = await rootfs({ 'etc/group': GROUP });
  try {
    await mkdir(join(r, 'etc/passwd'));
    await t.throwsAsync(resolveUser({ rootfs: r, securityContext: null, imageUser: 'alice' }), { message: /not a regular file/ });
  } finally {
    await rm(r, { recursive: true, force: true });
  }
});
