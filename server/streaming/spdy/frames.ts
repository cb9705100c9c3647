/**
 * SPDY/3.1 frames: encoding to bytes and an incremental parser.
 *
 * Control frames start with the C bit, version 3 and a type; data frames with a 31-bit stream
 * id. Both carry 8 bits of flags and a 24-bit payload length. Header blocks go through the
 * session's compressor and decompressor, which must see every block of a direction in order.
 */
import { HeaderCompressor, HeaderDecompressor, decodeHeaderBlock, encodeHeaderBlock, type HeaderMap } from './headers.js';

export const SPDY_VERSION = 3;

export const FrameType = {
  SYN_STREAM: 1,
  SYN_REPLY: 2,
  RST_STREAM: 3,
  SETTINGS: 4,
  PING: 6,
  GOAWAY: 7,
  HEADERS: 8,
  WINDOW_UPDATE: 9,
} as const;

export const FLAG_FIN = 0x01;
export const FLAG_UNIDIRECTIONAL = 0x02;
export const FLAG_SETTINGS_CLEAR = 0x01;

export const RstStatus = {
  PROTOCOL_ERROR: 1,
  INVALID_STREAM: 2,
  REFUSED_STREAM: 3,
  UNSUPPORTED_VERSION: 4,
  CANCEL: 5,
  INTERNAL_ERROR: 6,
  FLOW_CONTROL_ERROR: 7,
  STREAM_IN_USE: 8,
  STREAM_ALREADY_CLOSED: 9,
  FRAME_TOO_LARGE: 11,
} as const;

export const GoAwayStatus = { OK: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2 } as const;

export const Setting = {
  UPLOAD_BANDWIDTH: 1,
  DOWNLOAD_BANDWIDTH: 2,
  ROUND_TRIP_TIME: 3,
  MAX_CONCURRENT_STREAMS: 4,
  CURRENT_CWND: 5,
  DOWNLOAD_RETRANS_RATE: 6,
  INITIAL_WINDOW_SIZE: 7,
  CLIENT_CERTIFICATE_VECTOR_SIZE: 8,
} as const;

export const MAX_FRAME_PAYLOAD = 0xffffff;

export interface SettingEntry { flags: number; id: number; value: number }

export type Frame =
  | { type: 'SYN_STREAM'; streamId: number; associatedId: number; priority: number; slot: number; flags: number; headers: HeaderMap }
  | { type: 'SYN_REPLY'; streamId: number; flags: number; headers: HeaderMap }
  | { type: 'RST_STREAM'; streamId: number; status: number }
  | { type: 'SETTINGS'; flags: number; entries: SettingEntry[] }
  | { type: 'PING'; id: number }
  | { type: 'GOAWAY'; lastGoodStreamId: number; status: number }
  | { type: 'HEADERS'; streamId: number; flags: number; headers: HeaderMap }
  | { type: 'WINDOW_UPDATE'; streamId: number; delta: number }
  | { type: 'DATA'; streamId: number; flags: number; data: Buffer };

export class SpdyProtocolError extends Error {
  constructor(message: string, readonly streamId = 0) { super(message); }
}

function control(type: number, flags: number, payload: Buffer): Buffer {
  if (payload.length > MAX_FRAME_PAYLOAD) throw new SpdyProtocolError(`control frame payload of ${payload.length} bytes`);
  const head = Buffer.alloc(8);
  head.writeUInt16BE(0x8000 | SPDY_VERSION, 0);
  head.writeUInt16BE(type, 2);
  head.writeUInt32BE(((flags & 0xff) << 24 | payload.length) >>> 0, 4);
  return Buffer.concat([head, payload]);
}

/** Encodes the 8-byte header of a data frame; the payload follows it unchanged. */
export function dataFrameHeader(streamId: number, flags: number, length: number): Buffer {
  const head = Buffer.allocUnsafe(8); // both words are written below
  head.writeUInt32BE(streamId & 0x7fffffff, 0);
  head.writeUInt32BE(((flags & 0xff) << 24 | length) >>> 0, 4);
  return head;
}

