/**
 * Persistent records in one append-only file: the store of pod sandboxes and of the CNI cache.
 *
 * ObjectStore (store.ts) gives every object a directory with meta.json and status.json, and
 * every status change a new file renamed over the old one: three new inodes per pod and one
 * per change, all deleted again when the pod goes. Pods come and go by the thousand, and their
 * records are all a pod has on the disk (its other files live in the run dir, a tmpfs), so here
 * every change is a frame appended to `records.log` instead: no inode is created or deleted per
 * pod. Measured on ext4 without a journal, whose allocator skips every inode deleted in the
 * last ~30 s, a host-network pod cycle with ten in flight went from 1.3-1.8x the shell floor to
 * 0.9-1.1x with the records off that disk.
 *
 * Frame: u32 LE payload length, u32 LE CRC-32 of the payload, payload (JSON):
 *   {"id", "meta", "status"}  an object created (or rewritten by compaction)
 *   {"id", "status"}          its status changed
 *   {"id", "removed": true}   it is gone
 *
 * Durability is that of ObjectStore: a write is atomic for a daemon crash (a frame cut short
 * fails its length or CRC and ends the log: load() truncates it, the change never happened);
 * `durable` writes are fdatasync'ed before they resolve, which also makes everything before
 * them durable. After a power loss the log ends at the first frame the disk did not keep, so
 * what is lost is always a tail of changes made after the last durable one.
 *
 * The log is rewritten (temp file, fsync, rename) once it holds four times more bytes than the
 * live records and more than COMPACT_MIN_BYTES.
 *
 * Records written by ObjectStore (a directory per object, from before this store) are read
 * once at load, appended to the log and their meta.json and status.json deleted; the directory
 * stays, with whatever else it held, until the object is removed.
 */
