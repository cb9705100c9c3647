/**
 * The image service: pull, list, status, remove with garbage collection, filesystem usage, and
 * the container rootfs (overlay over the image's layer snapshots) for the containers service.
 *
 * On disk under config.root_dir: content/ (manifests, indexes, configs by digest), snapshots/
 * (one directory per unpacked layer), rw/ (upper and work dirs per container), images/
 * (one JSON record per image).
 *
 * Pulls are joined at three levels: identical pull requests share one pull, layers share one
 * unpack per diff id, and a pull of an image already complete only resolves its manifest.
 */
import { promises as fs, watch, type FSWatcher } from 'node:fs';
import { availableParallelism } from 'node:os';
import { join, posix } from 'node:path';
import type { Config } from '../config.js';
import type { Metrics } from '../metrics.js';
import {
  CancelledError, DeadlineExceededError, FailedPreconditionError, InvalidArgumentError, NotFoundError, RuntimeError,
  UnavailableError, errorMessage,
} from '../errors.js';
import { fsops as realFsops, type FsOps } from '../linux/fsops.js';
import type { Syscalls } from '../linux/syscalls.js';
import { diskUsage, Snapshotter, type RootfsIdmap } from '../snapshot/snapshotter.js';
import type { Logger } from '../util/log.js';
import { credentialsFrom, type AuthConfig, type Credentials } from './auth.js';
import { ContentStore } from './content.js';
import { unpackBlob } from './layer.js';
import { UnpackPool } from './unpack-pool.js';
import { hostPlatform, selectPlatform, type Platform, type PlatformDescriptor } from './platform.js';
import { formatReference, parseReference, repoName, tagRef, tryParseReference, type Reference } from './reference.js';
import { MEDIA, RegistryBusyError, RegistryClient, sha256, type Endpoint } from './registry.js';
import { pinnedMatcher } from './pinned.js';
import { ImageStore, type ImageRecord, type LayerInfo, type StoredImage } from './store.js';

export type { ImageRecord } from './store.js';
export type { AuthConfig } from './auth.js';

export interface ImageServiceDeps {
  config: Config;
  logger: Logger;
  syscalls: Syscalls;
  /** mknod/xattr/fsconfig; the real ones by default. */
  fsops?: FsOps;
  /** Platform to select from indexes; this host's by default. */
  platform?: Platform;
  /** Pull bytes and durations for Prometheus; optional so tests can leave it out. */
  metrics?: Metrics;
}

export interface Descriptor {
  mediaType?: string;
  digest: string;
  size: number;
  urls?: string[];
}

interface Manifest {
  schemaVersion?: number;
  mediaType?: string;
  config?: Descriptor;
  layers?: Descriptor[];
  manifests?: PlatformDescriptor[];
}

/** Input of commitImage: what a pull or an import has resolved. */
export interface ImageContent {
  manifest: Buffer;
  manifestDigest: string;
  /** Index bytes when the image was chosen from an index. */
  index?: Buffer;
  topDigest: string;
  /** Opens the compressed bytes of a layer (verified by the caller against desc.digest here). */
  openLayer: (desc: Descriptor, signal: AbortSignal) => AsyncIterable<Buffer>;
  /** Reads the config blob when it is not in the content store yet. */
  readConfig: (desc: Descriptor, signal: AbortSignal) => Promise<Buffer>;
  /** Told +1/-1 while a layer waits for a download slot (waiting is not a stall). */
  onQueued?: (delta: number) => void;
  tags: string[];
  digests: string[];
  signal: AbortSignal;
}

export interface FsUsage {
  bytes: number;
  inodes: number;
  mountpoint: string;
}

class Semaphore {
  private active = 0;
  private readonly waiting: Array<() => void> = [];
  constructor(private readonly max: number) {}
  async run<T>(fn: () => Promise<T>): Promise<T> {
    if (this.active >= this.max) await new Promise<void>((r) => this.waiting.push(r));
    this.active++;
    try {
      return await fn();
    } finally {
      this.active--;
      this.waiting.shift()?.();
    }
  }
}

interface InflightPull {
  promise: Promise<string>;
  controller: AbortController;
  waiters: number;
}

/** Retries of one blob: after a broken transfer (resumed with Range) or a busy registry. */
const BLOB_ATTEMPTS = 3;
/** The longest Retry-After honoured; a registry asking for more gets the pull failed instead of a hung one. */
const BUSY_WAIT_MAX_MS = 10_000;

