import test from 'ava';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import { join } from 'node:path';
import { defaultConfig, type Config } from '../config.js';
import { linux } from '../linux/syscalls.js';
import { diskUsage } from '../snapshot/snapshotter.js';
import { silentLogger } from '../util/log.js';
import { buildImage, FakeRegistry, type BuiltImage } from './fake-registry.js';
import { ImageService } from './service.js';

const isRoot = process.getuid?.() === 0;
const rtest = isRoot ? test.serial : test.serial.skip;

const never = new AbortController().signal;

const busy = (extra = ''): BuiltImage => buildImage([
  [{ name: 'bin/', type: 'dir' }, { name: 'bin/sh', data: '#!fake\n', mode: 0o755 }, { name: 'etc/', type: 'dir' }, { name: 'etc/os', data: `one${extra}\n` }],
  [{ name: 'etc/.wh.os', data: '' }, { name: 'etc/two', data: 'two\n' }],
], { config: { User: '1000:1000', WorkingDir: '/w' } });

async function setup(t: { teardown(fn: () => Promise<void> | void): void }, cfg: (c: Config, reg: FakeRegistry) => void = () => undefined, regOpts = {}) {
  const reg = await new FakeRegistry(regOpts).start();
  const root = await fs.mkdtemp(join(tmpdir(), 'corral-images-'));
  const config = defaultConfig();
  config.root_dir = root;
  cfg(config, reg);
  const svc = await ImageService.create({ config, logger: silentLogger(), syscalls: linux, platform: { os: 'linux', architecture: 'amd64' } });
  t.teardown(async () => {
    await svc.close();
    await reg.stop();
    await fs.rm(root, { recursive: true, force: true });
  });
  return { reg, root, svc, config };
}

rtest('pull by tag and by digest, record fields, rootfs mount', async (t) => {
  const { reg, svc, root } = await setup(t);
  const img = busy();
  reg.push('lib/busy', 'v1', img);
  const id = await svc.pull(`${reg.host}/lib/busy:v1`, null, never);
  t.is(id, img.configDigest);
  const rec = svc.resolve(`${reg.host}/lib/busy:v1`)!;
  t.deepEqual(rec.repoTags, [`${reg.host}/lib/busy:v1`]);
  t.deepEqual(rec.repoDigests, [`${reg.host}/lib/busy@${img.manifestDigest}`]);
  t.is(rec.size, img.config.length + img.layers.reduce((a, l) => a + l.size, 0));
  t.is(rec.config.config.User, '1000:1000');
  t.is(svc.resolve(id.slice(7, 19))?.id, id);
  t.is(svc.resolve(id.slice(7))?.id, id);
  t.is(svc.resolve(`${reg.host}/lib/busy@${img.manifestDigest}`)?.id, id);
  t.is(await svc.pull(`${reg.host}/lib/busy@${img.manifestDigest}`, null, never), id);

  const target = join(root, 'mnt');
  await svc.prepareRootfs('c1', id, target);
  try {
    t.is(await fs.readFile(join(target, 'etc/two'), 'utf8'), 'two\n');
    await t.throwsAsync(fs.access(join(target, 'etc/os')));
    await fs.writeFile(join(target, 'new'), 'written');
    const u = await svc.rootfsUsage('c1');
    t.true(u.inodes >= 2);
    t.true(u.mountpoint.endsWith('c1/upper'));
    const fsinfo = await svc.fsInfo();
    t.true(fsinfo.image.bytes > 0);
    t.true(fsinfo.containers.inodes >= 2);
  } finally {
    await svc.releaseRootfs('c1', target);
  }
  await svc.releaseRootfs('c1', target);
  await t.throwsAsync(fs.access(join(target, 'etc/two')));
});

rtest('a second pull of a present image fetches no blobs', async (t) => {
  const { reg, svc } = await setup(t);
  reg.push('a', 'latest', busy());
  await svc.pull(`${reg.host}/a`, null, never);
  const blobs = reg.count('GET /v2/a/blobs/');
  const t0 = Date.now();
  await svc.pull(`${reg.host}/a`, null, never);
  t.is(reg.count('GET /v2/a/blobs/'), blobs);
  t.true(Date.now() - t0 < 1000, `${Date.now() - t0} ms`);
});

