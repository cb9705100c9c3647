/**
 * Applies one layer tar to an empty snapshot directory, converting OCI whiteouts to overlay
 * whiteouts. Each layer is unpacked on its own (overlay merges them at mount time), which is
 * why layers of one image can be unpacked in parallel.
 *
 * A layer is untrusted input. Nothing may be created, changed or removed outside `root`:
 * entry names are cleaned lexically and must stay inside; every parent component is checked
 * with lstat and a symlink is only followed when its target stays inside the root (a link
 * that points out, absolute or by "..", is rejected: following it is how CVE-2019-14271-style
 * escapes write to the host); the final component is never followed (it is unlinked and
 * recreated, files are opened O_EXCL|O_NOFOLLOW); hard links must name an entry inside.
 * We are the only writer of the directory while unpacking, so the lstat checks cannot race.
 */
import fsSync, { constants as C, promises as fs, type Stats } from 'node:fs';
import { posix } from 'node:path';
import { InvalidArgumentError, ResourceExhaustedError, errnoCode, isNoSpace } from '../errors.js';
import { S_IFBLK, S_IFCHR, S_IFIFO, type FsOps } from '../linux/fsops.js';
import { readTar, type ChunkSource, type TarEntry } from './tar.js';

export interface UnpackStats {
  /** Bytes of regular file content. */
  size: number;
  /** Entries created. */
  inodes: number;
  /**
   * Directories created only because an entry below them needed a parent. In the merged
   * overlay such a directory hides whatever a lower layer has at that path; when that is a
   * symlink pointing out of the root, the layer meant to write through it (checked at commit).
   */
  implicitDirs: string[];
}

const WH = '.wh.';
const OPAQUE = '.wh..wh..opq';
const MAX_LINKS = 40;
const WRITE_BATCH = 1 << 20;

class Hostile extends InvalidArgumentError {}

/** The file operations of an unpack: asynchronous on the main thread, synchronous on a worker. */
export interface UnpackIO {
  lstat(p: string): Promise<Stats>;
  mkdir(p: string, opts: { mode: number }): Promise<unknown>;
  readlink(p: string): Promise<string>;
  unlink(p: string): Promise<void>;
  rmrf(p: string): Promise<void>;
  symlink(target: string, p: string): Promise<void>;
  link(existing: string, p: string): Promise<void>;
  lchown(p: string, uid: number, gid: number): Promise<void>;
  chmod(p: string, mode: number): Promise<void>;
  lutimes(p: string, atime: number, mtime: number): Promise<void>;
  /** Creates p (O_EXCL|O_NOFOLLOW: never through a link) with the body's bytes. */
  writeFile(p: string, body: AsyncIterable<Buffer>): Promise<void>;
}

const CREATE = C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW;

/** Gathers network-sized chunks into ~1 MiB writes: fewer syscalls and thread-pool round trips. */
async function* batches(body: AsyncIterable<Buffer>): AsyncGenerator<Buffer[]> {
  let batch: Buffer[] = [];
  let n = 0;
  for await (const c of body) {
    batch.push(c);
    n += c.length;
    if (n >= WRITE_BATCH) {
      yield batch;
      batch = [];
      n = 0;
    }
  }
  if (batch.length) yield batch;
}

export const asyncIO: UnpackIO = {
  lstat: (p) => fs.lstat(p),
  mkdir: (p, o) => fs.mkdir(p, o),
  readlink: (p) => fs.readlink(p),
  unlink: (p) => fs.unlink(p),
  rmrf: (p) => fs.rm(p, { recursive: true, force: true }),
  symlink: (t, p) => fs.symlink(t, p),
  link: (e, p) => fs.link(e, p),
  lchown: (p, u, g) => fs.lchown(p, u, g),
  chmod: (p, m) => fs.chmod(p, m),
  lutimes: (p, a, m) => fs.lutimes(p, a, m),
  async writeFile(p, body) {
    const fh = await fs.open(p, CREATE, 0o600);
    try {
      for await (const b of batches(body)) {
        const total = b.reduce((a, x) => a + x.length, 0);
        let done = (await fh.writev(b)).bytesWritten;
        // Short writes are rare on regular files but legal; finish them.
        while (done < total) done += (await fh.write(Buffer.concat(b).subarray(done))).bytesWritten;
      }
    } finally {
      await fh.close();
    }
  },
};

/**
 * Blocking calls for a worker thread that does nothing else: no thread-pool hop per call, and
 * the pool stays free for decompression.
 */
