/**
 * A streaming tar reader (ustar, GNU long names, PAX) over an async iterable of chunks.
 * It never buffers a whole entry: bodies are yielded as slices of the incoming chunks, so a
 * layer flows from the network through decompression into files in one pass.
 *
 * PAX values are kept as bytes because SCHILY.xattr.security.capability is binary.
 */
import { InvalidArgumentError } from '../errors.js';

export type TarType = 'file' | 'link' | 'symlink' | 'char' | 'block' | 'dir' | 'fifo' | 'other';

export interface TarEntry {
  name: string;
  type: TarType;
  /** The raw type flag, for error messages about unsupported types. */
  flag: string;
  mode: number;
  uid: number;
  gid: number;
  size: number;
  /** Seconds since the epoch (fractional from PAX). */
  mtime: number;
  linkname: string;
  devmajor: number;
  devminor: number;
  xattrs: Record<string, Buffer>;
}

/** Chunks of a byte stream: a network or file stream, or an array of buffers in tests. */
export type ChunkSource = AsyncIterable<Buffer | Uint8Array> | Iterable<Buffer | Uint8Array>;

/** Pull-style reader: exact reads and bounded streams over an async chunk iterator. */
export class ByteReader {
  private chunks: Buffer[] = [];
  private buffered = 0;
  private ended = false;
  private readonly it: AsyncIterator<Buffer | Uint8Array>;

  constructor(source: ChunkSource) {
    if (Symbol.asyncIterator in source) {
      this.it = source[Symbol.asyncIterator]();
    } else {
      const sync = source[Symbol.iterator]();
      this.it = { next: async () => sync.next() };
    }
  }

  private async pull(): Promise<boolean> {
    if (this.ended) return false;
    const r = await this.it.next();
    if (r.done) {
      this.ended = true;
      return false;
    }
    const b = Buffer.isBuffer(r.value) ? r.value : Buffer.from(r.value.buffer, r.value.byteOffset, r.value.byteLength);
    if (b.length) {
      this.chunks.push(b);
      this.buffered += b.length;
    }
    return true;
  }

  /** Exactly n bytes, or fewer only at the end of the stream. */
  async read(n: number): Promise<Buffer> {
    while (this.buffered < n && (await this.pull()));
    const take = Math.min(n, this.buffered);
    return this.take(take);
  }

  private take(n: number): Buffer {
    if (n === 0) return Buffer.alloc(0);
    const first = this.chunks[0]!;
    if (first.length >= n) {
      const out = first.subarray(0, n);
      if (first.length === n) this.chunks.shift();
      else this.chunks[0] = first.subarray(n);
      this.buffered -= n;
      return out;
    }
    const out = Buffer.allocUnsafe(n);
    let off = 0;
    while (off < n) {
      const c = this.chunks[0]!;
      const k = Math.min(c.length, n - off);
      c.copy(out, off, 0, k);
      off += k;
      if (k === c.length) this.chunks.shift();
      else this.chunks[0] = c.subarray(k);
    }
    this.buffered -= n;
    return out;
  }

  /** Yields n bytes as slices; throws on a premature end. */
  async *stream(n: number): AsyncGenerator<Buffer> {
    let left = n;
    while (left > 0) {
      if (this.buffered === 0 && !(await this.pull())) throw new InvalidArgumentError('tar: unexpected end of archive inside an entry');
      if (this.buffered === 0) continue;
      const first = this.chunks[0]!;
      const k = Math.min(first.length, left);
      left -= k;
      yield this.take(k);
    }
  }

  async skip(n: number): Promise<void> {
    for await (const _ of this.stream(n)) { /* discard */ }
  }

  /** Consumes everything that is left (so digests over the whole stream are complete). */
  async drain(): Promise<void> {
    this.chunks = [];
    this.buffered = 0;
    while (await this.pull()) {
      this.chunks = [];
      this.buffered = 0;
    }
  }
}

function cstr(b: Buffer, off: number, len: number): string {
  const s = b.subarray(off, off + len);
  const z = s.indexOf(0);
  return (z === -1 ? s : s.subarray(0, z)).toString('utf8');
}

function num(b: Buffer, off: number, len: number): number {
  const f = b.subarray(off, off + len);
  if (f[0]! & 0x80) {
    // base-256 (GNU/star) for values that do not fit in octal: big-endian, first byte's top bit is the marker.
    let v = f[0]! & 0x7f;
    for (let i = 1; i < f.length; i++) v = v * 256 + f[i]!;
    return v;
  }
  const s = cstr(f, 0, len).trim();
  if (!s) return 0;
  const v = parseInt(s, 8);
  if (Number.isNaN(v)) throw new InvalidArgumentError(`tar: bad numeric field ${JSON.stringify(s)}`);
  return v;
}