/** Waits ms unless the signal aborts first; `progress` is told every second (the pull watchdog). */
function sleepWithProgress(ms: number, signal: AbortSignal, progress: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(abortError(signal));
    const tick = setInterval(progress, 1000);
    const done = () => { clearTimeout(timer); clearInterval(tick); signal.removeEventListener('abort', onAbort); };
    const timer = setTimeout(() => { done(); resolve(); }, ms);
    const onAbort = () => { done(); reject(abortError(signal)); };
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

function parseJson<T>(b: Buffer, what: string): T {
  try {
    return JSON.parse(b.toString('utf8')) as T;
  } catch {
    throw new InvalidArgumentError(`${what} is not valid JSON`);
  }
}

function abortError(signal: AbortSignal): Error {
  return signal.reason instanceof RuntimeError ? signal.reason : new CancelledError('pull cancelled');
}

export class ImageService {
  private readonly pulls = new Map<string, InflightPull>();
  private readonly leases = new Map<string, number>();
  private inUse: (imageId: string) => string[] = () => [];
  private readonly downloads: Semaphore;
  private readonly platform: Platform;
  /** Serialises removals and GC against each other. */
  private gcChain: Promise<unknown> = Promise.resolve();
  /** Set by create() from its deps. */
  private metrics: Metrics | undefined;
  /** config.image.pinned_images; applied when images are reported, so a config change needs no rewrite of records. */
  private readonly isPinned: (img: ImageRecord) => boolean;

  private constructor(
    private readonly config: Config,
    private readonly logger: Logger,
    readonly content: ContentStore,
    readonly images: ImageStore,
    readonly snapshots: Snapshotter,
    private readonly registry: RegistryClient,
    private readonly fsops: FsOps,
    platform: Platform,
    /** Worker threads for unpacking; absent when the caller injected its own FsOps (tests). */
    private readonly pool: UnpackPool | undefined,
  ) {
    this.downloads = new Semaphore(Math.max(1, config.pull.max_concurrent_downloads));
    this.platform = platform;
    this.isPinned = pinnedMatcher(config.image?.pinned_images ?? []);
  }

  static async create(deps: ImageServiceDeps): Promise<ImageService> {
    const root = deps.config.root_dir;
    const ops = deps.fsops ?? realFsops;
    const content = new ContentStore(join(root, 'content'));
    const images = new ImageStore(join(root, 'images'), deps.logger);
    // Writable layers live apart from <root>/containers/<id>, the container service's own directory.
    const snapshots = new Snapshotter(join(root, 'snapshots'), join(root, 'rw'), deps.syscalls, ops, deps.logger);
    await content.init();
    // Leftovers of interrupted imports.
    await fs.rm(join(root, 'tmp'), { recursive: true, force: true });
    await images.load();
    await snapshots.load();
    const svc = new ImageService(deps.config, deps.logger, content, images, snapshots, new RegistryClient(deps.config, deps.logger), ops, deps.platform ?? hostPlatform(),
      deps.fsops ? undefined : new UnpackPool(Math.max(1, Math.min(deps.config.pull.max_concurrent_downloads, availableParallelism()))));
    svc.metrics = deps.metrics;
    svc.watchStore();
    return svc;
  }

  private watcher: FSWatcher | undefined;
  private reloadTimer: NodeJS.Timeout | undefined;

  /**
   * `corral import` writes into the store of a running daemon; watching the image records
   * lets the daemon list those images without a restart.
   */
  private watchStore(): void {
    try {
      this.watcher = watch(this.images.dir, { persistent: false }, () => {
        if (this.reloadTimer) return;
        this.reloadTimer = setTimeout(() => {
          this.reloadTimer = undefined;
          // Serialised with removals, so a record being removed is not read back.
          const run = this.gcChain.catch(() => undefined).then(async () => {
            await this.snapshots.refresh();
            const n = await this.images.loadNew();
            if (n) this.logger.info(`images: picked up ${n} image(s) added by another process`);
          });
          this.gcChain = run;
          run.catch((err) => this.logger.warn(`reloading image records: ${errorMessage(err)}`));
        }, 200);
        this.reloadTimer.unref();
      });
    } catch (err) {
      this.logger.warn(`cannot watch ${this.images.dir}: ${errorMessage(err)}`);
    }
  }

  /** config.root_dir: where images, snapshots and temporary imports live. */
  get rootDir(): string {
    return this.config.root_dir;
  }

  /** The platform chosen from multi-platform indexes. */
  get platformInUse(): Platform {
    return this.platform;
  }

  /** Tells the service which containers use an image (RemoveImage refuses those). */
  setInUse(fn: (imageId: string) => string[]): void {
    this.inUse = fn;
  }

  // ---- lookups ----

  /** By full id, id without "sha256:", unique id prefix, tag reference or digest reference. */
  resolve(ref: string): ImageRecord | undefined {
    return this.find(ref)?.img;
  }

  private find(ref: string): { img: StoredImage; by: 'id' | 'tag' | 'digest'; key: string } | undefined {
    if (!ref) return undefined;
    if (ref.startsWith('sha256:') || /^[a-f0-9]{64}$/.test(ref)) {
      const img = this.images.byIdPrefix(ref);
      return img ? { img, by: 'id', key: img.id } : undefined;
    }
    const r = tryParseReference(ref);
    if (r) {
      if (r.digest) {
        const key = `${repoName(r)}@${r.digest}`;
        const img = this.images.byDigest(key);
        if (img) return { img, by: 'digest', key };
      } else {
        const key = tagRef(r)!;
        const img = this.images.byTag(key);
        if (img) return { img, by: 'tag', key };
      }
    }
    const img = /^[a-f0-9]{4,63}$/.test(ref) ? this.images.byIdPrefix(ref) : undefined;
    return img ? { img, by: 'id', key: img.id } : undefined;
  }

  /** All images, or those a reference (tag, digest or id) names. */
  list(filter?: string): ImageRecord[] {
    if (filter) {
      const f = this.find(filter);
      return f ? [this.reported(f.img)] : [];
    }
    return this.images.list().map((img) => this.reported(img));
  }

  /** The record as ListImages and ImageStatus report it. */
  private reported<T extends ImageRecord>(img: T): T {
    return { ...img, pinned: img.pinned || this.isPinned(img) };
  }

  /** The image and, for verbose status, manifest and config. */
  async status(ref: string): Promise<{ image: ImageRecord; manifest?: unknown; layers: LayerInfo[] } | undefined> {
    const f = this.find(ref);
    if (!f) return undefined;
    const m = await this.content.read(f.img.manifestDigest);
    return { image: this.reported(f.img), manifest: m ? JSON.parse(m.toString('utf8')) : undefined, layers: f.img.layers };
  }

  // ---- pull ----

  /** Pulls ref and returns the image id. Identical concurrent pulls share one. */
  async pull(ref: string, auth: AuthConfig | null | undefined, signal: AbortSignal): Promise<string> {
    const r = parseReference(ref);
    const creds = credentialsFrom(auth);
    const key = `${formatReference(r)}|${creds.kind === 'anonymous' ? '' : sha256(JSON.stringify(creds))}`;
    let p = this.pulls.get(key);
    // A pull whose callers all left is being torn down: start afresh rather than join it.
    if (!p || p.controller.signal.aborted) {
      const controller = new AbortController();
      const entry: InflightPull = { controller, waiters: 0, promise: Promise.resolve('') };
      entry.promise = this.doPull(r, creds, controller.signal).finally(() => {
        if (this.pulls.get(key) === entry) this.pulls.delete(key);
      });
      this.pulls.set(key, entry);
      p = entry;
    }
    const pull = p;
    pull.waiters++;
    return new Promise<string>((resolve, reject) => {
      let done = false;
      const onAbort = () => {
        if (done) return;
        done = true;
        // The shared pull stops only when every caller has gone.
        if (--pull.waiters === 0) pull.controller.abort(new CancelledError(`pull of ${ref} cancelled`));
        reject(abortError(signal));
      };
      if (signal.aborted) return onAbort();
      signal.addEventListener('abort', onAbort, { once: true });
      pull.promise.then(
        (v) => { if (!done) { done = true; pull.waiters--; signal.removeEventListener('abort', onAbort); resolve(v); } },
        (e) => { if (!done) { done = true; pull.waiters--; signal.removeEventListener('abort', onAbort); reject(e); } },
      );
    });
  }

  private async doPull(r: Reference, creds: Credentials, outer: AbortSignal): Promise<string> {
    const ref = formatReference(r);
    const timeoutS = this.config.pull.progress_timeout_seconds;
    const watchdog = new AbortController();
    let queued = 0;
    const timer = setTimeout(() => {
      // Layers queued behind other pulls' downloads are waiting, not stalled.
      if (queued > 0) timer.refresh();
      else watchdog.abort(new DeadlineExceededError(`pull of ${ref} cancelled: no data received for ${timeoutS} s (pull.progress_timeout_seconds)`));
    }, timeoutS * 1000);
    const progress = () => timer.refresh();
    const signal = AbortSignal.any([outer, watchdog.signal]);
    const started = Date.now();
    try {
      const repo = r.path;
      const top = await this.registry.manifest(r.domain, repo, r.digest ?? r.tag!, creds, signal, ref);
      progress();
      const ep = top.endpoint;
      let manifestBytes = top.body;
      let manifestDigest = top.digest;
      let index: Buffer | undefined;
      const topJson = parseJson<Manifest>(top.body, `manifest of ${ref}`);
      if (top.mediaType === MEDIA.ociIndex || top.mediaType === MEDIA.dockerList || Array.isArray(topJson.manifests)) {
        index = top.body;
        const chosen = selectPlatform(topJson.manifests ?? [], this.platform, ref);
        manifestDigest = chosen.digest;
        manifestBytes = (await this.content.read(chosen.digest)) ?? (await this.registry.manifestFrom(ep, repo, chosen.digest, creds, signal)).body;
        progress();
      }
      const tags = r.digest ? [] : [tagRef(r)!];
      const digests = [`${repoName(r)}@${top.digest}`];
      const id = await this.commitImage({
        manifest: manifestBytes,
        manifestDigest,
        index,
        topDigest: top.digest,
        tags,
        digests,
        signal,
        readConfig: async (desc, sig) => {
          const parts: Buffer[] = [];
          for await (const c of this.blobStream(ep, repo, desc, creds, sig, progress)) parts.push(c);
          return Buffer.concat(parts);
        },
        openLayer: (desc, sig) => this.blobStream(ep, repo, desc, creds, sig, progress),
        onQueued: (d) => { queued += d; },
      });
      this.logger.info(`pulled ${ref} as ${id.id} in ${Date.now() - started} ms from ${this.registry.describe(ep)}`);
      this.metrics?.pullDuration.observe((Date.now() - started) / 1000);
      return id.id;
    } catch (err) {
      if (signal.aborted) throw abortError(signal);
      throw err;
    } finally {
      clearTimeout(timer);
    }
  }

  /** A blob's bytes from the endpoint, resuming with Range after a broken transfer. */
  private async *blobStream(ep: Endpoint, repo: string, desc: Descriptor, creds: Credentials, signal: AbortSignal, progress: () => void): AsyncGenerator<Buffer> {
    let offset = 0;
    let failures = 0;
    for (;;) {
      let res;
      try {
        res = await this.registry.blob(ep, repo, desc.digest, creds, signal, offset);
      } catch (err) {
        // 429 and 5xx are the registry asking to come back: as it says (Retry-After, at most
        // BUSY_WAIT_MAX_MS), else with a doubling backoff; the watchdog counts the wait as progress.
        if (!(err instanceof RegistryBusyError) || signal.aborted || ++failures > BLOB_ATTEMPTS) throw err;
        const wait = Math.min(err.retryAfterMs ?? 250 * 2 ** (failures - 1), BUSY_WAIT_MAX_MS);
        this.logger.warn(`${errorMessage(err)}; retrying in ${wait} ms (attempt ${failures + 1} of ${BLOB_ATTEMPTS + 1})`);
        await sleepWithProgress(wait, signal, progress);
        continue;
      }
      progress();
      // A server that ignores Range sends the blob from the start again.
      let skip = offset > 0 && res.status === 200 ? offset : 0;
      try {
        for await (const chunk of res.body as AsyncIterable<Buffer>) {
          progress();
          let b = chunk;
          if (skip) {
            if (b.length <= skip) {
              skip -= b.length;
              continue;
            }
            b = b.subarray(skip);
            skip = 0;
          }
          offset += b.length;
          this.metrics?.pullBytes.inc(b.length);
          yield b;
        }
        if (desc.size && offset < desc.size) throw new Error(`connection closed after ${offset} of ${desc.size} bytes`);
        return;
      } catch (err) {
        if (signal.aborted) throw abortError(signal);
        if (++failures > BLOB_ATTEMPTS) throw new UnavailableError(`blob ${desc.digest} from ${ep.host}: ${errorMessage(err)} (after ${failures} attempts)`);
        this.logger.warn(`blob ${desc.digest} from ${ep.host}: ${errorMessage(err)}; resuming at byte ${offset}`);
        await new Promise((r) => setTimeout(r, 100 * failures));
      } finally {
        if (!res.body.complete) res.body.destroy();
      }
    }
  }

  private lease(keys: string[]): () => void {
    for (const k of keys) this.leases.set(k, (this.leases.get(k) ?? 0) + 1);
    let released = false;
    return () => {
      if (released) return;
      released = true;
      for (const k of keys) {
        const n = (this.leases.get(k) ?? 1) - 1;
        if (n <= 0) this.leases.delete(k);
        else this.leases.set(k, n);
      }
    };
  }

  /**
   * Turns a resolved manifest into a stored image: config, layers unpacked into snapshots (in
   * parallel, each at most once), blobs, record and names. Used by pull and import.
   */
  async commitImage(c: ImageContent): Promise<ImageRecord> {
    const m = parseJson<Manifest>(c.manifest, `manifest ${c.manifestDigest}`);
    if (m.schemaVersion === 1) throw new InvalidArgumentError(`manifest ${c.manifestDigest}: Docker schema 1 manifests are not supported`);
    if (!m.config?.digest || !Array.isArray(m.layers)) throw new InvalidArgumentError(`manifest ${c.manifestDigest} has no config or layers`);
    const id = m.config.digest;
    const layers = m.layers;
    const release = this.lease([id, c.manifestDigest, c.topDigest, ...layers.map((l) => l.digest)]);
    try {
      const existing = this.images.get(id);
      if (existing && existing.layers.every((l) => this.snapshots.get(l.diffId))) {
        // Leased before anything awaits, so a concurrent GC keeps these snapshots.
        const releaseExisting = this.lease(existing.layers.map((l) => l.diffId));
        try {
          return await this.images.put(existing, c.tags, c.digests);
        } finally {
          releaseExisting();
        }
      }
      let configBytes = await this.content.read(id);
      if (!configBytes) {
        configBytes = await c.readConfig(m.config, c.signal);
        if (sha256(configBytes) !== id) throw new InvalidArgumentError(`config ${id}: digest mismatch: got ${sha256(configBytes)}`);
      }
      const config = parseJson<any>(configBytes, `image config ${id}`);
      const diffIds: string[] = config?.rootfs?.diff_ids ?? [];
      if (diffIds.length !== layers.length) {
        throw new InvalidArgumentError(`image ${id}: config lists ${diffIds.length} diff ids for ${layers.length} layers`);
      }
      const releaseSnaps = this.lease(diffIds);
      try {
        // One failed layer stops the others, and all must have stopped before GC looks.
        const stop = new AbortController();
        const signal = AbortSignal.any([c.signal, stop.signal]);
        const unpackOne = async (l: Descriptor, diffId: string, dir: string) => {
          c.onQueued?.(1);
          return this.downloads.run(() => {
            c.onQueued?.(-1);
            if (signal.aborted) throw abortError(signal);
            const src = c.openLayer(l, signal);
            return this.pool ? this.pool.unpack(dir, src, l.digest, diffId, signal) : unpackBlob(dir, src, l.digest, diffId, this.fsops);
          });
        };
        const ensure = async (l: Descriptor, diffId: string): Promise<unknown> => {
          try {
            return await this.snapshots.ensure(diffId, (dir) => unpackOne(l, diffId, dir));
          } catch (err) {
            // We may have joined the unpack of a pull whose callers all left: do it ourselves.
            if (err instanceof RuntimeError && err.kind === 'Cancelled' && !signal.aborted) {
              return this.snapshots.ensure(diffId, (dir) => unpackOne(l, diffId, dir));
            }
            throw err;
          }
        };
        const results = await Promise.allSettled(layers.map((l, i) =>
          ensure(l, diffIds[i]!).catch((err) => {
            if (!stop.signal.aborted) stop.abort(err);
            throw err;
          })));
        const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
        if (failed) throw stop.signal.reason ?? failed.reason;
        await this.checkCrossLayerSymlinks(diffIds);
        await this.content.write(id, configBytes);
        await this.content.write(c.manifestDigest, c.manifest);
        if (c.index) await this.content.write(c.topDigest, c.index);
        const rec: StoredImage = {
          id,
          repoTags: [],
          repoDigests: [],
          size: m.config.size + layers.reduce((a, l) => a + (l.size || 0), 0),
          config,
          pinned: false,
          manifestDigest: c.manifestDigest,
          topDigest: c.topDigest,
          layers: layers.map((l, i) => ({ digest: l.digest, mediaType: l.mediaType ?? '', size: l.size, diffId: diffIds[i]! })),
          created: Date.now(),
        };
        return await this.images.put(rec, c.tags, c.digests);
      } finally {
        releaseSnaps();
      }
    } catch (err) {
      release();
      // Layers of a refused or failed image that no other image has must not stay behind.
      await this.gc().catch((e) => this.logger.warn(`gc after failed commit: ${errorMessage(e)}`));
      throw err;
    } finally {
      release();
    }
  }

  /**
   * Layers are unpacked independently, so a layer that writes "escape/file" where a lower layer
   * has "escape -> /tmp" just gets its own directory, which overlay shows instead of the link:
   * nothing leaves the root. Such a layer is still hostile (unpacked in place, as docker's
   * applier does, it would write through the link), so the image is refused.
   */
  private async checkCrossLayerSymlinks(diffIds: string[]): Promise<void> {
    for (let i = 1; i < diffIds.length; i++) {
      const upper = this.snapshots.get(diffIds[i]!)!;
      for (const p of upper.implicitDirs) {
        for (let j = i - 1; j >= 0; j--) {
          const lower = this.snapshots.get(diffIds[j]!)!;
          let st;
          try {
            st = await fs.lstat(join(lower.dir, p));
          } catch {
            continue;
          }
          if (st.isSymbolicLink()) {
            const target = await fs.readlink(join(lower.dir, p));
            const inside = !target.startsWith('/') && !posix.normalize(posix.join(posix.dirname(p), target)).startsWith('..');
            if (!inside) throw new InvalidArgumentError(`layer rejected: layer ${i + 1} (${diffIds[i]}) writes below "${p}", which layer ${j + 1} makes a symlink pointing outside the root (${target})`);
          }
          break;
        }
      }
    }
  }

  // ---- remove and GC ----

  /** Removes a tag, a repo digest or (by id) the image. Unknown references succeed. */
  async remove(ref: string): Promise<void> {
    const run = this.gcChain.catch(() => undefined).then(async () => {
      const f = this.find(ref);
      if (!f) return;
      const users = this.inUse(f.img.id);
      if (f.by === 'tag') {
        const rec = await this.images.untag(f.img.id, f.key);
        if (!rec || rec.repoTags.length > 0 || users.length > 0) return;
      } else if (f.by === 'digest') {
        const rec = this.images.get(f.img.id)!;
        if (rec.repoTags.length > 0) {
          // The digest of a still-tagged image: drop just that name.
          await this.images.dropDigest(rec.id, f.key);
          return;
        }
      }
      if (users.length > 0) {
        throw new FailedPreconditionError(`image ${f.img.id} is in use by container(s) ${users.join(', ')}`);
      }
      await this.images.remove(f.img.id);
      await this.gcNow();
    });
    this.gcChain = run;
    await run;
  }

  /** Removes snapshots and blobs no image, container or pull in progress uses. */
  private async gcNow(): Promise<void> {
    const keep = new Set<string>([...this.leases.keys(), ...this.snapshots.inUseByContainers()]);
    for (const img of this.images.list()) {
      keep.add(img.id).add(img.manifestDigest).add(img.topDigest);
      for (const l of img.layers) keep.add(l.diffId);
    }
    // Leases are checked again right before each removal: a pull may have taken one while an
    // earlier removal was awaited (the check and the forgetting happen without an await between).
    for (const s of this.snapshots.list()) {
      if (!keep.has(s.key) && !this.leases.has(s.key)) await this.snapshots.remove(s.key);
    }
    for (const d of await this.content.list()) {
      if (!keep.has(d) && !this.leases.has(d)) await this.content.remove(d);
    }
  }

  /** Runs garbage collection (after a crash, or from a timer). */
  async gc(): Promise<void> {
    const run = this.gcChain.catch(() => undefined).then(() => this.gcNow());
    this.gcChain = run;
    await run;
  }

  // ---- usage ----

  async fsInfo(): Promise<{ image: FsUsage; containers: FsUsage }> {
    let bytes = 0;
    let inodes = 0;
    for (const s of this.snapshots.list()) {
      bytes += s.size;
      inodes += s.inodes;
    }
    const c = await this.content.usage();
    let cb = 0;
    let ci = 0;
    for (const id of this.snapshots.containerIds()) {
      const u = await diskUsage(this.snapshots.upperDir(id));
      cb += u.bytes;
      ci += u.inodes;
    }
    return {
      image: { bytes: bytes + c.bytes, inodes: inodes + c.inodes, mountpoint: this.snapshots.dir },
      containers: { bytes: cb, inodes: ci, mountpoint: this.snapshots.containersDir },
    };
  }

  // ---- container rootfs ----

  /**
   * Creates upper/work for the container and mounts the overlay at target. With idmap (a pod
   * with its own user namespace) the layers are seen through the namespace's maps and the
   * upper dir belongs to the container's root, so that root owns the rootfs as without one.
   */
  async prepareRootfs(containerId: string, imageId: string, target: string, opts: { readonly?: boolean; idmap?: RootfsIdmap } = {}): Promise<void> {
    const img = this.images.get(imageId) ?? this.find(imageId)?.img;
    if (!img) throw new NotFoundError(`image "${imageId}" not found`);
    const lowers = img.layers.map((l) => l.diffId).reverse();
    const mount = await this.snapshots.prepare(containerId, lowers, !!opts.readonly);
    try {
      await fs.mkdir(target, { recursive: true, mode: 0o755 });
      if (opts.idmap) await fs.chown(mount.upper, opts.idmap.uid, opts.idmap.gid);
      this.snapshots.mount(mount, target, opts.idmap ? { key: containerId, usernsPath: opts.idmap.usernsPath } : undefined);
    } catch (err) {
      await this.snapshots.release(containerId, '').catch(() => undefined);
      throw err;
    }
  }

  /** Unmounts (ignoring "not mounted") and deletes upper/work. Idempotent. */
  async releaseRootfs(containerId: string, target: string): Promise<void> {
    await this.snapshots.release(containerId, target);
  }

  // ---- image volumes ----

  /**
   * Mounts a read-only view of the image's layers at target (an image volume). key names the
   * view (its owner's id first, so that viewKeys(ownerId) finds them); the layers it uses are
   * kept from GC until releaseImageVolume.
   */
  async prepareImageVolume(key: string, imageId: string, target: string, opts: { idmap?: RootfsIdmap } = {}): Promise<void> {
    const img = this.images.get(imageId) ?? this.find(imageId)?.img;
    if (!img) throw new NotFoundError(`image "${imageId}" not found`);
    const mount = await this.snapshots.prepareView(key, img.layers.map((l) => l.diffId).reverse(), target);
    try {
      await fs.mkdir(target, { recursive: true, mode: 0o755 });
      this.snapshots.mount(mount, target, opts.idmap ? { key, usernsPath: opts.idmap.usernsPath } : undefined);
    } catch (err) {
      await this.snapshots.releaseView(key).catch(() => undefined);
      throw err;
    }
  }

  /** Unmounts the image volume and lets GC have its layers again. Idempotent. */
  async releaseImageVolume(key: string): Promise<void> {
    await this.snapshots.releaseView(key);
  }

  /** Keys of the image volumes mounted, those starting with prefix. */
  imageVolumeKeys(prefix = ''): string[] {
    return this.snapshots.viewKeys(prefix);
  }

  async rootfsUsage(containerId: string): Promise<FsUsage> {
    const upper = this.snapshots.upperDir(containerId);
    const u = await diskUsage(upper);
    return { ...u, mountpoint: upper };
  }

  /** Resolves once the unpack workers (started with the service) are loaded: a daemon has had them since boot. */
  async ready(): Promise<void> {
    await this.pool?.ready();
  }

  async close(): Promise<void> {
    this.watcher?.close();
    await this.pool?.close();
    if (this.reloadTimer) clearTimeout(this.reloadTimer);
    for (const p of this.pulls.values()) p.controller.abort(new CancelledError('image service closing'));
  }
}
