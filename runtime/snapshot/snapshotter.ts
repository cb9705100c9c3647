/**
 * Overlay snapshots: one directory per unpacked layer, keyed by the layer's diff id (the
 * digest of its uncompressed tar). With overlay every layer directory stands alone (lower
 * layers are merged at mount time), so a layer is shared by every image that has it whatever
 * lies beneath it, and the layers of one image unpack in parallel.
 *
 * Layout: <dir>/<n>/fs holds the files, <dir>/<n>/meta.json (written last, atomically) marks
 * the snapshot committed. The numeric names are short on purpose: overlay's mount(2) data is
 * limited to one page, and with "/var/lib/corral/snapshots/123/fs:" per layer 100+ layers fit.
 * A directory without meta.json is a crashed unpack and is removed at load.
 *
 * Container rootfs: <containersDir>/<id>/{upper,work} (<root>/rw/<id>) plus rootfs.json naming the snapshots it
 * uses, so that GC keeps them across restarts.
 */
import { closeSync, mkdirSync, openSync, promises as fs, rmdirSync } from 'node:fs';
import { join } from 'node:path';
import { errnoCode, errorMessage, InvalidArgumentError, NotFoundError } from '../errors.js';
import type { FsOps } from '../linux/fsops.js';
import { MNT_DETACH, MS_RDONLY, UMOUNT_NOFOLLOW, type Syscalls } from '../linux/syscalls.js';
import { writeFileAtomic } from '../state/store.js';
import type { Logger } from '../util/log.js';
import type { UnpackStats } from './unpack.js';

export interface Snapshot {
  key: string;
  n: number;
  /** The directory overlay uses as a lowerdir. */
  dir: string;
  size: number;
  inodes: number;
  /** See UnpackStats.implicitDirs. */
  implicitDirs: string[];
}

/** What prepare returns: a mount that the caller (or prepareRootfs) performs. */
export interface Mount {
  type: 'overlay';
  source: 'overlay';
  lowers: string[];
  /** '' for a read-only view (prepareView): overlay with lower dirs only. */
  upper: string;
  work: string;
  readonly: boolean;
}

/** A rootfs (or view) for a pod with its own user namespace: seen through its maps. */
export interface RootfsIdmap {
  /** The pinned user namespace. */
  usernsPath: string;
  /** Host uid and gid of the container's root: they own the upper dir. */
  uid: number;
  gid: number;
}

/** What <containersDir>/<key>/rootfs.json records. */
interface PreparedRecord {
  lowers: string[];
  /** Set for views: where the view is mounted, so that it can be released after a restart. */
  view?: { target: string };
}

const PAGE = 4096;

export class Snapshotter {
  private readonly byKey = new Map<string, Snapshot>();
  private readonly inflight = new Map<string, Promise<Snapshot>>();
  private next = 1;
  /** Snapshot keys each prepared container uses. */
  private readonly containerLowers = new Map<string, string[]>();
  /** Read-only views (image volumes): key -> where it is mounted. */
  private readonly views = new Map<string, string>();

  constructor(
    readonly dir: string,
    readonly containersDir: string,
    private readonly syscalls: Syscalls,
    private readonly ops: FsOps,
    private readonly logger: Logger,
  ) {}

  async load(): Promise<void> {
    await fs.mkdir(this.dir, { recursive: true, mode: 0o700 });
    await fs.mkdir(this.containersDir, { recursive: true, mode: 0o700 });
    for (const name of await fs.readdir(this.dir)) {
      const n = Number(name);
      if (!Number.isInteger(n) || n <= 0) continue;
      this.next = Math.max(this.next, n + 1);
      try {
        const meta = JSON.parse(await fs.readFile(join(this.dir, name, 'meta.json'), 'utf8')) as UnpackStats & { key: string };
        this.byKey.set(meta.key, { key: meta.key, n, dir: join(this.dir, name, 'fs'), size: meta.size, inodes: meta.inodes, implicitDirs: meta.implicitDirs ?? [] });
      } catch {
        this.logger.info(`snapshots: removing unfinished snapshot ${name}`);
        await fs.rm(join(this.dir, name), { recursive: true, force: true });
      }
    }
    for (const id of await fs.readdir(this.containersDir)) {
      try {
        const r = JSON.parse(await fs.readFile(join(this.containersDir, id, 'rootfs.json'), 'utf8')) as PreparedRecord;
        this.containerLowers.set(id, r.lowers);
        if (r.view) this.views.set(id, r.view.target);
      } catch { /* not prepared completely; releaseRootfs removes it */ }
    }
  }

  /** Picks up snapshots another process (corral import) committed; leaves unfinished ones alone. */
  async refresh(): Promise<void> {
    const known = new Set([...this.byKey.values()].map((s) => s.n));
    for (const name of await fs.readdir(this.dir)) {
      const n = Number(name);
      if (!Number.isInteger(n) || n <= 0 || known.has(n)) continue;
      this.next = Math.max(this.next, n + 1);
      try {
        const meta = JSON.parse(await fs.readFile(join(this.dir, name, 'meta.json'), 'utf8')) as UnpackStats & { key: string };
        if (!this.byKey.has(meta.key)) {
          this.byKey.set(meta.key, { key: meta.key, n, dir: join(this.dir, name, 'fs'), size: meta.size, inodes: meta.inodes, implicitDirs: meta.implicitDirs ?? [] });
        }
      } catch { /* still being written */ }
    }
  }