export function encodeFrame(frame: Frame, compressor: HeaderCompressor): Buffer {
  switch (frame.type) {
    case 'DATA': {
      if (frame.data.length > MAX_FRAME_PAYLOAD) throw new SpdyProtocolError(`data frame of ${frame.data.length} bytes`);
      return Buffer.concat([dataFrameHeader(frame.streamId, frame.flags, frame.data.length), frame.data]);
    }
    case 'SYN_STREAM': {
      const fixed = Buffer.alloc(10);
      fixed.writeUInt32BE(frame.streamId & 0x7fffffff, 0);
      fixed.writeUInt32BE(frame.associatedId & 0x7fffffff, 4);
      fixed[8] = (frame.priority & 0x7) << 5;
      fixed[9] = frame.slot & 0xff;
      const block = compressor.compress(encodeHeaderBlock(frame.headers));
      return control(FrameType.SYN_STREAM, frame.flags, Buffer.concat([fixed, block]));
    }
    case 'SYN_REPLY':
    case 'HEADERS': {
      const fixed = Buffer.alloc(4);
      fixed.writeUInt32BE(frame.streamId & 0x7fffffff, 0);
      const block = compressor.compress(encodeHeaderBlock(frame.headers));
      return control(frame.type === 'SYN_REPLY' ? FrameType.SYN_REPLY : FrameType.HEADERS, frame.flags, Buffer.concat([fixed, block]));
    }
    case 'RST_STREAM': {
      const p = Buffer.alloc(8);
      p.writeUInt32BE(frame.streamId & 0x7fffffff, 0);
      p.writeUInt32BE(frame.status >>> 0, 4);
      return control(FrameType.RST_STREAM, 0, p);
    }
    case 'SETTINGS': {
      const p = Buffer.alloc(4 + 8 * frame.entries.length);
      p.writeUInt32BE(frame.entries.length, 0);
      frame.entries.forEach((e, i) => {
        p.writeUInt32BE(((e.flags & 0xff) << 24 | (e.id & 0xffffff)) >>> 0, 4 + 8 * i);
        p.writeUInt32BE(e.value >>> 0, 8 + 8 * i);
      });
      return control(FrameType.SETTINGS, frame.flags, p);
    }
    case 'PING': {
      const p = Buffer.alloc(4);
      p.writeUInt32BE(frame.id >>> 0, 0);
      return control(FrameType.PING, 0, p);
    }
    case 'GOAWAY': {
      const p = Buffer.alloc(8);
      p.writeUInt32BE(frame.lastGoodStreamId & 0x7fffffff, 0);
      p.writeUInt32BE(frame.status >>> 0, 4);
      return control(FrameType.GOAWAY, 0, p);
    }
    case 'WINDOW_UPDATE': {
      const p = Buffer.alloc(8);
      p.writeUInt32BE(frame.streamId & 0x7fffffff, 0);
      p.writeUInt32BE(frame.delta & 0x7fffffff, 4);
      return control(FrameType.WINDOW_UPDATE, 0, p);
    }
  }
}

/**
 * Incremental parser: push() bytes as they arrive, get the complete frames back. Unknown control
 * frame types are skipped as the spec asks; a wrong version or a malformed frame throws
 * SpdyProtocolError (the session answers with GOAWAY PROTOCOL_ERROR).
 */
export class FrameParser {
  /** Bytes of an incomplete frame, kept as received and joined once the frame is complete. */
  private chunks: Buffer[] = [];
  private len = 0;
  /** Bytes needed before parsing can make progress. */
  private need = 0;

  constructor(private readonly decompressor: HeaderDecompressor, private readonly maxPayload = MAX_FRAME_PAYLOAD) {}

