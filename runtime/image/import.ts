/**
 * `corral import FILE`: loads images from an OCI image layout (a directory, or a tar of one,
 * as `skopeo copy ... oci-archive:` writes) or a `docker save` archive (tar or tar.gz) without
 * any registry, for air-gapped nodes. Names come from the archive: io.containerd.image.name or
 * a full-reference org.opencontainers.image.ref.name in index.json, RepoTags in manifest.json.
 *
 * A tar archive is first spread into a temporary directory under the root dir, one file per
 * regular entry under a numbered name, so no archive path is ever used as a host path.
 */
import { createHash, randomBytes } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import { join, posix } from 'node:path';
import { InvalidArgumentError, NotFoundError, RuntimeError, isENOENT } from '../errors.js';
import { readTar } from '../snapshot/tar.js';
import { decompressed, sniffCompression } from './layer.js';
import { selectPlatform, type PlatformDescriptor } from './platform.js';
import { formatReference, repoName, tryParseReference } from './reference.js';
import { MEDIA, sha256 } from './registry.js';
import type { Descriptor, ImageService } from './service.js';

/** Read access to the files of an archive by their path inside it. */
interface ArchiveFs {
  read(path: string): Promise<Buffer | undefined>;
  open(path: string): AsyncIterable<Buffer>;
  cleanup(): Promise<void>;
}

function clean(p: string): string {
  const parts: string[] = [];
  for (const c of p.split('/')) {
    if (!c || c === '.') continue;
    if (c === '..') parts.pop();
    else parts.push(c);
  }
  return parts.join('/');
}

function dirFs(dir: string): ArchiveFs {
  const abs = (p: string) => join(dir, clean(p));
  return {
    async read(p) {
      try {
        return await fs.readFile(abs(p));
      } catch (err) {
        if (isENOENT(err)) return undefined;
        throw err;
      }
    },
    open: (p) => createReadStream(abs(p), { highWaterMark: 1 << 20 }),
    async cleanup() {},
  };
}

async function tarFs(file: string, tmpRoot: string): Promise<ArchiveFs> {
  const tmp = join(tmpRoot, `import-${randomBytes(6).toString('hex')}`);
  await fs.mkdir(tmp, { recursive: true, mode: 0o700 });
  const files = new Map<string, string>();
  const links = new Map<string, string>();
  let n = 0;
  try {
    const src = await decompressed(createReadStream(file, { highWaterMark: 1 << 20 }));
    for await (const { entry, body } of readTar(src)) {
      const name = clean(entry.name);
      if (entry.type === 'file') {
        const dest = join(tmp, String(n++));
        const fh = await fs.open(dest, 'wx', 0o600);
        try {
          for await (const c of body) await fh.write(c);
        } finally {
          await fh.close();
        }
        files.set(name, dest);
      } else if (entry.type === 'symlink') {
        // Old docker save archives link duplicate layers to each other.
        links.set(name, clean(entry.linkname.startsWith('/') ? entry.linkname : posix.join(posix.dirname(name), entry.linkname)));
      } else if (entry.type === 'link') {
        links.set(name, clean(entry.linkname));
      }
    }
  } catch (err) {
    await fs.rm(tmp, { recursive: true, force: true });
    throw new InvalidArgumentError(`import ${file}: ${(err as Error).message}`, { cause: err });
  }
  const resolve = (p: string): string | undefined => {
    let cur = clean(p);
    for (let i = 0; i < 16; i++) {
      const f = files.get(cur);
      if (f) return f;
      const l = links.get(cur);
      if (!l) return undefined;
      cur = l;
    }
    return undefined;
  };
  return {
    async read(p) {
      const f = resolve(p);
      return f ? fs.readFile(f) : undefined;
    },
    open(p) {
      const f = resolve(p);
      if (!f) throw new NotFoundError(`archive has no file ${p}`);
      return createReadStream(f, { highWaterMark: 1 << 20 });
    },
    cleanup: () => fs.rm(tmp, { recursive: true, force: true }),
  };
}

function blobPath(digest: string): string {
  const [alg, hex] = digest.split(':');
  if (!alg || !hex || !/^[a-z0-9]+$/.test(alg) || !/^[a-f0-9]+$/.test(hex)) throw new InvalidArgumentError(`bad digest "${digest}" in archive`);
  return `blobs/${alg}/${hex}`;
}

async function hashStream(src: AsyncIterable<Buffer>): Promise<{ digest: string; size: number; head: Buffer }> {
  const h = createHash('sha256');
  let size = 0;
  let head = Buffer.alloc(0);
  for await (const c of src) {
    if (head.length < 4) head = Buffer.concat([head, c.subarray(0, 4)]);
    h.update(c);
    size += c.length;
  }
  return { digest: `sha256:${h.digest('hex')}`, size, head };
}

function normalName(name: string | undefined): string | undefined {
  if (!name || !(name.includes('/') || name.includes(':'))) return undefined;
  const r = tryParseReference(name);
  return r && !r.digest ? formatReference(r) : undefined;
}

