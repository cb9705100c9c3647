/**
 * A minimal, deterministic tar writer (and a reader for tests) for building image layers.
 *
 *   writeTar(entries, { mtime }) -> Buffer     entries are written in the given order, verbatim
 *   normalizeEntries(entries) -> TarEntry[]    sorted, parent dirs added, hard links after targets
 *   readTar(buf) -> ReadEntry[]                parses ustar + PAX (path, linkpath, SCHILY.xattr.*)
 *
 * Reproducibility: every header field that tar tools usually fill from the host (mtime, uid/gid,
 * user and group names, device numbers) comes from the entry or a fixed default, so the same
 * entries always give the same bytes. Names are written as given (no "./" prefix, no
 * normalization) so that hostile layers can carry `..` and absolute paths on purpose.
 */

/** 2000-01-01T00:00:00Z: fixed mtime of every entry unless one is given. */
export const DEFAULT_MTIME = 946684800;

interface EntryBase {
  path: string;
  mode?: number;
  uid?: number;
  gid?: number;
  mtime?: number;
  /** Extended attributes, written as PAX SCHILY.xattr.<name> records (containerd and Go read them). */
  xattrs?: Record<string, Buffer>;
}
export interface FileEntry extends EntryBase { type: 'file'; data: Buffer }
export interface DirEntry extends EntryBase { type: 'dir' }
export interface SymlinkEntry extends EntryBase { type: 'symlink'; target: string }
export interface HardlinkEntry extends EntryBase { type: 'hardlink'; target: string }
export type TarEntry = FileEntry | DirEntry | SymlinkEntry | HardlinkEntry;

const BLOCK = 512;
const TYPEFLAG: Record<TarEntry['type'], string> = { file: '0', hardlink: '1', symlink: '2', dir: '5' };

function octal(value: number, width: number): string {
  // width includes the terminating NUL
  const s = value.toString(8);
  if (s.length > width - 1) throw new RangeError(`tar: value ${value} does not fit ${width} octal bytes`);
  return s.padStart(width - 1, '0') + '\0';
}

function writeString(buf: Buffer, offset: number, width: number, value: string | Buffer): void {
  const b = typeof value === 'string' ? Buffer.from(value, 'utf8') : value;
  if (b.length > width) throw new RangeError(`tar: field too long (${b.length} > ${width})`);
  b.copy(buf, offset);
}

/** One PAX record: "<len> <key>=<value>\n", where len counts the whole record in bytes. */
function paxRecord(key: string, value: Buffer): Buffer {
  const body = Buffer.concat([Buffer.from(` ${key}=`, 'utf8'), value, Buffer.from('\n')]);
  let len = body.length + 1;
  while (String(len).length + body.length !== len) len = String(len).length + body.length;
  return Buffer.concat([Buffer.from(String(len), 'utf8'), body]);
}

function header(fields: {
  name: string; mode: number; uid: number; gid: number; size: number; mtime: number;
  typeflag: string; linkname: string;
}): Buffer {
  const h = Buffer.alloc(BLOCK);
  writeString(h, 0, 100, fields.name);
  writeString(h, 100, 8, octal(fields.mode, 8));
  writeString(h, 108, 8, octal(fields.uid, 8));
  writeString(h, 116, 8, octal(fields.gid, 8));
  writeString(h, 124, 12, octal(fields.size, 12));
  writeString(h, 136, 12, octal(fields.mtime, 12));
  h.fill(0x20, 148, 156); // checksum is computed with its own field as spaces
  writeString(h, 156, 1, fields.typeflag);
  writeString(h, 157, 100, fields.linkname);
  writeString(h, 257, 6, 'ustar\0');
  writeString(h, 263, 2, '00');
  writeString(h, 329, 8, octal(0, 8));
  writeString(h, 337, 8, octal(0, 8));
  let sum = 0;
  for (const byte of h) sum += byte;
  writeString(h, 148, 8, sum.toString(8).padStart(6, '0') + '\0 ');
  return h;
}