function checksumOk(h: Buffer): boolean {
  const stored = num(h, 148, 8);
  let sum = 0;
  for (let i = 0; i < 512; i++) sum += i >= 148 && i < 156 ? 32 : h[i]!;
  return sum === stored;
}

const TYPES: Record<string, TarType> = {
  '0': 'file', '\0': 'file', '7': 'file', '1': 'link', '2': 'symlink', '3': 'char', '4': 'block', '5': 'dir', '6': 'fifo',
};

/** Parses PAX records ("<len> <key>=<value>\n"), keeping values as bytes. */
export function parsePax(data: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let off = 0;
  while (off < data.length) {
    const sp = data.indexOf(0x20, off);
    if (sp === -1) break;
    const len = parseInt(data.subarray(off, sp).toString('ascii'), 10);
    if (!Number.isFinite(len) || len <= 0 || off + len > data.length) throw new InvalidArgumentError('tar: malformed PAX header');
    const rec = data.subarray(sp + 1, off + len - 1); // without the trailing newline
    const eq = rec.indexOf(0x3d);
    if (eq !== -1) out.set(rec.subarray(0, eq).toString('utf8'), Buffer.from(rec.subarray(eq + 1)));
    off += len;
  }
  return out;
}

/**
 * Iterates over the entries of a tar stream. The consumer must read `body` fully before asking
 * for the next entry, or not at all (then it is skipped). After the end-of-archive blocks the
 * rest of the source is drained.
 */
export async function* readTar(source: ChunkSource): AsyncGenerator<{ entry: TarEntry; body: AsyncIterable<Buffer> }> {
  const r = new ByteReader(source);
  let global = new Map<string, Buffer>();
  let pax: Map<string, Buffer> | undefined;
  let longName: string | undefined;
  let longLink: string | undefined;
  for (;;) {
    const h = await r.read(512);
    if (h.length === 0) return; // no end blocks at all: tolerated, as GNU tar does
    if (h.length < 512) throw new InvalidArgumentError('tar: truncated header');
    if (h.every((x) => x === 0)) {
      await r.drain();
      return;
    }
    if (!checksumOk(h)) throw new InvalidArgumentError('tar: header checksum mismatch (not a tar stream, or corrupt)');
    const flag = String.fromCharCode(h[156]!);
    let size = num(h, 124, 12);
    const padded = Math.ceil(size / 512) * 512;
    if (flag === 'x' || flag === 'g' || flag === 'L' || flag === 'K') {
      if (size > 16 << 20) throw new InvalidArgumentError(`tar: ${flag} header of ${size} bytes is too large`);
      const data = await r.read(padded);
      if (data.length < padded) throw new InvalidArgumentError('tar: unexpected end of archive');
      const body = data.subarray(0, size);
      if (flag === 'x') pax = parsePax(body);
      else if (flag === 'g') global = new Map([...global, ...parsePax(body)]);
      else if (flag === 'L') longName = cstr(body, 0, body.length);
      else longLink = cstr(body, 0, body.length);
      continue;
    }
    const p = new Map([...global, ...(pax ?? [])]);
    pax = undefined;
    const magic = h.subarray(257, 263).toString('latin1');
    const prefix = magic.startsWith('ustar') ? cstr(h, 345, 155) : '';
    let name = cstr(h, 0, 100);
    if (prefix) name = `${prefix}/${name}`;
    if (longName !== undefined) name = longName;
    let linkname = longLink ?? cstr(h, 157, 100);
    longName = longLink = undefined;
    const str = (k: string) => p.get(k)?.toString('utf8');
    name = str('path') ?? name;
    linkname = str('linkpath') ?? linkname;
    if (p.has('size')) size = Number(str('size'));
    const xattrs: Record<string, Buffer> = {};
    for (const [k, v] of p) if (k.startsWith('SCHILY.xattr.')) xattrs[k.slice('SCHILY.xattr.'.length)] = v;
    const entry: TarEntry = {
      name,
      type: TYPES[flag] ?? 'other',
      flag,
      mode: num(h, 100, 8) & 0o7777,
      uid: p.has('uid') ? Number(str('uid')) : num(h, 108, 8),
      gid: p.has('gid') ? Number(str('gid')) : num(h, 116, 8),
      size,
      mtime: p.has('mtime') ? Number(str('mtime')) : num(h, 136, 12),
      linkname,
      devmajor: num(h, 329, 8),
      devminor: num(h, 337, 8),
      xattrs,
    };
    // Only regular files (and unknown types) carry data; links and devices have size 0 by definition.
    const dataSize = entry.type === 'file' || entry.type === 'other' ? size : 0;
    let consumed = 0;
    const body = (async function* () {
      for await (const c of r.stream(dataSize)) {
        consumed += c.length;
        yield c;
      }
    })();
    yield { entry, body };
    if (consumed < dataSize) await r.skip(dataSize - consumed);
    const pad = Math.ceil(dataSize / 512) * 512 - dataSize;
    if (pad) await r.skip(pad);
  }
}