rtest('concurrent pulls join: every blob is downloaded once', async (t) => {
  const { reg, svc } = await setup(t);
  const img = busy();
  reg.push('a', 'latest', img);
  reg.push('b', 'latest', img);
  reg.blobDelayMs = 50;
  const ids = await Promise.all([
    svc.pull(`${reg.host}/a`, null, never), svc.pull(`${reg.host}/a`, null, never), svc.pull(`${reg.host}/a:latest`, null, never),
    svc.pull(`${reg.host}/b`, null, never),
  ]);
  t.deepEqual(new Set(ids).size, 1);
  for (const l of img.layers) {
    t.is(reg.count(`GET /v2/a/blobs/${l.digest}`) + reg.count(`GET /v2/b/blobs/${l.digest}`), 1, l.digest);
  }
  t.is(reg.count('GET /v2/a/manifests/latest'), 1);
});

rtest('a digest mismatch fails naming both digests and leaves nothing', async (t) => {
  const { reg, svc, root } = await setup(t);
  const img = busy();
  reg.push('bad', 'latest', img);
  reg.tamper.add(img.layers[1]!.digest);
  const err = await t.throwsAsync(svc.pull(`${reg.host}/bad`, null, never));
  t.regex(err!.message, new RegExp(`expected ${img.layers[1]!.digest}, got sha256:[0-9a-f]{64}`));
  t.is(svc.list().length, 0);
  t.deepEqual(await fs.readdir(join(root, 'snapshots')), []);
  t.deepEqual(await fs.readdir(join(root, 'content/blobs/sha256')), []);
});

rtest('a hostile layer fails the pull and leaves no snapshot', async (t) => {
  const { reg, svc, root } = await setup(t);
  const img = buildImage([[{ name: 'ok', data: 'fine' }], [{ name: 'x', type: 'symlink', linkname: '/tmp' }, { name: 'x/corral-hostile-unit', data: 'pwned' }]]);
  reg.push('hostile', 'latest', img);
  const err = await t.throwsAsync(svc.pull(`${reg.host}/hostile`, null, never));
  t.regex(err!.message, /layer rejected: entry "x\/corral-hostile-unit"/);
  await t.throwsAsync(fs.access('/tmp/corral-hostile-unit'));
  t.deepEqual(await fs.readdir(join(root, 'snapshots')), []);
});

rtest('zstd, uncompressed and Docker media types unpack', async (t) => {
  const { reg, svc } = await setup(t);
  const layers = [[{ name: 'f', data: 'x'.repeat(300_000) }]];
  reg.push('z', 'latest', buildImage(layers, { compression: 'zstd' }));
  reg.push('n', 'latest', buildImage(layers, { compression: 'none' }));
  reg.push('d', 'latest', buildImage(layers, { docker: true }));
  for (const r of ['z', 'n', 'd']) t.truthy(await svc.pull(`${reg.host}/${r}`, null, never), r);
  // Same diff id: one snapshot for all three.
  t.is(svc.snapshots.list().length, 1);
});

rtest('a multi-platform index resolves to the host platform; a missing one lists what exists', async (t) => {
  const { reg, svc } = await setup(t);
  const amd = buildImage([[{ name: 'p', data: 'amd64' }]]);
  const arm = buildImage([[{ name: 'p', data: 'arm64' }]], { config: { Cmd: ['arm'] } });
  const indexDigest = reg.pushIndex('multi', 'latest', [
    { img: arm, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } },
    { img: amd, platform: { os: 'linux', architecture: 'amd64' } },
  ]);
  t.is(await svc.pull(`${reg.host}/multi`, null, never), amd.configDigest);
  t.deepEqual(svc.resolve(amd.configDigest)!.repoDigests, [`${reg.host}/multi@${indexDigest}`]);
  reg.pushIndex('armonly', 'latest', [{ img: arm, platform: { os: 'linux', architecture: 'arm64', variant: 'v8' } }]);
  const err = await t.throwsAsync(svc.pull(`${reg.host}/armonly`, null, never));
  t.is((err as { kind?: string }).kind, 'NotFound');
  t.regex(err!.message, /linux\/amd64.*linux\/arm64\/v8/);
});