function pad(len: number): Buffer {
  const rest = len % BLOCK;
  return rest === 0 ? Buffer.alloc(0) : Buffer.alloc(BLOCK - rest);
}

function fitsUstar(s: string): boolean {
  return Buffer.byteLength(s, 'utf8') <= 100;
}

/** Serializes entries in the given order. */
export function writeTar(entries: readonly TarEntry[], opts: { mtime?: number } = {}): Buffer {
  const chunks: Buffer[] = [];
  for (const e of entries) {
    const mtime = e.mtime ?? opts.mtime ?? DEFAULT_MTIME;
    const defaultMode = e.type === 'dir' ? 0o755 : e.type === 'symlink' ? 0o777 : 0o644;
    const mode = e.mode ?? defaultMode;
    const linkname = e.type === 'symlink' || e.type === 'hardlink' ? e.target : '';
    const size = e.type === 'file' ? e.data.length : 0;

    const pax: Buffer[] = [];
    let name = e.path;
    if (!fitsUstar(name)) {
      pax.push(paxRecord('path', Buffer.from(name, 'utf8')));
      name = name.slice(0, 99).replace(/[^\x20-\x7e]/g, '_');
    }
    let link = linkname;
    if (!fitsUstar(link)) {
      pax.push(paxRecord('linkpath', Buffer.from(link, 'utf8')));
      link = link.slice(0, 99).replace(/[^\x20-\x7e]/g, '_');
    }
    for (const key of Object.keys(e.xattrs ?? {}).sort()) {
      pax.push(paxRecord(`SCHILY.xattr.${key}`, e.xattrs![key]));
    }
    if (pax.length > 0) {
      const body = Buffer.concat(pax);
      chunks.push(header({
        name: 'PaxHeaders/' + name.slice(0, 88), mode: 0o644, uid: 0, gid: 0, size: body.length,
        mtime, typeflag: 'x', linkname: '',
      }));
      chunks.push(body, pad(body.length));
    }
    chunks.push(header({
      name, mode, uid: e.uid ?? 0, gid: e.gid ?? 0, size, mtime, typeflag: TYPEFLAG[e.type], linkname: link,
    }));
    if (e.type === 'file') chunks.push(e.data, pad(e.data.length));
  }
  chunks.push(Buffer.alloc(BLOCK * 2));
  return Buffer.concat(chunks);
}

function stripSlash(p: string): string {
  return p.replace(/\/+$/, '');
}

/**
 * Canonical order for well-formed layers: byte-wise sorted paths, every parent directory present
 * (added as root-owned 0755 when missing), directory names ending in "/", and each hard link
 * emitted only after its target (a reader creates the link with link(2), so the target must
 * already exist). Duplicate paths: the last one given wins.
 */
export function normalizeEntries(entries: readonly TarEntry[]): TarEntry[] {
  const byPath = new Map<string, TarEntry>();
  for (const e of entries) {
    const p = stripSlash(e.path.replace(/^\.?\/+/, ''));
    if (p === '' || p === '.') continue;
    byPath.set(p, { ...e, path: p } as TarEntry);
  }
  for (const p of [...byPath.keys()]) {
    const parts = p.split('/');
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (!byPath.has(dir)) byPath.set(dir, { type: 'dir', path: dir });
    }
  }
  const sorted = [...byPath.values()].sort((a, b) => Buffer.compare(Buffer.from(a.path), Buffer.from(b.path)));
  const out: TarEntry[] = [];
  const emitted = new Set<string>();
  const waiting = new Map<string, TarEntry[]>();
  const emit = (e: TarEntry): void => {
    out.push(e.type === 'dir' ? { ...e, path: e.path + '/' } : e);
    emitted.add(e.path);
    const deps = waiting.get(e.path);
    if (deps) {
      waiting.delete(e.path);
      for (const d of deps) emit(d);
    }
  };
  for (const e of sorted) {
    if (e.type === 'hardlink') {
      const target = stripSlash(e.target.replace(/^\.?\/+/, ''));
      // A hard link's header carries its inode's metadata, as tar writes it: extractors such as
      // containerd's apply the header's mode and owner to the shared inode (a 0644 default here
      // made every busybox applet non-executable there).
      const t = byPath.get(target);
      const link = { ...e, target, mode: e.mode ?? t?.mode ?? 0o644, uid: e.uid ?? t?.uid, gid: e.gid ?? t?.gid };
      if (!emitted.has(target) && byPath.has(target)) {
        const list = waiting.get(target) ?? [];
        list.push(link);
        waiting.set(target, list);
        continue;
      }
      emit(link);
    } else {
      emit(e);
    }
  }
  for (const list of waiting.values()) for (const d of list) emit(d);
  return out;
}