  push(chunk: Buffer): Frame[] {
    this.chunks.push(chunk);
    this.len += chunk.length;
    if (this.len < this.need) return [];
    const buf = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks, this.len);
    this.chunks = [];
    this.len = 0;
    this.need = 0;
    const frames: Frame[] = [];
    let off = 0;
    while (buf.length - off >= 8) {
      const word = buf.readUInt32BE(off + 4);
      const flags = word >>> 24;
      const length = word & 0xffffff;
      if (length > this.maxPayload) throw new SpdyProtocolError(`frame of ${length} bytes exceeds ${this.maxPayload}`);
      if (buf.length - off < 8 + length) {
        this.need = 8 + length;
        break;
      }
      const first = buf.readUInt32BE(off);
      // Socket reads are fresh buffers that nobody reuses, so payloads can be views of them.
      const payload = buf.subarray(off + 8, off + 8 + length);
      off += 8 + length;
      if (first & 0x80000000) {
        const version = (first >>> 16) & 0x7fff;
        const type = first & 0xffff;
        if (version !== SPDY_VERSION) throw new SpdyProtocolError(`SPDY version ${version} (only 3 is spoken)`);
        const f = this.control(type, flags, payload);
        if (f) frames.push(f);
      } else {
        frames.push({ type: 'DATA', streamId: first & 0x7fffffff, flags, data: payload });
      }
    }
    if (off < buf.length) {
      this.chunks = [buf.subarray(off)];
      this.len = buf.length - off;
      if (this.need === 0) this.need = 8;
    }
    return frames;
  }

  private control(type: number, flags: number, p: Buffer): Frame | undefined {
    const need = (n: number, name: string) => {
      if (p.length < n) throw new SpdyProtocolError(`${name} frame of ${p.length} bytes`);
    };
    switch (type) {
      case FrameType.SYN_STREAM: {
        need(10, 'SYN_STREAM');
        const streamId = p.readUInt32BE(0) & 0x7fffffff;
        const headers = decodeHeaderBlock(this.decompressor.decompress(p.subarray(10)));
        if (streamId === 0) throw new SpdyProtocolError('SYN_STREAM with stream id 0');
        return { type: 'SYN_STREAM', streamId, associatedId: p.readUInt32BE(4) & 0x7fffffff, priority: p[8]! >>> 5, slot: p[9]!, flags, headers };
      }
      case FrameType.SYN_REPLY:
      case FrameType.HEADERS: {
        const name = type === FrameType.SYN_REPLY ? 'SYN_REPLY' : 'HEADERS';
        need(4, name);
        const streamId = p.readUInt32BE(0) & 0x7fffffff;
        const headers = decodeHeaderBlock(this.decompressor.decompress(p.subarray(4)));
        if (streamId === 0) throw new SpdyProtocolError(`${name} with stream id 0`);
        return { type: name, streamId, flags, headers };
      }
      case FrameType.RST_STREAM:
        if (p.length !== 8) throw new SpdyProtocolError(`RST_STREAM frame of ${p.length} bytes`);
        return { type: 'RST_STREAM', streamId: p.readUInt32BE(0) & 0x7fffffff, status: p.readUInt32BE(4) };
      case FrameType.SETTINGS: {
        need(4, 'SETTINGS');
        const n = p.readUInt32BE(0);
        if (p.length !== 4 + 8 * n) throw new SpdyProtocolError(`SETTINGS frame of ${p.length} bytes for ${n} entries`);
        const entries: SettingEntry[] = [];
        for (let i = 0; i < n; i++) {
          const w = p.readUInt32BE(4 + 8 * i);
          entries.push({ flags: w >>> 24, id: w & 0xffffff, value: p.readUInt32BE(8 + 8 * i) });
        }
        return { type: 'SETTINGS', flags, entries };
      }
      case FrameType.PING:
        if (p.length !== 4) throw new SpdyProtocolError(`PING frame of ${p.length} bytes`);
        return { type: 'PING', id: p.readUInt32BE(0) };
      case FrameType.GOAWAY:
        if (p.length !== 8) throw new SpdyProtocolError(`GOAWAY frame of ${p.length} bytes`);
        return { type: 'GOAWAY', lastGoodStreamId: p.readUInt32BE(0) & 0x7fffffff, status: p.readUInt32BE(4) };
      case FrameType.WINDOW_UPDATE:
        if (p.length !== 8) throw new SpdyProtocolError(`WINDOW_UPDATE frame of ${p.length} bytes`);
        return { type: 'WINDOW_UPDATE', streamId: p.readUInt32BE(0) & 0x7fffffff, delta: p.readUInt32BE(4) & 0x7fffffff };
      default:
        return undefined;
    }
  }
}

export { HeaderCompressor, HeaderDecompressor };
