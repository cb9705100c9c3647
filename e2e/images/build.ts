/**
 * Builds every e2e test image, offline and reproducibly, into one OCI image layout.
 *
 * CLI:  node dist/e2e/images/build.js OUTDIR [--large] [--only NAME,NAME] [--quiet]
 * API:  const m = await buildImages({ outDir, large?: boolean, only?: string[], log? });
 *
 * Output:
 *   OUTDIR/oci/            OCI layout; index.json names each image by ref.name = image name
 *   OUTDIR/images.json     ImagesManifest (see manifest.ts): refs, digests, media types, purpose
 *
 * Cache: each image has an input hash (builder code + definition + content of the host files it
 * is made of); an image whose hash matches the previous images.json and whose blobs are all
 * present is not rebuilt, so a second run takes well under a second. Blobs no image references
 * any more are removed. A lock directory serializes concurrent builds of the same OUTDIR.
 * The large benchmark image is built only with --large / large: true, and kept once built.
 */
import { createHash } from 'node:crypto';
import { promises as fs, readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { catalog, createBuildCtx, NOT_REPRODUCIBLE, type ImageDef } from './catalog.js';
import { BlobStore, MT, REF_NAME, writeLayoutIndex, type Descriptor } from './oci.js';
import { HostFiles } from './rootfs.js';
import { MANIFEST_FILE, type BuiltImage, type ImagesManifest } from './manifest.js';

export interface BuildOptions {
  outDir: string;
  /** Also build the ~216 MiB benchmark image (slow). */
  large?: boolean;
  /** Only (re)build these image names; others are kept from the previous build if still valid. */
  only?: string[];
  log?: (line: string) => void;
}

const HERE = path.dirname(fileURLToPath(import.meta.url));

/** Hash of this builder's compiled code: a change to any image definition invalidates the cache. */
function codeHash(): string {
  const h = createHash('sha256');
  for (const f of readdirSync(HERE).filter((n) => n.endsWith('.js') && !n.endsWith('.test.js')).sort()) {
    h.update(f).update('\0').update(readFileSync(path.join(HERE, f))).update('\0');
  }
  return h.digest('hex');
}

function inputHash(def: ImageDef, code: string, host: HostFiles): string {
  const h = createHash('sha256');
  h.update(code);
  h.update(JSON.stringify({ name: def.name, refs: def.refs, category: def.category, purpose: def.purpose, expect: def.expect }));
  for (const p of def.hostInputs(host)) {
    h.update('\0' + p + '\0').update(createHash('sha256').update(host.read(p)).digest());
  }
  return 'sha256:' + h.digest('hex');
}

/** All blob digests reachable from a top-level descriptor. */
async function reachable(store: BlobStore, d: Pick<Descriptor, 'digest' | 'mediaType'>, out: Set<string>): Promise<void> {
  out.add(d.digest);
  if (d.mediaType === MT.ociIndex || d.mediaType === MT.dockerList) {
    const doc = JSON.parse((await store.read(d.digest)).toString()) as { manifests: Descriptor[] };
    for (const m of doc.manifests) await reachable(store, m, out);
  } else if (d.mediaType === MT.ociManifest || d.mediaType === MT.dockerManifest) {
    const doc = JSON.parse((await store.read(d.digest)).toString()) as { config: Descriptor; layers: Descriptor[] };
    out.add(doc.config.digest);
    for (const l of doc.layers) out.add(l.digest);
  }
}

async function complete(store: BlobStore, img: BuiltImage): Promise<boolean> {
  try {
    const all = new Set<string>();
    await reachable(store, img, all);
    for (const d of all) if (!(await store.has(d))) return false;
    return true;
  } catch {
    return false;
  }
}

async function withLock<T>(dir: string, fn: () => Promise<T>): Promise<T> {
  const lock = path.join(dir, '.build-lock');
  const deadline = Date.now() + 30 * 60_000;
  for (;;) {
    try {
      await fs.mkdir(lock);
      await fs.writeFile(path.join(lock, 'pid'), String(process.pid));
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
      let holder = 0;
      try { holder = Number(await fs.readFile(path.join(lock, 'pid'), 'utf8')); } catch { /* being written */ }
      let alive = true;
      if (holder > 0) { try { process.kill(holder, 0); } catch { alive = false; } }
      if (!alive) { await fs.rm(lock, { recursive: true, force: true }); continue; }
      if (Date.now() > deadline) throw new Error(`image build lock ${lock} held by pid ${holder}`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
  try {
    return await fn();
  } finally {
    await fs.rm(lock, { recursive: true, force: true });
  }
}

async function previous(outDir: string): Promise<Map<string, BuiltImage>> {
  try {
    const m = JSON.parse(await fs.readFile(path.join(outDir, MANIFEST_FILE), 'utf8')) as ImagesManifest;
    return new Map(m.images.map((i) => [i.name, i]));
  } catch {
    return new Map();
  }
}

async function gc(store: BlobStore, images: BuiltImage[]): Promise<number> {
  const keep = new Set<string>();
  for (const img of images) {
    await reachable(store, img, keep);
    for (const t of img.tamperedBlobs ?? []) keep.add(t);
  }
  const dir = path.join(store.layoutDir, 'blobs', 'sha256');
  let removed = 0;
  let names: string[] = [];
  try { names = await fs.readdir(dir); } catch { return 0; }
  for (const n of names) {
    if (!keep.has('sha256:' + n)) {
      await fs.rm(path.join(dir, n), { force: true });
      removed++;
    }
  }
  return removed;
}

export async function buildImages(opts: BuildOptions): Promise<ImagesManifest> {
  const log = opts.log ?? (() => {});
  const outDir = path.resolve(opts.outDir);
  await fs.mkdir(outDir, { recursive: true });
  return withLock(outDir, async () => {
    const layoutDir = path.join(outDir, 'oci');
    const store = new BlobStore(layoutDir);
    const host = new HostFiles();
    const ctx = createBuildCtx(store, host);
    const code = codeHash();
    const prev = await previous(outDir);
    const images: BuiltImage[] = [];
    const skipped: { name: string; reason: string }[] = [];
    for (const def of catalog()) {
      let hash: string;
      try {
        hash = inputHash(def, code, host);
      } catch (err) {
        // A host without, say, nginx still gets every other image; the record says what is missing.
        const reason = `host input missing: ${(err as Error).message}`;
        skipped.push({ name: def.name, reason });
        log(`skipped ${def.name}: ${reason}`);
        continue;
      }
      const old = prev.get(def.name);
      const cached = old && old.inputHash === hash && (await complete(store, old)) ? old : undefined;
      const wanted = (!opts.only || opts.only.includes(def.name)) && (!def.large || opts.large);
      if (cached) {
        images.push(cached);
        log(`cached  ${def.name}`);
        continue;
      }
      if (!wanted) continue;
      const started = Date.now();
      const out = await def.build(ctx);
      images.push({
        name: def.name, category: def.category, purpose: def.purpose, refs: def.refs,
        digest: out.descriptor.digest, mediaType: out.descriptor.mediaType, size: out.descriptor.size,
        ...(out.configDigest ? { configDigest: out.configDigest } : {}),
        layerMediaTypes: out.layerMediaTypes, platforms: out.platforms,
        ...(out.tamperedBlobs ? { tamperedBlobs: out.tamperedBlobs } : {}),
        ...(def.expect ? { expect: def.expect } : {}),
        inputHash: hash,
      });
      log(`built   ${def.name} ${out.descriptor.digest} (${Date.now() - started} ms)`);
    }
    await writeLayoutIndex(layoutDir, images.map((i) => ({
      mediaType: i.mediaType, digest: i.digest, size: i.size, annotations: { [REF_NAME]: i.name },
    })));
    const removed = await gc(store, images);
    if (removed > 0) log(`removed ${removed} unreferenced blobs`);
    const manifest: ImagesManifest = {
      version: 1, layout: 'oci', images, notReproducible: NOT_REPRODUCIBLE, ...(skipped.length ? { skipped } : {}),
    };
    const tmp = path.join(outDir, `${MANIFEST_FILE}.tmp-${process.pid}`);
    await fs.writeFile(tmp, JSON.stringify(manifest, null, 2) + '\n');
    await fs.rename(tmp, path.join(outDir, MANIFEST_FILE));
    return manifest;
  });
}

async function main(argv: string[]): Promise<void> {
  const args = argv.slice(2);
  const onlyIdx = args.indexOf('--only');
  const outDir = args.find((a, i) => !a.startsWith('--') && (onlyIdx < 0 || i !== onlyIdx + 1));
  if (!outDir) {
    process.stderr.write('usage: node dist/e2e/images/build.js OUTDIR [--large] [--only NAME,NAME] [--quiet]\n');
    process.exit(2);
  }
  const only = onlyIdx >= 0 ? args[onlyIdx + 1]?.split(',').filter(Boolean) : undefined;
  const quiet = args.includes('--quiet');
  const started = Date.now();
  const m = await buildImages({
    outDir, large: args.includes('--large'), only,
    log: quiet ? undefined : (l) => process.stdout.write(l + '\n'),
  });
  process.stdout.write(`${m.images.length} images in ${path.resolve(outDir)} (${Date.now() - started} ms)\n`);
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv).catch((err: unknown) => {
    process.stderr.write(`image build failed: ${err instanceof Error ? err.stack : String(err)}\n`);
    process.exit(1);
  });
}
