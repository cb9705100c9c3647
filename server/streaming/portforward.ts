/**
 * port-forward over SPDY (portforward.k8s.io), also used for client-go's SPDY-over-WebSocket
 * tunnel. For every local connection the client opens an error stream and a data stream that
 * share `port` and `requestID` headers; we dial the port inside the pod and copy both ways. A
 * failure to dial is reported as text on the error stream. The session lives until the client
 * closes it.
 */
import type { Duplex } from 'node:stream';
import type { Logger, PortForwardBackend } from '../../runtime/index.js';
import { headerValue } from './spdy/headers.js';
import { SpdySession, type SpdyStream } from './spdy/session.js';

/** A pair whose second stream does not arrive within this time is dropped (the kubelet's value). */
export const PAIR_TIMEOUT_MS = 30_000;

/** Per forwarded connection: reads measured 256 KiB as fast as 1 MiB (and 25% faster than 64 KiB). */
const READ_BUFFER = 256 * 1024;
/**
 * Free read buffers a connection keeps. In flight at once: what the stream buffers before its
 * writer pauses (512 KiB), one chunk in the session's socket, the one being read into.
 */
const RING_KEEP = 4;

/** Read buffers of one size, reused once their bytes were written; more are made when all are out. */
export class BufferRing {
  private readonly free: Buffer[] = [];

  constructor(private readonly size: number, private readonly keep: number) {}

  take(): Buffer {
    return this.free.pop() ?? Buffer.allocUnsafeSlow(this.size);
  }

  give(buf: Buffer): void {
    if (this.free.length < this.keep && !this.free.includes(buf)) this.free.push(buf);
  }
}

interface Pair {
  data?: SpdyStream;
  error?: SpdyStream;
  timer: NodeJS.Timeout;
}

export function serveSpdyPortForward(
  socket: Duplex,
  podSandboxId: string,
  backend: PortForwardBackend,
  logger: Logger,
): SpdySession {
  const session = new SpdySession(socket, { isServer: true, onDebug: (m) => logger.debug(`streaming: ${m}`) });
  const gone = new AbortController();
  const pairs = new Map<string, Pair>();
  session.on('close', () => {
    gone.abort();
    for (const p of pairs.values()) clearTimeout(p.timer);
    pairs.clear();
  });
  session.on('stream', (s: SpdyStream) => {
    s.on('error', () => {});
    const type = headerValue(s.headers, 'streamtype');
    const portText = headerValue(s.headers, 'port') ?? '';
    if ((type !== 'data' && type !== 'error') || !/^\d+$/.test(portText) || Number(portText) < 1 || Number(portText) > 65535) {
      logger.debug(`streaming: port-forward: rejecting stream ${s.id} (streamType=${type}, port=${portText})`);
      s.reset();
      return;
    }
    s.reply();
    // Clients that predate requestID number the error stream first, the data stream right after.
    const rid = headerValue(s.headers, 'requestid') ?? String(type === 'error' ? s.id : s.id - 2);
    const key = `${portText}/${rid}`;
    let p = pairs.get(key);
    if (!p) {
      p = {
        timer: setTimeout(() => {
          pairs.delete(key);
          p?.data?.reset();
          p?.error?.reset();
        }, PAIR_TIMEOUT_MS),
      };
      p.timer.unref();
      pairs.set(key, p);
    }
    if (p[type]) {
      s.reset();
      return;
    }
    p[type] = s;
    if (!p.data || !p.error) return;
    clearTimeout(p.timer);
    pairs.delete(key);
    void forward(podSandboxId, Number(portText), p.data, p.error, backend, gone.signal, logger);
  });
  return session;
}

async function forward(
  podSandboxId: string,
  port: number,
  data: SpdyStream,
  error: SpdyStream,
  backend: PortForwardBackend,
  gone: AbortSignal,
  logger: Logger,
): Promise<void> {
  // The client never writes on the error stream; drain it so its FIN is seen.
  error.resume();
  // Pod -> client without a copy in between: the pod's socket reads into buffers of a small
  // ring, each read is framed as it lies, and its buffer returns to the ring once the client's
  // socket has handed it to the kernel (the stream's write callback). 'data' events, or one
  // buffer copied out after each read, allocate per read: at port-forward rates that garbage
  // kept V8's major GC and the page-fault handler busy (perf: a third of the daemon's time).
  let conn!: Duplex;
  const ring = new BufferRing(READ_BUFFER, RING_KEEP);
  const reads = {
    buffer: () => ring.take(),
    callback: (n: number, buf: Buffer): boolean => {
      if (data.write(buf.subarray(0, n), () => ring.give(buf))) return true;
      data.once('drain', () => conn.resume());
      return false;
    },
  };
  try {
    conn = await backend.connect(podSandboxId, port, gone, reads);
  } catch (err) {
    const msg = `error forwarding port ${port} to pod ${podSandboxId}: ${(err as Error).message}`;
    logger.debug(`streaming: ${msg}`);
    error.end(Buffer.from(msg));
    data.end();
    return;
  }
  if (data.destroyed || gone.aborted) {
    // The client went away while we dialled.
    conn.destroy();
    return;
  }
  conn.on('error', (err) => {
    logger.debug(`streaming: port-forward ${podSandboxId}:${port}: ${err.message}`);
    data.reset();
  });
  data.on('close', () => {
    if (!data.writableFinished || !data.readableEnded) conn.destroy();
  });
  // Half-closes travel both ways: client EOF -> FIN to the pod's socket, pod EOF -> FIN on the stream.
  data.pipe(conn);
  conn.on('end', () => data.end());
  conn.on('close', () => {
    if (!error.writableEnded) error.end();
  });
}