export const syncIO: UnpackIO = {
  lstat: async (p) => fsSync.lstatSync(p),
  mkdir: async (p, o) => fsSync.mkdirSync(p, o),
  readlink: async (p) => fsSync.readlinkSync(p),
  unlink: async (p) => fsSync.unlinkSync(p),
  rmrf: async (p) => fsSync.rmSync(p, { recursive: true, force: true }),
  symlink: async (t, p) => fsSync.symlinkSync(t, p),
  link: async (e, p) => fsSync.linkSync(e, p),
  lchown: async (p, u, g) => fsSync.lchownSync(p, u, g),
  chmod: async (p, m) => fsSync.chmodSync(p, m),
  lutimes: async (p, a, m) => fsSync.lutimesSync(p, a, m),
  async writeFile(p, body) {
    const fd = fsSync.openSync(p, CREATE, 0o600);
    try {
      for await (const b of batches(body)) {
        const total = b.reduce((a, x) => a + x.length, 0);
        let done = fsSync.writevSync(fd, b);
        if (done < total) {
          const rest = Buffer.concat(b).subarray(done);
          for (let off = 0; off < rest.length;) off += fsSync.writeSync(fd, rest, off);
        }
      }
    } finally {
      fsSync.closeSync(fd);
    }
  },
};

/** Cleans a tar path to components relative to the root; rejects absolute names and escapes. */
export function cleanEntryPath(name: string): string[] {
  if (name.startsWith('/')) throw new Hostile('absolute path');
  const out: string[] = [];
  for (const c of name.split('/')) {
    if (c === '' || c === '.') continue;
    if (c === '..') {
      if (out.length === 0) throw new Hostile('path escapes the layer root');
      out.pop();
      continue;
    }
    out.push(c);
  }
  return out;
}

export class LayerUnpacker {
  private readonly knownDirs = new Set<string>(['']);
  private readonly dirTimes: Array<{ path: string; mtime: number }> = [];
  private readonly stats = { size: 0, inodes: 0 };
  private readonly implicit = new Set<string>();

  constructor(private readonly root: string, private readonly ops: FsOps, private readonly io: UnpackIO = asyncIO) {}

  private abs(rel: string): string {
    return rel ? `${this.root}/${rel}` : this.root;
  }

  /**
   * Resolves parent components (relative to root) to a real directory inside the root,
   * creating missing ones. Returns the relative path of that directory.
   */
  private async resolveDir(parts: string[], depth = 0): Promise<string> {
    let cur = '';
    for (let i = 0; i < parts.length; i++) {
      const next = cur ? `${cur}/${parts[i]}` : parts[i]!;
      if (this.knownDirs.has(next)) {
        cur = next;
        continue;
      }
      let st;
      try {
        st = await this.io.lstat(this.abs(next));
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw err;
        await this.io.mkdir(this.abs(next), { mode: 0o755 });
        this.stats.inodes++;
        this.knownDirs.add(next);
        this.implicit.add(next);
        cur = next;
        continue;
      }
      if (st.isDirectory()) {
        this.knownDirs.add(next);
        cur = next;
      } else if (st.isSymbolicLink()) {
        if (depth >= MAX_LINKS) throw new Hostile('too many levels of symbolic links');
        const target = await this.io.readlink(this.abs(next));
        if (target.startsWith('/')) throw new Hostile(`parent "${next}" is a symlink pointing outside the layer (${target})`);
        let resolved: string[];
        try {
          resolved = cleanEntryPath(posix.join(cur, target));
        } catch {
          throw new Hostile(`parent "${next}" is a symlink pointing outside the layer (${target})`);
        }
        cur = await this.resolveDir(resolved, depth + 1);
      } else {
        throw new Hostile(`parent "${next}" is not a directory`);
      }
    }
    return cur;
  }

  /** Removes whatever is at rel (never following it), so that a new entry can take its place. */
  private async clear(rel: string, keepDir: boolean): Promise<'none' | 'dir' | 'other'> {
    let st;
    try {
      st = await this.io.lstat(this.abs(rel));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return 'none';
      throw err;
    }
    if (st.isDirectory()) {
      if (keepDir) return 'dir';
      await this.io.rmrf(this.abs(rel));
      // Cached directories below the removed one are gone.
      for (const d of this.knownDirs) if (d === rel || d.startsWith(`${rel}/`)) this.knownDirs.delete(d);
      return 'none';
    }
    await this.io.unlink(this.abs(rel));
    return 'other';
  }

