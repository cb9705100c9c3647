/**
 * The idle timeout of a streaming session (the kubelet's StreamIdleTimeout, CRI-O's and
 * containerd's stream_idle_timeout): a session whose connection carries no traffic in either
 * direction for the configured time is closed by its transport, which ends an exec'd process
 * the way a client that disconnects does.
 *
 * Traffic is measured from outside the SPDY and WebSocket code, on the connection's byte
 * counters, less the bytes of keep-alive frames: SPDY PINGs and WebSocket ping/pong frames, with
 * our answers to them. client-go (kubectl >= 1.21, crictl) pings every 5 s on both transports,
 * and runtimes that count those pings never time a session out (kubernetes#102569,
 * containerd#5563, cri-o#4995). Everything else counts: DATA in either direction, the
 * WINDOW_UPDATEs that acknowledge it, streams opened or reset.
 *
 * Nothing runs per outgoing chunk; incoming SPDY bytes go through a frame-boundary scanner that
 * reads 8 header bytes per frame. A timer samples the meter ten times per timeout, so a session
 * is closed between `timeoutMs` and `timeoutMs` + 2 samples after its last traffic, never earlier.
 */
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { WebSocket } from 'ws';

/** A number that changes whenever traffic moves; only changes matter, not the value. */
export type ActivityProbe = () => number;

/** Byte counters of the connection less the keep-alive bytes reported to discount(). */
export class TrafficMeter {
  private keepalive = 0;

  constructor(private readonly bytes: ActivityProbe) {}

  /** Bytes that moved only to keep the connection open. */
  discount(n: number): void {
    this.keepalive += n;
  }

  readonly probe: ActivityProbe = () => this.bytes() - this.keepalive;
}

/**
 * Bytes read plus bytes written. Node's sockets (plain and TLS, whose counters are of cleartext)
 * count them, writes still buffered included; another Duplex is observed through its 'data'
 * events and write calls.
 */
export function socketBytes(socket: Duplex): ActivityProbe {
  const s = socket as Partial<Pick<Socket, 'bytesRead' | 'bytesWritten'>>;
  if (typeof s.bytesRead === 'number' && typeof s.bytesWritten === 'number') {
    const sock = socket as Socket;
    return () => sock.bytesRead + sock.bytesWritten;
  }
  let n = 0;
  socket.on('data', (chunk: Buffer | string) => { n += Buffer.byteLength(chunk); });
  const write = socket.write;
  socket.write = function (this: Duplex, chunk: unknown, ...rest: unknown[]) {
    if (typeof chunk === 'string' || Buffer.isBuffer(chunk)) n += Buffer.byteLength(chunk);
    else if (chunk instanceof Uint8Array) n += chunk.length;
    return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  } as Duplex['write'];
  return () => n;
}

const SPDY_PING = 6;
/** Control frame header (8) + ping id (4). */
export const SPDY_PING_FRAME_BYTES = 12;

/**
 * A scanner for a SPDY/3 byte stream fed chunk by chunk from a frame boundary: it calls
 * onPing(id) for every PING frame and skips every other frame by its length.
 */
export function spdyPingScanner(onPing: (id: number) => void): (chunk: Buffer) => void {
  const header = Buffer.alloc(8);
  let headerLen = 0;
  let remaining = 0;
  let ping = false;
  const id = Buffer.alloc(4);
  let idLen = 0;
  return (chunk: Buffer) => {
    let i = 0;
    while (i < chunk.length) {
      if (remaining > 0) {
        const n = Math.min(remaining, chunk.length - i);
        if (ping) {
          const take = Math.min(4 - idLen, n);
          chunk.copy(id, idLen, i, i + take);
          idLen += take;
          if (idLen === 4) {
            ping = false;
            onPing(id.readUInt32BE(0));
          }
        }
        remaining -= n;
        i += n;
        continue;
      }
      const n = Math.min(8 - headerLen, chunk.length - i);
      chunk.copy(header, headerLen, i, i + n);
      headerLen += n;
      i += n;
      if (headerLen < 8) return;
      headerLen = 0;
      remaining = header.readUIntBE(5, 3);
      ping = (header[0]! & 0x80) !== 0 && header.readUInt16BE(2) === SPDY_PING && remaining === 4;
      idLen = 0;
    }
  };
}