rtest('bearer token auth: credentials work, a wrong password names the registry and not the secret', async (t) => {
  const { reg, svc } = await setup(t, () => undefined, { auth: { kind: 'bearer', username: 'alice', password: 's3cret' } });
  reg.push('private', 'latest', busy());
  const err = await t.throwsAsync(svc.pull(`${reg.host}/private`, { username: 'alice', password: 'WRONGPASS' }, never));
  t.is((err as { kind?: string }).kind, 'Unauthenticated');
  t.regex(err!.message, new RegExp(`unauthorized: registry ${reg.host}`));
  t.false(err!.message.includes('WRONGPASS'));
  const anon = await t.throwsAsync(svc.pull(`${reg.host}/private`, null, never));
  t.regex(anon!.message, /unauthorized/);
  t.truthy(await svc.pull(`${reg.host}/private`, { auth: Buffer.from('alice:s3cret').toString('base64') }, never));
  const tokenReq = reg.log.find((l) => l.url.startsWith('/token'))!;
  t.regex(tokenReq.url, /service=fake-registry/);
});

rtest('basic auth and a registry_token', async (t) => {
  const { reg, svc } = await setup(t, () => undefined, { auth: { kind: 'basic', username: 'bob', password: 'pw' } });
  reg.push('private', 'latest', busy());
  t.truthy(await svc.pull(`${reg.host}/private`, { username: 'bob', password: 'pw' }, never));
  await t.throwsAsync(svc.pull(`${reg.host}/other`, { username: 'bob', password: 'nope' }, never), { message: /unauthorized/ });
});

rtest('blob redirects are followed without sending the registry credentials to the other host', async (t) => {
  const { reg, svc } = await setup(t, () => undefined, { auth: { kind: 'basic', username: 'bob', password: 'pw' } });
  reg.push('redir', 'latest', busy());
  reg.redirectBlobs = true;
  t.truthy(await svc.pull(`${reg.host}/redir`, { username: 'bob', password: 'pw' }, never));
  const storage = reg.log.filter((l) => l.url.startsWith('/storage/'));
  t.true(storage.length >= 2);
  t.true(storage.every((l) => !l.headers.authorization));
});

rtest('mirrors with a path prefix are tried in order, then the registry', async (t) => {
  const empty = await new FakeRegistry().start();
  t.teardown(() => empty.stop());
  const { reg, svc } = await setup(t, (c, r) => {
    c.registries['registry.example.invalid'] = { mirrors: [`http://${empty.host}/registry.example.invalid`, `http://${r.host}/registry.example.invalid`], insecure: false, ca_file: '' };
  });
  const img = busy();
  reg.push('registry.example.invalid/team/app', '1.0', img);
  t.is(await svc.pull('registry.example.invalid/team/app:1.0', null, never), img.configDigest);
  t.is(empty.count('GET /v2/registry.example.invalid/team/app/manifests/1.0'), 1);
  t.deepEqual(svc.resolve(img.configDigest)!.repoTags, ['registry.example.invalid/team/app:1.0']);
});

rtest('a transfer cut in the middle resumes with Range', async (t) => {
  const { reg, svc } = await setup(t);
  const img = buildImage([[{ name: 'big', data: Buffer.alloc(2_000_000, 7) }]], { compression: 'none' });
  reg.push('cut', 'latest', img);
  reg.cutOnce.add(img.layers[0]!.digest);
  t.is(await svc.pull(`${reg.host}/cut`, null, never), img.configDigest);
  const gets = reg.log.filter((l) => l.url.endsWith(img.layers[0]!.digest));
  t.is(gets.length, 2);
  t.regex(String(gets[1]!.headers.range), /^bytes=\d+-$/);
});