  get(key: string): Snapshot | undefined {
    return this.byKey.get(key);
  }

  list(): Snapshot[] {
    return [...this.byKey.values()];
  }

  /** Keys prepared containers still use (never garbage collected). */
  inUseByContainers(): Set<string> {
    return new Set([...this.containerLowers.values()].flat());
  }

  /**
   * Returns the committed snapshot for key, or creates it by running fill(dir) on an empty
   * directory. Concurrent calls for one key share one fill. A failed fill leaves nothing.
   */
  async ensure(key: string, fill: (fsDir: string) => Promise<UnpackStats>): Promise<Snapshot> {
    const have = this.byKey.get(key);
    if (have) return have;
    const running = this.inflight.get(key);
    if (running) return running;
    const p = (async () => {
      // Exclusive mkdir: `corral import` may allocate numbers in the same directory meanwhile.
      let n = this.next++;
      for (;;) {
        try {
          await fs.mkdir(join(this.dir, String(n)), { mode: 0o700 });
          break;
        } catch (err) {
          if (errnoCode(err) !== 'EEXIST') throw err;
          n = this.next++;
        }
      }
      const base = join(this.dir, String(n));
      const fsDir = join(base, 'fs');
      await fs.mkdir(fsDir, { mode: 0o755 });
      try {
        const stats = await fill(fsDir);
        await writeFileAtomic(join(base, 'meta.json'), JSON.stringify({ key, ...stats }));
        const snap: Snapshot = { key, n, dir: fsDir, size: stats.size, inodes: stats.inodes, implicitDirs: stats.implicitDirs };
        this.byKey.set(key, snap);
        return snap;
      } catch (err) {
        await fs.rm(base, { recursive: true, force: true }).catch(() => undefined);
        throw err;
      }
    })();
    this.inflight.set(key, p);
    try {
      return await p;
    } finally {
      this.inflight.delete(key);
    }
  }

  async remove(key: string): Promise<void> {
    const s = this.byKey.get(key);
    if (!s) return;
    this.byKey.delete(key);
    await fs.rm(join(this.dir, String(s.n)), { recursive: true, force: true });
  }

  private containerDir(id: string): string {
    if (!/^[A-Za-z0-9_.-]+$/.test(id) || id === '.' || id === '..') throw new InvalidArgumentError(`bad container id "${id}"`);
    return join(this.containersDir, id);
  }

  /** Creates upper/work for the container; lowers are snapshot keys, top layer first. */
  async prepare(containerId: string, lowerKeys: string[], readonly: boolean): Promise<Mount> {
    const layers = this.layerDirs(lowerKeys);
    const cdir = this.containerDir(containerId);
    await fs.mkdir(join(cdir, 'upper'), { recursive: true, mode: 0o755 });
    await fs.mkdir(join(cdir, 'work'), { recursive: true, mode: 0o700 });
    // An image without layers: overlay needs a lowerdir.
    const lowers = await this.atLeast(layers, cdir, 1);
    await writeFileAtomic(join(cdir, 'rootfs.json'), JSON.stringify({ lowers: lowerKeys }));
    this.containerLowers.set(containerId, lowerKeys);
    return { type: 'overlay', source: 'overlay', lowers, upper: join(cdir, 'upper'), work: join(cdir, 'work'), readonly };
  }

  /**
   * A read-only view of layers (an image volume) mounted at target, released with
   * releaseView (also after a restart: the record names the target). Overlay without an upper
   * dir needs two lower dirs at least, so a one-layer image gets an empty one beneath.
   */
  async prepareView(key: string, lowerKeys: string[], target: string): Promise<Mount> {
    const layers = this.layerDirs(lowerKeys);
    const cdir = this.containerDir(key);
    await fs.mkdir(cdir, { recursive: true, mode: 0o700 });
    const lowers = await this.atLeast(layers, cdir, 2);
    const rec: PreparedRecord = { lowers: lowerKeys, view: { target } };
    await writeFileAtomic(join(cdir, 'rootfs.json'), JSON.stringify(rec));
    this.containerLowers.set(key, lowerKeys);
    this.views.set(key, target);
    return { type: 'overlay', source: 'overlay', lowers, upper: '', work: '', readonly: true };
  }

  /** The layers' dirs, top first; NotFound for a snapshot that is missing. */
  private layerDirs(lowerKeys: string[]): string[] {
    return lowerKeys.map((k) => {
      const s = this.byKey.get(k);
      if (!s) throw new NotFoundError(`snapshot for layer ${k} is missing`);
      return s.dir;
    });
  }