  async apply(entry: TarEntry, body: AsyncIterable<Buffer>): Promise<void> {
    const parts = cleanEntryPath(entry.name);
    if (parts.length === 0) {
      // The layer's own root ("./"): only its attributes apply.
      if (entry.type === 'dir') await this.setMeta('', entry);
      return;
    }
    const base = parts[parts.length - 1]!;
    const dir = await this.resolveDir(parts.slice(0, -1));
    const rel = dir ? `${dir}/${base}` : base;

    if (base.startsWith(WH)) {
      if (base === OPAQUE) {
        this.ops.lsetxattr(this.abs(dir), 'trusted.overlay.opaque', Buffer.from('y'));
        return;
      }
      if (base.startsWith(`${WH}${WH}`)) return; // aufs bookkeeping (.wh..wh.plnk etc.): meaningless here
      const victim = base.slice(WH.length);
      if (!victim || victim === '.' || victim === '..') throw new Hostile('whiteout names no file');
      const vrel = dir ? `${dir}/${victim}` : victim;
      await this.clear(vrel, false);
      this.ops.mknod(this.abs(vrel), S_IFCHR, 0, 0);
      this.stats.inodes++;
      return;
    }

    switch (entry.type) {
      case 'dir': {
        const had = await this.clear(rel, true);
        if (had !== 'dir') {
          await this.io.mkdir(this.abs(rel), { mode: 0o700 });
          this.stats.inodes++;
        }
        this.knownDirs.add(rel);
        this.implicit.delete(rel);
        await this.setMeta(rel, entry);
        return;
      }
      case 'file': {
        await this.clear(rel, false);
        await this.io.writeFile(this.abs(rel), body);
        this.stats.size += entry.size;
        this.stats.inodes++;
        await this.setMeta(rel, entry);
        return;
      }
      case 'symlink': {
        await this.clear(rel, false);
        await this.io.symlink(entry.linkname, this.abs(rel));
        this.stats.inodes++;
        await this.setMeta(rel, entry);
        return;
      }
      case 'link': {
        let tparts: string[];
        try {
          tparts = cleanEntryPath(entry.linkname);
        } catch {
          throw new Hostile(`hard link target "${entry.linkname}" is outside the layer`);
        }
        if (tparts.length === 0) throw new Hostile('hard link to the layer root');
        const tdir = await this.resolveDir(tparts.slice(0, -1));
        const trel = tdir ? `${tdir}/${tparts[tparts.length - 1]}` : tparts[tparts.length - 1]!;
        let tst;
        try {
          tst = await this.io.lstat(this.abs(trel));
        } catch {
          throw new Hostile(`hard link target "${entry.linkname}" does not exist in the layer`);
        }
        if (tst.isDirectory()) throw new Hostile(`hard link target "${entry.linkname}" is a directory`);
        if (trel === rel) return;
        await this.clear(rel, false);
        await this.io.link(this.abs(trel), this.abs(rel));
        return;
      }
      case 'char':
      case 'block':
      case 'fifo': {
        await this.clear(rel, false);
        const kind = entry.type === 'char' ? S_IFCHR : entry.type === 'block' ? S_IFBLK : S_IFIFO;
        this.ops.mknod(this.abs(rel), kind | 0o600, entry.devmajor, entry.devminor);
        this.stats.inodes++;
        await this.setMeta(rel, entry);
        return;
      }
      default:
        throw new InvalidArgumentError(`unsupported tar entry type ${JSON.stringify(entry.flag)}`);
    }
  }

  /** Ownership, then mode (chown clears setuid), then xattrs (chown clears security.capability), then times. */
  private async setMeta(rel: string, e: TarEntry): Promise<void> {
    const p = this.abs(rel);
    await this.io.lchown(p, e.uid, e.gid);
    if (e.type !== 'symlink') await this.io.chmod(p, e.mode);
    for (const [k, v] of Object.entries(e.xattrs)) this.ops.lsetxattr(p, k, v);
    if (e.type === 'dir') this.dirTimes.push({ path: p, mtime: e.mtime });
    else await this.io.lutimes(p, e.mtime, e.mtime);
  }

  /** Directory times last: creating children changes them. */
  async finish(): Promise<UnpackStats> {
    for (let i = this.dirTimes.length - 1; i >= 0; i--) {
      const d = this.dirTimes[i]!;
      await this.io.lutimes(d.path, d.mtime, d.mtime).catch(() => undefined);
    }
    return { ...this.stats, implicitDirs: [...this.implicit] };
  }
}

/** Unpacks a whole (uncompressed) tar stream into root. Errors name the offending entry. */
export async function unpackLayer(root: string, tar: ChunkSource, ops: FsOps, io: UnpackIO = asyncIO): Promise<UnpackStats> {
  const u = new LayerUnpacker(root, ops, io);
  for await (const { entry, body } of readTar(tar)) {
    try {
      await u.apply(entry, body);
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      if (err instanceof Hostile) throw new InvalidArgumentError(`layer rejected: entry "${entry.name}": ${msg}`);
      // fs failures name the entry; source failures (network, digest, cancel) keep their own kind.
      // A full disk is the node's state, not the layer's fault.
      if (isNoSpace(err)) throw new ResourceExhaustedError(`unpacking entry "${entry.name}" into ${root}: ${msg}`, { cause: err });
      if (errnoCode(err) || err instanceof InvalidArgumentError) throw new InvalidArgumentError(`unpacking entry "${entry.name}": ${msg}`, { cause: err });
      throw err;
    }
  }
  return u.finish();
}
