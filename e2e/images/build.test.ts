import test from 'ava';
import { gunzipSync } from 'node:zlib';
import { mkdtempSync, rmSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImages } from './build.js';
import { findImage, localName, type BuiltImage, type ImagesManifest } from './manifest.js';
import { BlobStore, MT, sha256, type Descriptor } from './oci.js';
import { readTar, type ReadEntry } from './tar.js';

const dirs: string[] = [];
const tmp = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'corral-images-test-'));
  dirs.push(d);
  return d;
};
test.after.always(() => { for (const d of dirs) rmSync(d, { recursive: true, force: true }); });

let first: { dir: string; m: ImagesManifest };
test.before(async () => {
  const dir = tmp();
  first = { dir, m: await buildImages({ outDir: dir }) };
});

const store = (): BlobStore => new BlobStore(join(first.dir, 'oci'));
const json = async <T>(digest: string): Promise<T> => JSON.parse((await store().read(digest)).toString()) as T;
const img = (name: string): BuiltImage => {
  const i = findImage(first.m, name);
  if (!i) throw new Error(`no image ${name}`);
  return i;
};

async function layerEntries(d: Descriptor): Promise<ReadEntry[]> {
  const blob = await store().read(d.digest);
  if (d.mediaType.endsWith('gzip')) return readTar(gunzipSync(blob));
  if (d.mediaType.endsWith('zstd')) {
    const { decompress } = await import('fzstd');
    return readTar(Buffer.from(decompress(blob)));
  }
  return readTar(blob);
}

async function manifestOf(name: string): Promise<{ config: Descriptor; layers: Descriptor[]; mediaType: string }> {
  return json(img(name).digest);
}

test('building twice into different directories gives the same digests', async (t) => {
  const second = await buildImages({ outDir: tmp() });
  t.deepEqual(second.images.map((i) => [i.name, i.digest]), first.m.images.map((i) => [i.name, i.digest]));
  t.false(first.m.images.some((i) => i.name === 'large'), 'the large image needs --large');
});

test('a second build into the same directory reuses everything', async (t) => {
  const lines: string[] = [];
  const started = Date.now();
  const again = await buildImages({ outDir: first.dir, log: (l) => lines.push(l) });
  // Images whose host input is absent are skipped both times (agnhost before e2e/kube/build.sh
  // ran); one whose input appeared in between (that build runs beside the unit tests in
  // test-all) is built now. Nothing else may be rebuilt.
  const rebuilt = lines.filter((l) => !l.startsWith('cached') && !l.startsWith('skipped') && !/^built\s+node-e2e-/.test(l));
  t.deepEqual(rebuilt, [], lines.join('\n'));
  t.true(again.images.length >= first.m.images.length);
  t.true(Date.now() - started < 20_000, `${Date.now() - started} ms`);
});

test('every blob in the layout matches its digest, except the planted one', async (t) => {
  const index = JSON.parse(readFileSync(join(first.dir, 'oci', 'index.json'), 'utf8')) as { manifests: Descriptor[] };
  t.is(index.manifests.length, first.m.images.length);
  for (const i of first.m.images) {
    const d = index.manifests.find((m) => m.annotations?.['org.opencontainers.image.ref.name'] === i.name);
    t.is(d?.digest, i.digest);
    t.is(sha256(await store().read(i.digest)), i.digest);
  }
  const bad = img('hostile-baddigest');
  t.is(bad.tamperedBlobs?.length, 1);
  t.not(sha256(await store().read(bad.tamperedBlobs![0])), bad.tamperedBlobs![0]);
});

