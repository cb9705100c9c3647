import test from 'ava';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { defaultConfig } from '../config.js';
import { linux } from '../linux/syscalls.js';
import { writeTar } from '../snapshot/tar-writer.js';
import { silentLogger } from '../util/log.js';
import { buildImage, sha } from './fake-registry.js';
import { importArchive } from './import.js';
import { ImageService } from './service.js';

const rtest = process.getuid?.() === 0 ? test.serial : test.serial.skip;

async function service(t: { teardown(fn: () => Promise<void>): void }) {
  const root = await fs.mkdtemp(join(tmpdir(), 'corral-import-'));
  const config = defaultConfig();
  config.root_dir = join(root, 'store');
  const svc = await ImageService.create({ config, logger: silentLogger(), syscalls: linux, platform: { os: 'linux', architecture: 'amd64' } });
  t.teardown(async () => {
    await svc.close();
    await fs.rm(root, { recursive: true, force: true });
  });
  return { root, svc };
}

const img = buildImage([[{ name: 'hello', data: 'world\n' }], [{ name: 'second', data: '2\n' }]]);

function layoutFiles(name?: string): Array<{ name: string; data: Buffer }> {
  const index = { schemaVersion: 2, manifests: [{ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: img.manifestDigest, size: img.manifest.length, ...(name ? { annotations: { 'org.opencontainers.image.ref.name': name } } : {}) }] };
  return [
    { name: 'oci-layout', data: Buffer.from('{"imageLayoutVersion":"1.0.0"}') },
    { name: 'index.json', data: Buffer.from(JSON.stringify(index)) },
    { name: `blobs/sha256/${img.manifestDigest.slice(7)}`, data: img.manifest },
    { name: `blobs/sha256/${img.configDigest.slice(7)}`, data: img.config },
    ...img.layers.map((l) => ({ name: `blobs/sha256/${l.digest.slice(7)}`, data: l.data })),
  ];
}

rtest('imports an OCI layout directory and an oci-archive tar', async (t) => {
  const { root, svc } = await service(t);
  const dir = join(root, 'layout');
  for (const f of layoutFiles('example.com/hello:1')) {
    await fs.mkdir(join(dir, f.name, '..'), { recursive: true });
    await fs.writeFile(join(dir, f.name), f.data);
  }
  t.deepEqual(await importArchive(svc, dir), [{ id: img.configDigest, tags: ['example.com/hello:1'] }]);
  const tar = join(root, 'layout.tar');
  await fs.writeFile(tar, writeTar(layoutFiles('example.com/hello:2').map((f) => ({ name: f.name, data: f.data }))));
  t.deepEqual(await importArchive(svc, tar), [{ id: img.configDigest, tags: ['example.com/hello:2'] }]);
  t.deepEqual(svc.resolve('example.com/hello:1')?.repoTags.sort(), ['example.com/hello:1', 'example.com/hello:2']);
  t.deepEqual(await fs.readdir(join(root, 'store', 'tmp')), []);
});

rtest('imports a gzipped docker save archive with RepoTags and uncompressed layers', async (t) => {
  const { root, svc } = await service(t);
  const raw = buildImage([[{ name: 'hello', data: 'world\n' }]], { compression: 'none' });
  const manifest = [{ Config: `${raw.configDigest.slice(7)}.json`, RepoTags: ['hello:latest', 'example.com/x/hello:2'], Layers: ['abc/layer.tar'] }];
  const tar = writeTar([
    { name: 'manifest.json', data: JSON.stringify(manifest) },
    { name: `${raw.configDigest.slice(7)}.json`, data: raw.config },
    { name: 'abc/', type: 'dir' },
    { name: 'abc/layer.tar', data: raw.layers[0]!.data },
  ]);
  const file = join(root, 'save.tar.gz');
  await fs.writeFile(file, gzipSync(tar));
  const out = await importArchive(svc, file);
  t.deepEqual(out, [{ id: raw.configDigest, tags: ['docker.io/library/hello:latest', 'example.com/x/hello:2'] }]);
  t.is(svc.resolve('hello')?.id, raw.configDigest);
  t.is(sha(raw.layers[0]!.data), raw.diffIds[0]);
});

rtest('an archive that is neither layout nor docker save is refused', async (t) => {
  const { root, svc } = await service(t);
  const file = join(root, 'junk.tar');
  await fs.writeFile(file, writeTar([{ name: 'readme', data: 'hi' }]));
  await t.throwsAsync(importArchive(svc, file), { message: /neither an OCI layout/ });
  await t.throwsAsync(importArchive(svc, join(root, 'missing.tar')), { message: /does not exist/ });
});

rtest('a running service picks up images another process imported', async (t) => {
  const { root, svc } = await service(t);
  const other = await ImageService.create({ config: { ...defaultConfig(), root_dir: join(root, 'store') }, logger: silentLogger(), syscalls: linux, platform: { os: 'linux', architecture: 'amd64' } });
  const dir = join(root, 'layout');
  for (const f of layoutFiles('example.com/late:1')) {
    await fs.mkdir(join(dir, f.name, '..'), { recursive: true });
    await fs.writeFile(join(dir, f.name), f.data);
  }
  await importArchive(other, dir);
  await other.close();
  for (let i = 0; i < 50 && !svc.resolve('example.com/late:1'); i++) await new Promise((r) => setTimeout(r, 50));
  t.is(svc.resolve('example.com/late:1')?.id, img.configDigest);
  t.truthy(svc.snapshots.get(img.diffIds[1]!));
});