/** SPDY directly on the upgraded connection: a client's PING (odd id) and our echo of it. */
export function spdyTraffic(socket: Duplex): TrafficMeter {
  const meter = new TrafficMeter(socketBytes(socket));
  socket.on('data', spdyPingScanner((id) => {
    meter.discount(id % 2 === 1 ? 2 * SPDY_PING_FRAME_BYTES : SPDY_PING_FRAME_BYTES);
  }));
  return meter;
}

/** A control frame (at most 125 bytes of payload) from a client: 2 header bytes and a 4-byte mask. */
const clientControlFrame = (payload: number) => 6 + payload;
/** The same from us: unmasked. */
const serverControlFrame = (payload: number) => 2 + payload;

/**
 * WebSocket on the upgraded connection: a client's ping with the pong that ws answers while the
 * socket is open, and unsolicited pongs.
 */
export function webSocketTraffic(socket: Duplex, ws: WebSocket): TrafficMeter {
  const meter = new TrafficMeter(socketBytes(socket));
  ws.on('ping', (data: Buffer) => {
    const answered = ws.readyState === ws.OPEN ? serverControlFrame(data.length) : 0;
    meter.discount(clientControlFrame(data.length) + answered);
  });
  ws.on('pong', (data: Buffer) => meter.discount(clientControlFrame(data.length)));
  return meter;
}

/**
 * SPDY tunnelled in WebSocket binary messages (client-go's port-forward over WebSocket). How a
 * client splits its frames into messages is its business, so incoming traffic is the tunnel's
 * SPDY bytes; outgoing is the socket's, where our PING echo is one 14-byte binary message.
 */
export function tunnelTraffic(socket: Duplex, ws: WebSocket, tunnel: Duplex): TrafficMeter {
  let tunnelIn = 0;
  const written = socket as Partial<Pick<Socket, 'bytesWritten'>>;
  const out = typeof written.bytesWritten === 'number' ? () => (socket as Socket).bytesWritten : socketBytes(socket);
  const meter = new TrafficMeter(() => tunnelIn + out());
  const scan = spdyPingScanner((id) => {
    meter.discount(SPDY_PING_FRAME_BYTES + (id % 2 === 1 ? serverControlFrame(SPDY_PING_FRAME_BYTES) : 0));
  });
  tunnel.on('data', (chunk: Buffer) => {
    tunnelIn += chunk.length;
    scan(chunk);
  });
  ws.on('ping', (data: Buffer) => meter.discount(ws.readyState === ws.OPEN ? serverControlFrame(data.length) : 0));
  return meter;
}

/** Timer resolution: a tenth of the timeout, between 1 ms and 30 s (480 wake-ups in 4 h). */
export function sampleInterval(timeoutMs: number): number {
  return Math.min(30_000, Math.max(1, Math.ceil(timeoutMs / 10)));
}

/**
 * Calls `onIdle` once when `activity` has not changed for `timeoutMs`. Returns the function
 * that stops watching (call it when the session closes). A timeout of 0 (or less) watches
 * nothing.
 */
export function watchIdle(activity: ActivityProbe, timeoutMs: number, onIdle: () => void): () => void {
  if (!(timeoutMs > 0)) return () => {};
  let seen = activity();
  let lastActive = performance.now();
  const timer = setInterval(() => {
    const now = performance.now();
    const current = activity();
    if (current !== seen) {
      seen = current;
      lastActive = now;
      return;
    }
    if (now - lastActive >= timeoutMs) {
      clearInterval(timer);
      onIdle();
    }
  }, sampleInterval(timeoutMs));
  timer.unref();
  return () => clearInterval(timer);
}

/** "4 h", "90 s", "150 ms": for log lines and messages. */
export function formatTimeout(ms: number): string {
  if (ms % 3_600_000 === 0) return `${ms / 3_600_000} h`;
  if (ms % 60_000 === 0) return `${ms / 60_000} min`;
  if (ms % 1000 === 0) return `${ms / 1000} s`;
  return `${ms} ms`;
}