  /** The lower dirs, with an empty dir of cdir's beneath when there are fewer than min. */
  private async atLeast(layers: string[], cdir: string, min: number): Promise<string[]> {
    const lowers = [...layers];
    if (lowers.length < min) {
      await fs.mkdir(join(cdir, 'empty'), { recursive: true, mode: 0o755 });
      lowers.push(join(cdir, 'empty'));
    }
    return lowers;
  }

  /** Views whose key starts with prefix (all of them for ''). */
  viewKeys(prefix = ''): string[] {
    return [...this.views.keys()].filter((k) => k.startsWith(prefix));
  }

  /** Unmounts the view where it was mounted and forgets it; unknown keys succeed. */
  async releaseView(key: string): Promise<void> {
    const target = this.views.get(key);
    if (target === undefined) return;
    await this.release(key, target);
    this.views.delete(key);
  }

  /**
   * Performs the mount. With idmap (a pod with its own user namespace), each lower dir is first
   * given an idmapped copy under the prepared dir (open_tree + mount_setattr), so that the
   * container's ids own the image's files; overlay takes private clones of its layers at mount
   * time, so the copies are detached right after.
   */
  mount(m: Mount, target: string, idmap?: { key: string; usernsPath: string }): void {
    if (!idmap) return this.mountOverlay(m, target);
    const dir = join(this.containerDir(idmap.key), 'idmapped');
    const fd = openSync(idmap.usernsPath, 'r');
    const mapped: string[] = [];
    try {
      for (const [i, lower] of m.lowers.entries()) {
        const d = join(dir, String(i));
        mkdirSync(d, { recursive: true, mode: 0o700 });
        this.ops.mountIdmapped(lower, d, fd, false);
        mapped.push(d);
      }
      this.mountOverlay({ ...m, lowers: mapped }, target);
    } finally {
      // Never a recursive removal here: a copy still mounted is the layer itself.
      for (const d of mapped) {
        try {
          this.syscalls.umount2(d, MNT_DETACH | UMOUNT_NOFOLLOW);
          rmdirSync(d);
        } catch (err) {
          this.logger.warn(`detaching ${d}: ${errorMessage(err)}`);
        }
      }
      try { rmdirSync(dir); } catch { /* a copy is still there (warned above), or none was made */ }
      closeSync(fd);
    }
  }

  /** mount(2) when the option string fits a page, else fsconfig's lowerdir+. */
  private mountOverlay(m: Mount, target: string): void {
    const data = m.upper ? `lowerdir=${m.lowers.join(':')},upperdir=${m.upper},workdir=${m.work}` : `lowerdir=${m.lowers.join(':')}`;
    if (data.length < PAGE - 1 && !m.lowers.some((l) => /[:,]/.test(l))) {
      this.syscalls.mount('overlay', target, 'overlay', m.readonly ? MS_RDONLY : 0, data);
      return;
    }
    this.ops.mountOverlayFsconfig(m.lowers, m.upper, m.work, target, m.readonly);
  }

  async release(containerId: string, target: string): Promise<void> {
    if (target) {
      // Stacked mounts (a retried prepare) come off one by one.
      for (let i = 0; i < 16; i++) {
        try {
          this.syscalls.umount2(target, MNT_DETACH | UMOUNT_NOFOLLOW);
        } catch (err) {
          const code = errnoCode(err);
          if (code === 'EINVAL' || code === 'ENOENT') break; // not (or no longer) a mount point
          throw err;
        }
      }
    }
    const cdir = this.containerDir(containerId);
    this.containerLowers.delete(containerId);
    try {
      await fs.rm(cdir, { recursive: true, force: true });
    } catch (err) {
      this.logger.warn(`removing rootfs of ${containerId}: ${errorMessage(err)}`);
      throw err;
    }
  }

  upperDir(containerId: string): string {
    return join(this.containerDir(containerId), 'upper');
  }

  /** Containers with a writable rootfs (views are not containers). */
  containerIds(): string[] {
    return [...this.containerLowers.keys()].filter((k) => !this.views.has(k));
  }
}

/** Bytes (allocated blocks) and inodes under dir, without following symlinks. */
export async function diskUsage(dir: string): Promise<{ bytes: number; inodes: number }> {
  let bytes = 0;
  let inodes = 0;
  const seen = new Set<string>();
  const walk = async (d: string): Promise<void> => {
    let names: string[];
    try {
      names = await fs.readdir(d);
    } catch {
      return;
    }
    for (const name of names) {
      const p = join(d, name);
      let st;
      try {
        st = await fs.lstat(p, { bigint: false });
      } catch {
        continue;
      }
      if (st.nlink > 1 && !st.isDirectory()) {
        const k = `${st.dev}:${st.ino}`;
        if (seen.has(k)) continue;
        seen.add(k);
      }
      inodes++;
      bytes += st.blocks * 512;
      if (st.isDirectory()) await walk(p);
    }
  };
  try {
    const st = await fs.lstat(dir);
    inodes++;
    bytes += st.blocks * 512;
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') return { bytes: 0, inodes: 0 };
    throw err;
  }
  await walk(dir);
  return { bytes, inodes };
}