test('critest stand-ins carry the names and properties the specs check', async (t) => {
  t.truthy(findImage(first.m, 'registry.k8s.io/e2e-test-images/busybox:1.29-2'));
  for (const ref of ['gcr.io/k8s-staging-cri-tools/test-image-tags:1', 'gcr.io/k8s-staging-cri-tools/test-image-tags:3']) {
    t.is(findImage(first.m, ref)?.name, 'critest-test-image-tags');
  }
  t.is(findImage(first.m, 'k8s.gcr.io/pause:3.9')?.digest, findImage(first.m, 'registry.k8s.io/pause:3.9')?.digest);
  const ids = ['critest-test-image-1', 'critest-test-image-2', 'critest-test-image-3'].map((n) => img(n).configDigest);
  t.is(new Set(ids).size, 3);

  const users: Record<string, string> = {
    'critest-test-image-user-uid': '1002', 'critest-test-image-user-username': 'www-data',
    'critest-test-image-user-uid-group': '1003:1004', 'critest-test-image-user-username-group': 'www-data:1004',
    'critest-test-image-predefined-group': '1000',
  };
  for (const [name, user] of Object.entries(users)) {
    const cfg = await json<{ config: { User?: string } }>((await manifestOf(name)).config.digest);
    t.is(cfg.config.User, user, name);
  }

  const bbLayers = (await manifestOf('critest-busybox')).layers;
  const shell = (await layerEntries(bbLayers[1])).find((e) => e.path === 'bin/sh');
  t.is(shell?.type, 'file', 'critest busybox: /bin/sh is a shell of its own (an ash that executes commands from PATH), not the busybox-static link');
  const bb = await layerEntries(bbLayers[0]);
  const sh = bb.find((e) => e.path === 'bin/sh');
  t.is(sh?.type, 'hardlink');
  t.is(sh?.linkname, 'bin/busybox');
  for (const p of ['usr/bin/ipcs', 'usr/bin/pgrep', 'etc/passwd', 'etc/group']) t.truthy(bb.find((e) => e.path === p), p);
  t.regex(bb.find((e) => e.path === 'etc/passwd')!.data.toString(), /^nobody:x:65534:65534:/m);

  const groups = await layerEntries((await manifestOf('critest-test-image-predefined-group')).layers[1]);
  t.regex(groups.find((e) => e.path === 'etc/group')!.data.toString(), /^group-defined-in-image:x:50000:default-user$/m);

  const nnp = (await layerEntries((await manifestOf('critest-nonewprivs')).layers[1])).find((e) => e.path === 'usr/local/bin/nnp');
  t.is(nnp?.mode, 0o4755);

  const nginx = await layerEntries((await manifestOf('critest-nginx')).layers[1]);
  t.truthy(nginx.find((e) => e.path === 'usr/sbin/nginx'));
  t.truthy(nginx.find((e) => e.path === 'lib64/ld-linux-x86-64.so.2'));
  t.regex(nginx.find((e) => e.path === 'etc/nginx/nginx.conf')!.data.toString(), /pid \/var\/run\/nginx.pid;/);
  t.true(first.m.notReproducible.some((n) => n.ref.includes('test-image-digest@sha256:9700f9a2')));
});

test('exercisers: whiteouts, opaque dirs, xattrs, compressions, media types, multi-platform', async (t) => {
  const layers = await manifestOf('layers');
  const l3 = await layerEntries(layers.layers[2]);
  for (const p of ['data/.wh.b.txt', 'data/dir1/.wh..wh..opq', 'opt/.wh.old']) t.truthy(l3.find((e) => e.path === p), p);
  t.truthy(l3.find((e) => e.path === 'usr/local/bin/cap-euid')?.xattrs['security.capability']);

  const zstd = await manifestOf('compress-zstd');
  t.true(zstd.layers.every((l) => l.mediaType === MT.ociLayerZstd));
  t.deepEqual([...(await store().read(zstd.layers[0].digest)).subarray(0, 4)], [0x28, 0xb5, 0x2f, 0xfd]);
  t.true((await manifestOf('compress-uncompressed')).layers.every((l) => l.mediaType === MT.ociLayer));
  const gz = await manifestOf('compress-gzip');
  t.deepEqual(
    (await layerEntries(gz.layers[1])).map((e) => e.path),
    (await layerEntries(zstd.layers[1])).map((e) => e.path));

  const docker = await manifestOf('mediatypes-docker');
  t.is(docker.mediaType, MT.dockerManifest);
  t.is(docker.config.mediaType, MT.dockerConfig);
  t.true(docker.layers.every((l) => l.mediaType === MT.dockerLayerGzip));

  for (const [name, mt] of [['multiarch-oci', MT.ociIndex], ['multiarch-docker', MT.dockerList]] as const) {
    const i = img(name);
    t.is(i.mediaType, mt);
    const index = await json<{ manifests: Descriptor[] }>(i.digest);
    t.deepEqual(index.manifests.map((m) => `${m.platform?.os}/${m.platform?.architecture}`), ['linux/amd64', 'linux/arm64']);
  }
  t.deepEqual(img('busybox').refs.map(localName), [
    'corral/busybox:latest', 'docker.io/library/busybox:latest', 'docker.io/library/busybox:1.37.0', 'quay.io/prometheus/busybox:latest',
  ]);
});