export interface ReadEntry {
  path: string;
  type: 'file' | 'dir' | 'symlink' | 'hardlink' | 'other';
  typeflag: string;
  mode: number;
  uid: number;
  gid: number;
  mtime: number;
  size: number;
  linkname: string;
  data: Buffer;
  xattrs: Record<string, Buffer>;
}

function cstr(buf: Buffer, offset: number, width: number): string {
  const slice = buf.subarray(offset, offset + width);
  const nul = slice.indexOf(0);
  return slice.subarray(0, nul === -1 ? width : nul).toString('utf8');
}

function parseOctal(buf: Buffer, offset: number, width: number): number {
  const s = cstr(buf, offset, width).trim();
  return s === '' ? 0 : parseInt(s, 8);
}

function parsePax(body: Buffer): Map<string, Buffer> {
  const out = new Map<string, Buffer>();
  let pos = 0;
  while (pos < body.length) {
    const space = body.indexOf(0x20, pos);
    if (space === -1) break;
    const len = parseInt(body.subarray(pos, space).toString('ascii'), 10);
    if (!(len > 0)) break;
    const rec = body.subarray(space + 1, pos + len - 1);
    const eq = rec.indexOf(0x3d);
    out.set(rec.subarray(0, eq).toString('utf8'), Buffer.from(rec.subarray(eq + 1)));
    pos += len;
  }
  return out;
}

/** Parses an uncompressed tar (ustar, PAX 'x' headers); enough for tests and the push checks. */
export function readTar(buf: Buffer): ReadEntry[] {
  const out: ReadEntry[] = [];
  let pos = 0;
  let pax: Map<string, Buffer> | undefined;
  while (pos + BLOCK <= buf.length) {
    const h = buf.subarray(pos, pos + BLOCK);
    if (h.every((b) => b === 0)) break;
    const size = parseOctal(h, 124, 12);
    const typeflag = String.fromCharCode(h[156] || 0x30);
    const data = buf.subarray(pos + BLOCK, pos + BLOCK + size);
    pos += BLOCK + Math.ceil(size / BLOCK) * BLOCK;
    if (typeflag === 'x') {
      pax = parsePax(data);
      continue;
    }
    const prefix = cstr(h, 345, 155);
    let path = (prefix ? prefix + '/' : '') + cstr(h, 0, 100);
    let linkname = cstr(h, 157, 100);
    const xattrs: Record<string, Buffer> = {};
    if (pax) {
      if (pax.has('path')) path = pax.get('path')!.toString('utf8');
      if (pax.has('linkpath')) linkname = pax.get('linkpath')!.toString('utf8');
      for (const [k, v] of pax) if (k.startsWith('SCHILY.xattr.')) xattrs[k.slice('SCHILY.xattr.'.length)] = v;
      pax = undefined;
    }
    const type = typeflag === '0' || typeflag === '\0' ? 'file' : typeflag === '5' ? 'dir'
      : typeflag === '2' ? 'symlink' : typeflag === '1' ? 'hardlink' : 'other';
    out.push({
      path, type, typeflag, mode: parseOctal(h, 100, 8), uid: parseOctal(h, 108, 8), gid: parseOctal(h, 116, 8),
      mtime: parseOctal(h, 136, 12), size, linkname, data: Buffer.from(data), xattrs,
    });
  }
  return out;
}