/** Prefixes errors with the image they concern. */
async function named_<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (err instanceof RuntimeError) throw new RuntimeError(err.kind, `image ${what}: ${err.message}`, { cause: err });
    throw err;
  }
}

/** Imports every image of the archive; returns their ids and the tags they got. */
export async function importArchive(images: ImageService, file: string): Promise<{ id: string; tags: string[] }[]> {
  const st = await fs.stat(file).catch(() => undefined);
  if (!st) throw new NotFoundError(`import: ${file} does not exist`);
  const archive = st.isDirectory() ? dirFs(file) : await tarFs(file, join(images.rootDir, 'tmp'));
  const signal = new AbortController().signal;
  const out: { id: string; tags: string[] }[] = [];
  try {
    const indexBytes = await archive.read('index.json');
    const dockerBytes = await archive.read('manifest.json');
    const index = indexBytes ? (JSON.parse(indexBytes.toString('utf8')) as { manifests?: PlatformDescriptor[] }) : undefined;
    const named = (index?.manifests ?? []).filter((m) => normalName(m.annotations?.['io.containerd.image.name'] ?? m.annotations?.['org.opencontainers.image.ref.name']));
    const readBlob = async (d: string) => {
      const b = await archive.read(blobPath(d));
      if (!b) throw new InvalidArgumentError(`import ${file}: blob ${d} is missing`);
      if (sha256(b) !== d) throw new InvalidArgumentError(`import ${file}: blob ${d}: digest mismatch, got ${sha256(b)}`);
      return b;
    };
    const openLayer = (desc: Descriptor) => archive.open(blobPath(desc.digest)) as AsyncIterable<Buffer>;

    if (index && (named.length > 0 || !dockerBytes)) {
      for (const desc of index.manifests ?? []) {
        const name = normalName(desc.annotations?.['io.containerd.image.name'] ?? desc.annotations?.['org.opencontainers.image.ref.name']);
        const top = await readBlob(desc.digest);
        let manifest = top;
        let manifestDigest = desc.digest;
        let idx: Buffer | undefined;
        const j = JSON.parse(top.toString('utf8')) as { manifests?: PlatformDescriptor[]; mediaType?: string };
        if (Array.isArray(j.manifests)) {
          idx = top;
          const chosen = selectPlatform(j.manifests, images.platformInUse, name ?? desc.digest);
          manifestDigest = chosen.digest;
          manifest = await readBlob(chosen.digest);
        }
        const r = name ? tryParseReference(name) : undefined;
        const rec = await named_(name ?? desc.digest, () => images.commitImage({
          manifest, manifestDigest, index: idx, topDigest: desc.digest,
          tags: name ? [name] : [],
          digests: r ? [`${repoName(r)}@${desc.digest}`] : [],
          signal,
          readConfig: (d) => readBlob(d.digest),
          openLayer,
        }));
        out.push({ id: rec.id, tags: name ? [name] : [] });
      }
      return out;
    }

    if (!dockerBytes) throw new InvalidArgumentError(`import ${file}: neither an OCI layout (index.json) nor a docker save archive (manifest.json)`);
    const entries = JSON.parse(dockerBytes.toString('utf8')) as Array<{ Config: string; RepoTags?: string[] | null; Layers: string[] }>;
    for (const e of entries) {
      const config = await archive.read(e.Config);
      if (!config) throw new InvalidArgumentError(`import ${file}: config ${e.Config} is missing`);
      const layers: Descriptor[] = [];
      const paths = new Map<string, string>();
      for (const p of e.Layers) {
        const h = await hashStream(archive.open(p));
        const comp = sniffCompression(h.head);
        const mediaType = comp === 'gzip' ? 'application/vnd.docker.image.rootfs.diff.tar.gzip'
          : comp === 'zstd' ? 'application/vnd.oci.image.layer.v1.tar+zstd' : 'application/vnd.docker.image.rootfs.diff.tar';
        layers.push({ mediaType, digest: h.digest, size: h.size });
        paths.set(h.digest, p);
      }
      const manifest = Buffer.from(JSON.stringify({
        schemaVersion: 2,
        mediaType: MEDIA.dockerManifest,
        config: { mediaType: 'application/vnd.docker.container.image.v1+json', digest: sha256(config), size: config.length },
        layers,
      }));
      const tags = (e.RepoTags ?? []).map((t) => normalName(t)).filter((t): t is string => !!t);
      const rec = await named_(tags[0] ?? e.Config, () => images.commitImage({
        manifest, manifestDigest: sha256(manifest), topDigest: sha256(manifest), tags, digests: [], signal,
        readConfig: async () => config,
        openLayer: (d) => archive.open(paths.get(d.digest)!) as AsyncIterable<Buffer>,
      }));
      out.push({ id: rec.id, tags });
    }
    return out;
  } finally {
    await archive.cleanup();
  }
}
