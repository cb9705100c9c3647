/**
 * A registry with faults: a plain-HTTP proxy in front of the test registry that passes
 * everything through except blob downloads, which it breaks the way networks and registries
 * do. The fault in force is set by the test; `streams` tells whether a download is still open
 * (a cancelled pull must stop downloading).
 *
 * Also a TLS port that closes every connection before the handshake completes.
 */
import { request, createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { createServer as createNetServer, type AddressInfo, type Server as NetServer } from 'node:net';

export type Fault =
  | { kind: 'none' }
  /** Headers with the full length, half the body, then the connection is cut. */
  | { kind: 'cut' }
  /** The whole body with one byte changed: the digest does not match. */
  | { kind: 'corrupt' }
  /** This status for the first `times` blob requests (Retry-After: 1 with 429), then the blob. */
  | { kind: 'status'; code: number; times: number }
  /** Headers and the first KiB (at most half the blob), then no byte more while the connection stays open. */
  | { kind: 'stall' }
  /** The body at `bytesPerSecond`. */
  | { kind: 'slow'; bytesPerSecond: number };

const BLOB = /^\/v2\/.+\/blobs\/sha256:[0-9a-f]{64}$/;

export class FaultProxy {
  fault: Fault = { kind: 'none' };
  /** Blob downloads begun, and those still open. */
  blobRequests = 0;
  readonly streams = new Set<ServerResponse>();
  private statusServed = 0;
  private server: Server | undefined;
  private tls: NetServer | undefined;
  port = 0;
  tlsPort = 0;

  constructor(private readonly upstream: URL) {}

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  get tlsHost(): string {
    return `127.0.0.1:${this.tlsPort}`;
  }

  set(f: Fault): void {
    this.fault = f;
    this.statusServed = 0;
  }

  async start(): Promise<void> {
    this.server = createServer((req, res) => this.handle(req, res));
    await new Promise<void>((r) => this.server!.listen(0, '127.0.0.1', r));
    this.port = (this.server.address() as AddressInfo).port;
    this.tls = createNetServer((sock) => {
      // Read the ClientHello, then hang up: the handshake never completes.
      sock.once('data', () => sock.destroy());
      sock.on('error', () => {});
    });
    await new Promise<void>((r) => this.tls!.listen(0, '127.0.0.1', r));
    this.tlsPort = (this.tls.address() as AddressInfo).port;
  }

  async stop(): Promise<void> {
    for (const s of this.streams) s.destroy();
    this.server?.closeAllConnections();
    await new Promise<void>((r) => (this.server ? this.server.close(() => r()) : r()));
    await new Promise<void>((r) => (this.tls ? this.tls.close(() => r()) : r()));
  }

  /** Resolves when no blob download is open any more (false after `ms`). */
  async drained(ms: number): Promise<boolean> {
    const end = Date.now() + ms;
    while (this.streams.size > 0) {
      if (Date.now() > end) return false;
      await new Promise((r) => setTimeout(r, 50));
    }
    return true;
  }

  private handle(req: IncomingMessage, res: ServerResponse): void {
    const blob = req.method === 'GET' && BLOB.test(req.url ?? '');
    const f = this.fault;
    if (blob) {
      this.blobRequests++;
      if (f.kind === 'status' && this.statusServed < f.times) {
        this.statusServed++;
        res.writeHead(f.code, f.code === 429 ? { 'Retry-After': '1', 'Content-Type': 'text/plain' } : { 'Content-Type': 'text/plain' });
        res.end(`fault: ${f.code}\n`);
        return;
      }
    }
    const headers = { ...req.headers, host: this.upstream.host };
    // A fault needs the whole blob from the start.
    if (blob && f.kind !== 'none') delete headers.range;
    const up = request(new URL(req.url ?? '/', this.upstream), { method: req.method, headers }, (ur) => {
      if (!blob || f.kind === 'none' || f.kind === 'status' || (ur.statusCode ?? 0) >= 300) {
        res.writeHead(ur.statusCode ?? 502, ur.headers);
        ur.pipe(res);
        return;
      }
      this.streams.add(res);
      // The connection's end, not the response's: a response never ended emits no 'close' of its own.
      const sock = req.socket;
      const gone = () => this.streams.delete(res);
      sock.once('close', gone);
      res.once('close', gone);
      const chunks: Buffer[] = [];
      ur.on('data', (b: Buffer) => chunks.push(b));
      ur.on('end', () => {
        const body = Buffer.concat(chunks);
        res.writeHead(200, { 'Content-Type': 'application/octet-stream', 'Content-Length': String(body.length), 'Docker-Content-Digest': String(ur.headers['docker-content-digest'] ?? '') });
        switch (f.kind) {
          case 'cut':
            res.write(body.subarray(0, Math.floor(body.length / 2)), () => res.destroy());
            return;
          case 'corrupt': {
            const bad = Buffer.from(body);
            const i = Math.floor(bad.length / 2);
            bad[i] = bad[i]! ^ 0xff;
            res.end(bad);
            return;
          }
          case 'stall':
            res.write(body.subarray(0, Math.min(1024, Math.floor(body.length / 2))));
            return; // and nothing more, until the client goes away
          case 'slow': {
            const per = Math.max(1, Math.floor(f.bytesPerSecond / 20));
            let off = 0;
            const tick = setInterval(() => {
              if (res.destroyed) return clearInterval(tick);
              const next = body.subarray(off, off + per);
              off += next.length;
              if (off >= body.length) {
                clearInterval(tick);
                res.end(next);
              } else res.write(next);
            }, 50);
            res.on('close', () => clearInterval(tick));
          }
        }
      });
    });
    up.on('error', (e) => {
      if (!res.headersSent) res.writeHead(502);
      res.end(String(e));
    });
    req.pipe(up);
  }
}
