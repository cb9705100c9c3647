/**
 * SPDY/3 header blocks: a count and length-prefixed name/value pairs, compressed with one zlib
 * stream per direction and per session, primed with the SPDY/3 dictionary and sync-flushed at
 * the end of every block.
 *
 * Node's streaming zlib is asynchronous, and a frame parser that waits for it must hold back
 * every later frame. Both directions are therefore done synchronously with raw deflate: after a
 * sync flush the next deflate block starts on a byte boundary and depends on what came before
 * only through the 32 KiB window of earlier plaintext, so priming a one-shot raw (in|de)flater
 * with that window (dictionary + all earlier blocks' plaintext) continues the shared stream
 * exactly. Only the first block carries the 2-byte zlib header and the dictionary's Adler-32.
 */
import zlib from 'node:zlib';
import { SPDY3_DICTIONARY } from './dictionary.js';

const WINDOW = 32 * 1024;

/** Header names are lower case on the wire; several values of one name are NUL-separated. */
export type HeaderMap = Record<string, string[]>;

export class SpdyHeaderError extends Error {}

function adler32(buf: Buffer): number {
  let a = 1;
  let b = 0;
  for (let i = 0; i < buf.length; i++) {
    a = (a + buf[i]!) % 65521;
    b = (b + a) % 65521;
  }
  return ((b << 16) | a) >>> 0;
}

const DICT_ID = adler32(SPDY3_DICTIONARY);

function slide(window: Buffer, plain: Buffer): Buffer {
  if (plain.length >= WINDOW) return Buffer.from(plain.subarray(plain.length - WINDOW));
  const joined = Buffer.concat([window, plain]);
  return joined.length > WINDOW ? Buffer.from(joined.subarray(joined.length - WINDOW)) : joined;
}

export class HeaderCompressor {
  private window: Buffer = SPDY3_DICTIONARY;
  private started = false;

  compress(plain: Buffer): Buffer {
    const body = zlib.deflateRawSync(plain, { dictionary: this.window, finishFlush: zlib.constants.Z_SYNC_FLUSH });
    this.window = slide(this.window, plain);
    if (this.started) return body;
    this.started = true;
    // CMF 0x78 (deflate, 32K window), FLG 0xBB (FDICT, level 2, FCHECK).
    const head = Buffer.from([0x78, 0xbb, 0, 0, 0, 0]);
    head.writeUInt32BE(DICT_ID, 2);
    return Buffer.concat([head, body]);
  }
}

export class HeaderDecompressor {
  private window: Buffer = SPDY3_DICTIONARY;
  private started = false;

  decompress(block: Buffer): Buffer {
    let body = block;
    if (!this.started) {
      if (block.length < 6) throw new SpdyHeaderError('first header block is shorter than a zlib header');
      const cmf = block[0]!;
      const flg = block[1]!;
      if ((cmf & 0x0f) !== 8 || ((cmf << 8) | flg) % 31 !== 0) throw new SpdyHeaderError('header block is not a zlib stream');
      if (!(flg & 0x20)) throw new SpdyHeaderError('header block does not use the SPDY/3 dictionary');
      if (block.readUInt32BE(2) !== DICT_ID) throw new SpdyHeaderError('header block names a dictionary other than SPDY/3');
      body = block.subarray(6);
      this.started = true;
    }
    let plain: Buffer;
    try {
      plain = zlib.inflateRawSync(body, { dictionary: this.window, finishFlush: zlib.constants.Z_SYNC_FLUSH });
    } catch (err) {
      throw new SpdyHeaderError(`header block does not decompress: ${(err as Error).message}`);
    }
    this.window = slide(this.window, plain);
    return plain;
  }
}

export function encodeHeaderBlock(headers: HeaderMap): Buffer {
  const entries = Object.entries(headers);
  const parts: Buffer[] = [];
  const count = Buffer.alloc(4);
  count.writeUInt32BE(entries.length, 0);
  parts.push(count);
  for (const [name, values] of entries) {
    const n = Buffer.from(name.toLowerCase(), 'utf8');
    const v = Buffer.from(values.join('\0'), 'utf8');
    const nl = Buffer.alloc(4);
    nl.writeUInt32BE(n.length, 0);
    const vl = Buffer.alloc(4);
    vl.writeUInt32BE(v.length, 0);
    parts.push(nl, n, vl, v);
  }
  return Buffer.concat(parts);
}

const MAX_HEADERS = 1000;

export function decodeHeaderBlock(buf: Buffer): HeaderMap {
  const out: HeaderMap = {};
  let off = 0;
  const need = (n: number) => {
    if (off + n > buf.length) throw new SpdyHeaderError('header block is truncated');
  };
  need(4);
  const count = buf.readUInt32BE(off);
  off += 4;
  if (count > MAX_HEADERS) throw new SpdyHeaderError(`header block has ${count} headers`);
  for (let i = 0; i < count; i++) {
    need(4);
    const nl = buf.readUInt32BE(off);
    off += 4;
    need(nl);
    const name = buf.toString('utf8', off, off + nl).toLowerCase();
    off += nl;
    need(4);
    const vl = buf.readUInt32BE(off);
    off += 4;
    need(vl);
    const value = buf.toString('utf8', off, off + vl);
    off += vl;
    if (name === '') throw new SpdyHeaderError('header block has an empty header name');
    (out[name] ??= []).push(...value.split('\0'));
  }
  return out;
}

/** First value of a header, or undefined. */
export function headerValue(h: HeaderMap, name: string): string | undefined {
  return h[name.toLowerCase()]?.[0];
}