test('hostile layers keep their hostile names', async (t) => {
  const names = async (image: string): Promise<string[]> => {
    const m = await manifestOf(image);
    const all: string[] = [];
    for (const l of m.layers) all.push(...(await layerEntries(l)).map((e) => `${e.type}:${e.path}${e.linkname ? '->' + e.linkname : ''}`));
    return all;
  };
  t.true((await names('hostile-dotdot')).some((n) => n.includes('../../../../tmp/corral-hostile-dotdot')));
  t.true((await names('hostile-abspath')).includes('file:/tmp/corral-hostile-abspath'));
  t.true((await names('hostile-symlink')).includes('symlink:escape->/tmp'));
  t.true((await names('hostile-hardlink')).includes('hardlink:etc/abs-link->/tmp/corral-hostile-hardlink-victim'));
  t.true((await names('hostile-whiteout')).some((n) => n.endsWith('/.wh..wh..opq')));
  for (const i of first.m.images.filter((x) => x.category === 'hostile')) t.true(i.expect?.mustFail, i.name);
});

test('expectations hold when an independent unpacker (umoci) applies the layers', async (t) => {
  const { execFile } = await import('node:child_process');
  const { promisify } = await import('node:util');
  const run = promisify(execFile);
  const fs = await import('node:fs');
  if (process.geteuid?.() !== 0 || !fs.existsSync('/usr/bin/umoci')) {
    t.log('needs root and umoci');
    t.pass();
    return;
  }
  // umoci 0.4 unpacks OCI gzip / plain layers only (no zstd, no Docker media types).
  const checkable = first.m.images.filter((i) => i.expect && i.category !== 'hostile'
    && i.layerMediaTypes.every((mt) => mt === MT.ociLayerGzip || mt === MT.ociLayer) && i.mediaType === MT.ociManifest);
  t.true(checkable.some((i) => i.name === 'layers'));
  for (const i of checkable) {
    const dir = join(tmp(), 'rootfs');
    // Asynchronously: the other tests of this file share the event loop and time themselves.
    // `raw unpack` skips umoci's mtree bookkeeping (2.5 s an image).
    await run('umoci', ['raw', 'unpack', '--image', `${join(first.dir, 'oci')}:${i.name}`, dir]);
    const r = (p: string): string => join(dir, p);
    const e = i.expect!;
    for (const p of e.present ?? []) t.true(fs.existsSync(r(p)), `${i.name}: ${p} present`);
    for (const p of e.absent ?? []) t.false(fs.existsSync(r(p)), `${i.name}: ${p} absent`);
    for (const [p, c] of Object.entries(e.content ?? {})) t.is(fs.readFileSync(r(p), 'utf8'), c, `${i.name}: ${p}`);
    for (const [p, mode] of Object.entries(e.modes ?? {})) t.is(fs.statSync(r(p)).mode & 0o7777, mode, `${i.name}: mode of ${p}`);
    for (const group of e.hardlinks ?? []) t.is(new Set(group.map((p) => fs.statSync(r(p)).ino)).size, 1, `${i.name}: ${group.join(' = ')}`);
    if (fs.existsSync('/usr/bin/python3')) {
      for (const [p, xs] of Object.entries(e.xattrs ?? {})) {
        for (const [k, v] of Object.entries(xs)) {
          const got = (await run('python3', ['-c', 'import os,sys;print(os.getxattr(sys.argv[1],sys.argv[2]).hex())', r(p), k])).stdout.trim();
          t.is(got, v, `${i.name}: ${k} on ${p}`);
        }
      }
    }
  }
});
