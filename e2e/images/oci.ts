/**
 * OCI image layout writing: a content-addressed blob store shared by all test images, layer
 * compression, image configs, manifests and indexes in OCI or Docker schema2 media types.
 *
 *   const store = new BlobStore(layoutDir);           // layoutDir/blobs/sha256/<hex>
 *   const layer = await makeLayer(store, tarBytes, 'gzip' | 'zstd' | 'none', 'oci' | 'docker');
 *   const img = await writeImage(store, { layers: [layer], config, format, platform });
 *   const idx = await writeIndex(store, [img.manifest, ...], 'oci' | 'docker');
 *   await writeLayoutIndex(layoutDir, [{ ...img.manifest, annotations: { [REF_NAME]: 'name' } }]);
 *
 * Determinism: gzip comes from node:zlib (its header has mtime 0 and a fixed OS byte), zstd from
 * the `zstd` binary with fixed level, one thread and no checksum; JSON documents are serialized
 * with a fixed key order. Same inputs, same digests.
 */
import { createHash } from 'node:crypto';
import { spawn } from 'node:child_process';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import * as zlib from 'node:zlib';

export const MT = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociConfig: 'application/vnd.oci.image.config.v1+json',
  ociLayer: 'application/vnd.oci.image.layer.v1.tar',
  ociLayerGzip: 'application/vnd.oci.image.layer.v1.tar+gzip',
  ociLayerZstd: 'application/vnd.oci.image.layer.v1.tar+zstd',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerConfig: 'application/vnd.docker.container.image.v1+json',
  dockerLayerGzip: 'application/vnd.docker.image.rootfs.diff.tar.gzip',
  dockerLayer: 'application/vnd.docker.image.rootfs.diff.tar',
} as const;

export const REF_NAME = 'org.opencontainers.image.ref.name';

export type Compression = 'gzip' | 'zstd' | 'none';
export type Format = 'oci' | 'docker';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  platform?: Platform;
  annotations?: Record<string, string>;
}
export interface Platform { architecture: string; os: string; variant?: string }

export function sha256(data: Buffer | string): string {
  return 'sha256:' + createHash('sha256').update(data).digest('hex');
}

export class BlobStore {
  constructor(readonly layoutDir: string) {}

  pathOf(digest: string): string {
    const [alg, hex] = digest.split(':');
    return path.join(this.layoutDir, 'blobs', alg, hex);
  }

  /** Stores data under its digest (temp file + rename; an existing blob is kept). */
  async put(data: Buffer): Promise<{ digest: string; size: number }> {
    const digest = sha256(data);
    await this.putAs(digest, data);
    return { digest, size: data.length };
  }

  /** Stores data under a given name even if it does not hash to it (hostile layouts only). */
  async putAs(digest: string, data: Buffer): Promise<void> {
    const p = this.pathOf(digest);
    try {
      const st = await fs.stat(p);
      if (st.size === data.length && sha256(await fs.readFile(p)) === sha256(data)) return;
    } catch { /* absent */ }
    await fs.mkdir(path.dirname(p), { recursive: true });
    const tmp = `${p}.tmp-${process.pid}`;
    await fs.writeFile(tmp, data);
    await fs.rename(tmp, p);
  }

  async has(digest: string): Promise<boolean> {
    try { await fs.access(this.pathOf(digest)); return true; } catch { return false; }
  }

  read(digest: string): Promise<Buffer> {
    return fs.readFile(this.pathOf(digest));
  }
}

function runZstd(data: Buffer): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    // -T1 and --no-check: one frame layout and no checksum whatever the zstd build defaults to.
    const child = spawn('zstd', ['-q', '-c', '-3', '-T1', '--no-check', '--no-progress'], { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (d: Buffer) => out.push(d));
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(Buffer.concat(out));
      else reject(new Error(`zstd exited ${code}: ${Buffer.concat(err).toString()}`));
    });
    child.stdin.end(data);
  });
}

export async function compress(data: Buffer, c: Compression, level = 6): Promise<Buffer> {
  if (c === 'none') return data;
  if (c === 'gzip') return zlib.gzipSync(data, { level });
  return runZstd(data);
}

export function layerMediaType(c: Compression, format: Format): string {
  if (format === 'docker') {
    if (c === 'zstd') throw new Error('Docker schema2 has no zstd layer media type');
    return c === 'gzip' ? MT.dockerLayerGzip : MT.dockerLayer;
  }
  return c === 'gzip' ? MT.ociLayerGzip : c === 'zstd' ? MT.ociLayerZstd : MT.ociLayer;
}

export interface Layer {
  descriptor: Descriptor;
  /** sha256 of the uncompressed tar: the image config's rootfs.diff_ids entry. */
  diffId: string;
}