rtest('no progress for the configured time cancels the pull; so does the caller', async (t) => {
  const { reg, svc, root } = await setup(t, (c) => { c.pull.progress_timeout_seconds = 1; });
  const img = busy();
  reg.push('slow', 'latest', img);
  reg.stall.add(img.layers[0]!.digest);
  const t0 = Date.now();
  const err = await t.throwsAsync(svc.pull(`${reg.host}/slow`, null, never));
  t.is((err as { kind?: string }).kind, 'DeadlineExceeded');
  t.regex(err!.message, /no data received for 1 s/);
  t.true(Date.now() - t0 < 5000);

  const ac = new AbortController();
  const p = svc.pull(`${reg.host}/slow:latest`, null, ac.signal);
  setTimeout(() => ac.abort(), 100);
  const cancelled = await t.throwsAsync(p);
  t.is((cancelled as { kind?: string }).kind, 'Cancelled');
  await new Promise((r) => setTimeout(r, 100));
  t.deepEqual(await fs.readdir(join(root, 'snapshots')), []);
});

rtest('remove by tag, by digest, by id; in-use images are refused; GC restores the store size', async (t) => {
  const { reg, svc, root } = await setup(t);
  const before = await diskUsage(root);
  const img = busy();
  reg.push('r', 'v1', img);
  reg.push('r', 'v2', img);
  const id = await svc.pull(`${reg.host}/r:v1`, null, never);
  await svc.pull(`${reg.host}/r:v2`, null, never);
  t.deepEqual(svc.resolve(id)!.repoTags.sort(), [`${reg.host}/r:v1`, `${reg.host}/r:v2`]);
  await svc.remove(`${reg.host}/r:v1`);
  t.deepEqual(svc.resolve(id)!.repoTags, [`${reg.host}/r:v2`]);
  await svc.remove('sha256:' + 'f'.repeat(64)); // unknown: success
  await svc.remove('never/heard/of:it');
  svc.setInUse((imageId) => (imageId === id ? ['ctr-1', 'ctr-2'] : []));
  const err = await t.throwsAsync(svc.remove(id));
  t.is((err as { kind?: string }).kind, 'FailedPrecondition');
  t.regex(err!.message, /ctr-1, ctr-2/);
  svc.setInUse(() => []);
  await svc.remove(id);
  t.is(svc.list().length, 0);
  const after = await diskUsage(root);
  t.is(after.inodes, before.inodes);
  // Directories that held entries keep their grown size on some file systems.
  t.true(after.bytes - before.bytes <= 64 * 1024, `${before.bytes} -> ${after.bytes}`);
});

rtest('a restart keeps images and snapshots', async (t) => {
  const { reg, svc, config } = await setup(t);
  const img = busy();
  reg.push('keep', 'latest', img);
  const id = await svc.pull(`${reg.host}/keep`, null, never);
  await svc.close();
  const again = await ImageService.create({ config, logger: silentLogger(), syscalls: linux });
  t.is(again.resolve(`${reg.host}/keep`)?.id, id);
  t.is(again.snapshots.list().length, 2);
  await again.close();
});

rtest('a pull started after every caller of an identical pull left starts afresh', async (t) => {
  const { reg, svc } = await setup(t);
  const img = busy();
  reg.push('again', 'latest', img);
  reg.blobDelayMs = 300;
  const ac = new AbortController();
  const first = svc.pull(`${reg.host}/again`, null, ac.signal);
  await new Promise((r) => setTimeout(r, 100));
  ac.abort();
  await t.throwsAsync(first);
  reg.blobDelayMs = 0;
  t.is(await svc.pull(`${reg.host}/again`, null, never), img.configDigest);
});

rtest('a loopback registry that never answers a TLS hello is reached over plain HTTP', async (t) => {
  const { reg, svc } = await setup(t);
  reg.push('quiet', 'latest', busy());
  // In front of the registry: TLS hellos (first byte 0x16) get silence, HTTP is forwarded.
  const conns = new Set<net.Socket>();
  const front = net.createServer((c) => {
    conns.add(c);
    c.once('data', (first) => {
      if (first[0] === 0x16) return; // hold the connection open, say nothing
      const up = net.connect(reg.port, '127.0.0.1', () => {
        up.write(first);
        c.pipe(up).pipe(c);
      });
      up.on('error', () => c.destroy());
    });
    c.on('error', () => undefined);
  });
  await new Promise<void>((r) => front.listen(0, '127.0.0.1', () => r()));
  t.teardown(() => {
    for (const c of conns) c.destroy();
    front.close();
  });
  const port = (front.address() as net.AddressInfo).port;
  const t0 = Date.now();
  t.truthy(await svc.pull(`127.0.0.1:${port}/quiet`, null, never));
  t.true(Date.now() - t0 < 15_000);
});