import { closeSync, fdatasync, fsyncSync, ftruncateSync, mkdirSync, openSync, promises as fs, readFileSync, renameSync, rmSync, statSync, unlinkSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { crc32 } from 'node:zlib';
import { AlreadyExistsError, InvalidArgumentError, NotFoundError, isENOENT } from '../errors.js';
import { KeyedQueue, Trash, fsyncDir, type Entry } from './store.js';

export const LOG_FILE = 'records.log';
const HEADER = 8;
/** Below this the log is never rewritten. */
export const COMPACT_MIN_BYTES = 4 * 1024 * 1024;
/** A frame longer than this is corruption, not a record. */
const MAX_FRAME = 64 * 1024 * 1024;

interface Frame<M, S> {
  id: string;
  meta?: M;
  status?: S;
  removed?: true;
}

export function encodeFrame(payload: object): Buffer {
  const body = Buffer.from(JSON.stringify(payload), 'utf8');
  const frame = Buffer.allocUnsafe(HEADER + body.length);
  frame.writeUInt32LE(body.length, 0);
  frame.writeUInt32LE(crc32(body), 4);
  body.copy(frame, HEADER);
  return frame;
}

/** The frames of a log and the length of its valid part (what follows is a torn or corrupt tail). */
export function decodeFrames<T>(buf: Buffer): { frames: T[]; validBytes: number } {
  const frames: T[] = [];
  let off = 0;
  while (off + HEADER <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (len > MAX_FRAME || off + HEADER + len > buf.length) break;
    const body = buf.subarray(off + HEADER, off + HEADER + len);
    if (crc32(body) !== buf.readUInt32LE(off + 4)) break;
    try {
      frames.push(JSON.parse(body.toString('utf8')) as T);
    } catch {
      break;
    }
    off += HEADER + len;
  }
  return { frames, validBytes: off };
}

export class RecordLog<M, S> {
  private readonly entries = new Map<string, Entry<M, S>>();
  /** Serialises updates per id so that read-modify-write cycles never interleave. */
  private readonly updates = new KeyedQueue();
  /** For the directories of records in the older form. */
  private readonly trash: Trash;
  private fd: number | undefined;
  /** Bytes in the log file, and an estimate of what a rewrite would keep. */
  private bytes = 0;
  private readonly liveBytes = new Map<string, number>();
  private liveTotal = 0;

  /** `kind` names the objects in errors ("pod sandbox"). */
  constructor(readonly dir: string, readonly kind: string) {
    this.trash = new Trash(dir);
  }

  private get file(): string {
    return join(this.dir, LOG_FILE);
  }

  /**
   * Reads the log (and any records in the older one-directory-per-object form). Returns the
   * ids of old-form directories without a readable record: creates that crashed.
   */
  async load(): Promise<{ loaded: number; skipped: string[] }> {
    mkdirSync(this.dir, { recursive: true, mode: 0o700 });
    await this.trash.empty();
    let buf: Buffer;
    try {
      buf = readFileSync(this.file);
    } catch (err) {
      if (!isENOENT(err)) throw err;
      buf = Buffer.alloc(0);
    }
    const { frames, validBytes } = decodeFrames<Frame<M, S>>(buf);
    for (const f of frames) this.apply(f);
    const created = buf.length === 0;
    this.fd = openSync(this.file, 'a', 0o600);
    if (validBytes < buf.length) ftruncateSync(this.fd, validBytes);
    this.bytes = validBytes;
    // Sizes for the compaction estimate, as a rewrite would write them.
    for (const e of this.entries.values()) this.setLive(e.id, encodeFrame({ id: e.id, meta: e.meta, status: e.status }).length);
    if (created) await fsyncDir(this.dir);

    const skipped: string[] = [];
    const migrated: string[] = [];
    for (const id of await fs.readdir(this.dir)) {
      if (id.startsWith('.') || id === LOG_FILE || id.startsWith(`${LOG_FILE}.`)) continue;
      const d = join(this.dir, id);
      if (!statSync(d, { throwIfNoEntry: false })?.isDirectory()) continue;
      let meta: M;
      let status: S;
      try {
        meta = JSON.parse(await fs.readFile(join(d, 'meta.json'), 'utf8')) as M;
        status = JSON.parse(await fs.readFile(join(d, 'status.json'), 'utf8')) as S;
      } catch {
        if (!this.entries.has(id)) skipped.push(id);
        continue;
      }
      if (!this.entries.has(id)) {
        this.commit({ id, meta, status });
        migrated.push(id);
      }
    }
    if (migrated.length > 0) {
      await this.sync();
      for (const id of migrated) {
        for (const f of ['meta.json', 'status.json']) rmSync(join(this.dir, id, f), { force: true });
      }
    }
    return { loaded: this.entries.size, skipped };
  }

  /** The directory an object had in the older form (its other files may still be there). */
  path(id: string): string {
    return join(this.dir, id);
  }

  async create(id: string, meta: M, status: S, opts: { durable?: boolean } = {}): Promise<Entry<M, S>> {
    if (this.entries.has(id)) throw new AlreadyExistsError(`${this.kind} ${id} already exists`);
    this.commit({ id, meta, status });
    if (opts.durable ?? true) await this.sync();
    return this.entries.get(id)!;
  }

  get(id: string): Entry<M, S> | undefined {
    return this.entries.get(id);
  }

  list(): Entry<M, S>[] {
    return [...this.entries.values()];
  }

  /** The one way a status changes: fn gets the current status and returns the next; persisted atomically. */
  async update(id: string, fn: (s: S) => S, opts: { durable?: boolean } = {}): Promise<S> {
    return this.updates.run(id, async () => {
      const entry = this.entries.get(id);
      if (!entry) throw new NotFoundError(`${this.kind} ${id} not found`);
      const next = fn(entry.status);
      this.commit({ id, status: next });
      if (opts.durable ?? true) await this.sync();
      return next;
    });
  }

  /** Forgets the object; unknown ids succeed. Not durable: a power loss may bring a removed record back. */
  async remove(id: string): Promise<void> {
    if (this.entries.has(id)) this.commit({ id, removed: true });
    // The older form's directory, if the object had one (a stat first: most have none).
    if (statSync(this.path(id), { throwIfNoEntry: false })) this.trash.discard(this.path(id), id);
  }

  /** Resolves once every background deletion started so far has finished (tests, shutdown). */
  async settled(): Promise<void> {
    await this.trash.settled();
  }

  /** Closes the log file (the store is unusable afterwards). */
  close(): void {
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = undefined;
  }

  /**
   * A frame's change to the records in memory. Live sizes (for compaction): a record's full
   * frame; a status change is taken to keep the size. `size` 0: not known (load() works them out).
   */
  private apply(f: Frame<M, S>, size = 0): void {
    if (typeof f?.id !== 'string') return;
    if (f.removed) {
      this.entries.delete(f.id);
      this.setLive(f.id, 0);
      return;
    }
    const cur = this.entries.get(f.id);
    if (f.meta !== undefined && f.status !== undefined) {
      this.entries.set(f.id, { id: f.id, meta: f.meta, status: f.status });
      if (size) this.setLive(f.id, size);
    } else if (cur && f.status !== undefined) cur.status = f.status;
  }

  private setLive(id: string, size: number): void {
    this.liveTotal += size - (this.liveBytes.get(id) ?? 0);
    if (size) this.liveBytes.set(id, size);
    else this.liveBytes.delete(id);
  }

  /**
   * Appends a frame, then applies it in memory, then rewrites the log if it is mostly dead: in
   * that order, so that a failed write changes nothing and a rewrite includes the change.
   * One frame, one write(2): a crash leaves it whole or cut short, never interleaved.
   */
  private commit(f: Frame<M, S>): void {
    if (this.fd === undefined) throw new Error(`${this.kind} records are not loaded`);
    const frame = encodeFrame(f);
    // load() stops at a frame this large: written, it would take every later record with it.
    if (frame.length - HEADER > MAX_FRAME) throw new InvalidArgumentError(`${this.kind} record of ${frame.length} bytes is larger than ${MAX_FRAME}`);
    try {
      writeFully(this.fd, frame);
    } catch (err) {
      // A frame cut short (ENOSPC, EIO) would end the log for load(): what follows would be lost.
      ftruncateSync(this.fd, this.bytes);
      throw err;
    }
    this.bytes += frame.length;
    this.apply(f, frame.length);
    if (this.bytes > COMPACT_MIN_BYTES && this.bytes > 4 * this.liveTotal) this.compact();
  }

  private sync(): Promise<void> {
    const fd = this.fd;
    if (fd === undefined) return Promise.resolve();
    return new Promise((resolve, reject) => fdatasync(fd, (err) => (err ? reject(err) : resolve())));
  }

  /** Rewrites the log with one frame per live object. Synchronous: appends must not land in the file being replaced. */
  private compact(): void {
    const tmp = `${this.file}.tmp-${process.pid}`;
    const fd = openSync(tmp, 'w', 0o600);
    let bytes = 0;
    try {
      for (const e of this.entries.values()) {
        const frame = encodeFrame({ id: e.id, meta: e.meta, status: e.status });
        writeFully(fd, frame);
        this.setLive(e.id, frame.length);
        bytes += frame.length;
      }
      fsyncSync(fd);
    } catch (err) {
      closeSync(fd);
      try { unlinkSync(tmp); } catch { /* gone */ }
      throw err;
    }
    closeSync(fd);
    renameSync(tmp, this.file);
    const dirFd = openSync(this.dir, 'r');
    try {
      fsyncSync(dirFd);
    } finally {
      closeSync(dirFd);
    }
    if (this.fd !== undefined) closeSync(this.fd);
    this.fd = openSync(this.file, 'a', 0o600);
    this.bytes = bytes;
  }
}

function writeFully(fd: number, buf: Buffer): void {
  let off = 0;
  while (off < buf.length) off += writeSync(fd, buf, off, buf.length - off);
}