const layerMemo = new Map<string, Layer>();

/** Compresses and stores a layer; memoized per (tar digest, compression, level, format) in this process. */
export async function makeLayer(store: BlobStore, tar: Buffer, c: Compression, format: Format, level = 6): Promise<Layer> {
  const diffId = sha256(tar);
  const key = `${store.layoutDir}|${diffId}|${c}|${level}|${format}`;
  const hit = layerMemo.get(key);
  if (hit) return hit;
  const blob = await compress(tar, c, level);
  const { digest, size } = await store.put(blob);
  const layer = { descriptor: { mediaType: layerMediaType(c, format), digest, size }, diffId };
  layerMemo.set(key, layer);
  return layer;
}

/** The runtime part of an image config (OCI image-spec "config" object). */
export interface RunConfig {
  User?: string;
  Env?: string[];
  Entrypoint?: string[];
  Cmd?: string[];
  WorkingDir?: string;
  ExposedPorts?: Record<string, Record<string, never>>;
  Labels?: Record<string, string>;
  StopSignal?: string;
  Volumes?: Record<string, Record<string, never>>;
}

export const FIXED_CREATED = '2000-01-01T00:00:00Z';

export interface ImageSpec {
  layers: Layer[];
  config: RunConfig;
  format: Format;
  platform?: Platform;
  /** history "created_by" lines, one per layer (optional). */
  history?: string[];
}

export interface WrittenImage {
  manifest: Descriptor;
  config: Descriptor;
  manifestBytes: Buffer;
}

function orderedRunConfig(c: RunConfig): RunConfig {
  const out: RunConfig = {};
  for (const k of ['User', 'ExposedPorts', 'Env', 'Entrypoint', 'Cmd', 'Volumes', 'WorkingDir', 'Labels', 'StopSignal'] as const) {
    if (c[k] !== undefined) (out as Record<string, unknown>)[k] = c[k];
  }
  return out;
}

export async function writeImage(store: BlobStore, spec: ImageSpec): Promise<WrittenImage> {
  const platform = spec.platform ?? { architecture: 'amd64', os: 'linux' };
  const config = {
    created: FIXED_CREATED,
    architecture: platform.architecture,
    ...(platform.variant ? { variant: platform.variant } : {}),
    os: platform.os,
    config: orderedRunConfig(spec.config),
    rootfs: { type: 'layers', diff_ids: spec.layers.map((l) => l.diffId) },
    history: spec.layers.map((_, i) => ({ created: FIXED_CREATED, created_by: spec.history?.[i] ?? `corral e2e image layer ${i}` })),
  };
  const configBytes = Buffer.from(JSON.stringify(config));
  const cfg = await store.put(configBytes);
  const configDesc: Descriptor = {
    mediaType: spec.format === 'docker' ? MT.dockerConfig : MT.ociConfig, digest: cfg.digest, size: cfg.size,
  };
  const manifest = {
    schemaVersion: 2,
    mediaType: spec.format === 'docker' ? MT.dockerManifest : MT.ociManifest,
    config: configDesc,
    layers: spec.layers.map((l) => l.descriptor),
  };
  const manifestBytes = Buffer.from(JSON.stringify(manifest));
  const m = await store.put(manifestBytes);
  return {
    manifest: { mediaType: manifest.mediaType, digest: m.digest, size: m.size, platform },
    config: configDesc,
    manifestBytes,
  };
}

export async function writeIndex(store: BlobStore, manifests: Descriptor[], format: Format): Promise<{ descriptor: Descriptor; bytes: Buffer }> {
  const mediaType = format === 'docker' ? MT.dockerList : MT.ociIndex;
  const doc = {
    schemaVersion: 2,
    mediaType,
    manifests: manifests.map((d) => ({
      mediaType: d.mediaType, digest: d.digest, size: d.size, ...(d.platform ? { platform: d.platform } : {}),
    })),
  };
  const bytes = Buffer.from(JSON.stringify(doc));
  const { digest, size } = await store.put(bytes);
  return { descriptor: { mediaType, digest, size }, bytes };
}

/** Writes oci-layout and index.json (atomically) listing the given top-level descriptors. */
export async function writeLayoutIndex(layoutDir: string, manifests: Descriptor[]): Promise<void> {
  await fs.mkdir(layoutDir, { recursive: true });
  await fs.writeFile(path.join(layoutDir, 'oci-layout'), JSON.stringify({ imageLayoutVersion: '1.0.0' }));
  const index = { schemaVersion: 2, mediaType: MT.ociIndex, manifests };
  const tmp = path.join(layoutDir, `index.json.tmp-${process.pid}`);
  await fs.writeFile(tmp, JSON.stringify(index, null, 1));
  await fs.rename(tmp, path.join(layoutDir, 'index.json'));
}