rtest('server_address: credentials go only to that registry; others are asked anonymously', async (t) => {
  const { reg, svc } = await setup(t, () => undefined, { auth: { kind: 'basic', username: 'bob', password: 'pw' } });
  reg.push('private', 'latest', busy());
  const err = await t.throwsAsync(svc.pull(`${reg.host}/private`, { username: 'bob', password: 'pw', server_address: 'registry.example.com' }, never));
  t.is((err as { kind?: string }).kind, 'Unauthenticated');
  t.regex(err!.message, new RegExp(`unauthorized: registry ${reg.host}: anonymous access denied \\(.*registry\\.example\\.com.*not sent`));
  t.true(reg.log.every((l) => !l.headers.authorization), 'no request carried the credentials');
  t.truthy(await svc.pull(`${reg.host}/private`, { username: 'bob', password: 'pw', server_address: `http://${reg.host}/v2/` }, never));
  t.true(reg.log.some((l) => l.headers.authorization?.startsWith('Basic ')));
});

rtest('server_address of the upstream: its mirror on another host is asked anonymously', async (t) => {
  const upstream = await new FakeRegistry().start();
  t.teardown(() => upstream.stop());
  const { reg: mirror, svc } = await setup(t, (c, m) => {
    c.registries[upstream.host] = { mirrors: [`http://${m.host}/up`], insecure: false, ca_file: '' };
  }, { auth: { kind: 'basic', username: 'bob', password: 'pw' } });
  const img = busy();
  mirror.push('up/team/app', '1.0', img);
  const ref = `${upstream.host}/team/app:1.0`;
  const creds = { username: 'bob', password: 'pw' };
  // For the upstream: the mirror sees no credentials, refuses, and the upstream lacks the image.
  const err = await t.throwsAsync(svc.pull(ref, { ...creds, server_address: upstream.host }, never));
  t.regex(err!.message, /unauthorized: registry .* \(mirror\): anonymous access denied/);
  t.true(mirror.log.every((l) => !l.headers.authorization));
  t.true(upstream.log.every((l) => !l.headers.authorization?.startsWith('Basic')));
  // Named for the mirror's host, or for no host at all: the mirror gets them.
  t.is(await svc.pull(ref, { ...creds, server_address: mirror.host }, never), img.configDigest);
  await svc.remove(img.configDigest);
  t.is(await svc.pull(ref, creds, never), img.configDigest);
});

rtest('pinned images: ListImages and ImageStatus report config image.pinned_images; RemoveImage still removes them', async (t) => {
  const { reg, svc } = await setup(t, (c, r) => {
    c.image.pinned_images = [`${r.host}/infra/*`, '*keep-me*'];
  });
  const a = busy('a');
  const b = busy('b');
  const c = busy('c');
  reg.push('infra/pause', '1', a);
  reg.push('team/keep-me', '1', b);
  reg.push('team/app', '1', c);
  for (const r of ['infra/pause:1', 'team/keep-me:1', 'team/app:1']) await svc.pull(`${reg.host}/${r}`, null, never);
  const pinned = Object.fromEntries(svc.list().map((i) => [i.repoTags[0], i.pinned]));
  t.deepEqual(pinned, { [`${reg.host}/infra/pause:1`]: true, [`${reg.host}/team/keep-me:1`]: true, [`${reg.host}/team/app:1`]: false });
  t.true((await svc.status(`${reg.host}/infra/pause:1`))!.image.pinned);
  t.false((await svc.status(c.configDigest))!.image.pinned);
  t.true(svc.list(`${reg.host}/team/keep-me:1`)[0]!.pinned);
  await svc.remove(a.configDigest);
  t.is(svc.resolve(a.configDigest), undefined);
});
