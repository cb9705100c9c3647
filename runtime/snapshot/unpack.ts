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
import { constants as C, promises as fs } from 'node:fs';
import { posix } from 'node:path';
import { InvalidArgumentError, errnoCode } from '../errors.js';
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

  constructor(private readonly root: string, private readonly ops: FsOps) {}

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
        st = await fs.lstat(this.abs(next));
      } catch (err) {
        if (errnoCode(err) !== 'ENOENT') throw err;
        await fs.mkdir(this.abs(next), { mode: 0o755 });
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
        const target = await fs.readlink(this.abs(next));
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
      st = await fs.lstat(this.abs(rel));
    } catch (err) {
      if (errnoCode(err) === 'ENOENT') return 'none';
      throw err;
    }
    if (st.isDirectory()) {
      if (keepDir) return 'dir';
      await fs.rm(this.abs(rel), { recursive: true, force: true });
      // Cached directories below the removed one are gone.
      for (const d of this.knownDirs) if (d === rel || d.startsWith(`${rel}/`)) this.knownDirs.delete(d);
      return 'none';
    }
    await fs.unlink(this.abs(rel));
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
          await fs.mkdir(this.abs(rel), { mode: 0o700 });
          this.stats.inodes++;
        }
        this.knownDirs.add(rel);
        this.implicit.delete(rel);
        await this.setMeta(rel, entry);
        return;
      }
      case 'file': {
        await this.clear(rel, false);
        const fh = await fs.open(this.abs(rel), C.O_WRONLY | C.O_CREAT | C.O_EXCL | C.O_NOFOLLOW, 0o600);
        try {
          // Network-sized chunks gathered into ~1 MiB writev calls: fewer thread-pool round trips.
          let batch: Buffer[] = [];
          let batched = 0;
          for await (const chunk of body) {
            batch.push(chunk);
            batched += chunk.length;
            if (batched >= WRITE_BATCH) {
              await fh.writev(batch);
              batch = [];
              batched = 0;
            }
          }
          if (batch.length) await fh.writev(batch);
        } finally {
          await fh.close();
        }
        this.stats.size += entry.size;
        this.stats.inodes++;
        await this.setMeta(rel, entry);
        return;
      }
      case 'symlink': {
        await this.clear(rel, false);
        await fs.symlink(entry.linkname, this.abs(rel));
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
          tst = await fs.lstat(this.abs(trel));
        } catch {
          throw new Hostile(`hard link target "${entry.linkname}" does not exist in the layer`);
        }
        if (tst.isDirectory()) throw new Hostile(`hard link target "${entry.linkname}" is a directory`);
        if (trel === rel) return;
        await this.clear(rel, false);
        await fs.link(this.abs(trel), this.abs(rel));
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
    await fs.lchown(p, e.uid, e.gid);
    if (e.type !== 'symlink') await fs.chmod(p, e.mode);
    for (const [k, v] of Object.entries(e.xattrs)) this.ops.lsetxattr(p, k, v);
    if (e.type === 'dir') this.dirTimes.push({ path: p, mtime: e.mtime });
    else await fs.lutimes(p, e.mtime, e.mtime);
  }

  /** Directory times last: creating children changes them. */
  async finish(): Promise<UnpackStats> {
    for (let i = this.dirTimes.length - 1; i >= 0; i--) {
      const d = this.dirTimes[i]!;
      await fs.lutimes(d.path, d.mtime, d.mtime).catch(() => undefined);
    }
    return { ...this.stats, implicitDirs: [...this.implicit] };
  }
}

/** Unpacks a whole (uncompressed) tar stream into root. Errors name the offending entry. */
export async function unpackLayer(root: string, tar: ChunkSource, ops: FsOps): Promise<UnpackStats> {
  const u = new LayerUnpacker(root, ops);
  for await (const { entry, body } of readTar(tar)) {
    try {
      await u.apply(entry, body);
    } catch (err) {
      const msg = err instanceof Error ? err.message : String(err);
      if (err instanceof Hostile) throw new InvalidArgumentError(`layer rejected: entry "${entry.name}": ${msg}`);
      // fs failures name the entry; source failures (network, digest, cancel) keep their own kind.
      if (errnoCode(err) || err instanceof InvalidArgumentError) throw new InvalidArgumentError(`unpacking entry "${entry.name}": ${msg}`, { cause: err });
      throw err;
    }
  }
  return u.finish();
}
