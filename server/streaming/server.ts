/**
 * The streaming HTTP server: the URLs that the Exec, Attach and PortForward RPCs return point
 * here. A request is an HTTP/1.1 upgrade, either to SPDY/3.1 (the kubelet, kubectl and crictl by
 * default) or to WebSocket (crictl -r websocket, critest --websocket-*), on
 * /{exec,attach,portforward}/<token>. The token stands for the request the RPC validated; it is
 * good for one connection within a minute.
 */
import { readFileSync } from 'node:fs';
import http from 'node:http';
import https from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocketServer, createWebSocketStream, type WebSocket } from 'ws';
import type { AttachBackend, Config, ExecBackend, Logger, PortForwardBackend } from '../../runtime/index.js';
import { UnavailableError } from '../../runtime/errors.js';
import { formatTimeout, spdyTraffic, tunnelTraffic, watchIdle, webSocketTraffic, type TrafficMeter } from './idle.js';
import { serveSpdyPortForward } from './portforward.js';
import {
  ACCEPTED_PROTOCOLS_HEADER, PORTFORWARD_PROTOCOLS, REMOTECOMMAND_PROTOCOLS, STREAM_PROTOCOL_HEADER, WS_PORTFORWARD_PROTOCOLS,
  WS_REMOTECOMMAND_PROTOCOLS, WS_TUNNEL_PREFIX, headerList, negotiate, remoteCommandVersion,
} from './protocols.js';
import type { PreparedRequest } from './remotecommand.js';
import { serveSpdyRemoteCommand } from './spdy-remotecommand.js';
import { TokenCache } from './tokens.js';
import { serveWsPortForward } from './ws-portforward.js';
import { serveWsRemoteCommand } from './ws-remotecommand.js';

export type StreamKind = 'exec' | 'attach' | 'portforward';

export interface StreamingServerDeps {
  config: Pick<Config, 'streaming'>;
  logger: Logger;
  exec: ExecBackend;
  attach: AttachBackend;
  portForward: PortForwardBackend;
  /** Token lifetime; tests shorten it. */
  tokenTtlMs?: number;
  /** Overrides streaming.idle_timeout_seconds in milliseconds; tests shorten it. */
  idleTimeoutMs?: number;
}

let current: StreamingServer | undefined;

/** The running server, for the Exec/Attach/PortForward RPCs. */
export function activeStreamingServer(): StreamingServer {
  if (!current) throw new UnavailableError('the streaming server is not running');
  return current;
}

let starting: Promise<StreamingServer> | undefined;

/**
 * The running server, or one started now from the runtime's config and backends: the daemon
 * normally starts it at boot (StreamingServer.start), but the first Exec must not fail if it
 * did not.
 */
export async function ensureStreamingServer(rt: { config: Pick<Config, 'streaming'>; logger: Logger; streaming: { exec: ExecBackend; attach: AttachBackend; portForward: PortForwardBackend } }): Promise<StreamingServer> {
  if (current) return current;
  starting ??= StreamingServer.start({ config: rt.config, logger: rt.logger, ...rt.streaming })
    .then((s) => { s.unref(); return s; })
    .finally(() => { starting = undefined; });
  try {
    return await starting;
  } catch (err) {
    throw new UnavailableError(`the streaming server cannot start: ${(err as Error).message}`);
  }
}

function rawResponse(socket: Duplex, status: number, reason: string, headers: Array<[string, string]>, body = ''): void {
  const lines = [`HTTP/1.1 ${status} ${reason}`, ...headers.map(([k, v]) => `${k}: ${v}`),
    'Content-Type: text/plain; charset=utf-8', `Content-Length: ${Buffer.byteLength(body)}`, 'Connection: close', '', body];
  socket.end(lines.join('\r\n'));
}

const PATH_RE = /^\/(exec|attach|portforward)\/([A-Za-z0-9_-]+)\/?$/;

/** RFC 6455 "going away": what servers commonly send when they drop an idle connection. */
const WS_GOING_AWAY = 1001;

/** A close handshake the client does not answer is cut after this long. */
const CLOSE_GRACE_MS = 5000;

function describeRequest(req: PreparedRequest): string {
  return req.kind === 'portforward' ? `port-forward to pod ${req.podSandboxId}` : `${req.kind} in container ${req.containerId}`;
}

export class StreamingServer {
  readonly address: string;
  readonly port: number;
  readonly scheme: 'http' | 'https';
  private readonly tokens: TokenCache<PreparedRequest>;
  private readonly idleTimeoutMs: number;
  private readonly sockets = new Set<Duplex>();
  private readonly wss = new WebSocketServer({
    noServer: true,
    perMessageDeflate: false,
    maxPayload: 64 * 1024 * 1024,
    handleProtocols: (_offered, req) => (req as http.IncomingMessage & { corralProtocol?: string }).corralProtocol || false,
  });

  private constructor(private readonly server: http.Server, private readonly deps: StreamingServerDeps, address: string, port: number, scheme: 'http' | 'https') {
    this.address = address;
    this.port = port;
    this.scheme = scheme;
    this.tokens = new TokenCache(deps.tokenTtlMs);
    // A config built by hand (tests) may lack the key: no timeout then.
    this.idleTimeoutMs = deps.idleTimeoutMs ?? (deps.config.streaming.idle_timeout_seconds ?? 0) * 1000;
  }

  static async start(deps: StreamingServerDeps): Promise<StreamingServer> {
    const cfg = deps.config.streaming;
    const tls = cfg.tls_cert !== '' && cfg.tls_key !== '';
    const server = tls
      ? https.createServer({ cert: readFileSync(cfg.tls_cert), key: readFileSync(cfg.tls_key) })
      : http.createServer();
    server.keepAliveTimeout = 5000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(cfg.port, cfg.address || '127.0.0.1', () => {
        server.off('error', reject);
        resolve();
      });
    });
    const bound = server.address() as AddressInfo;
    const s = new StreamingServer(server, deps, cfg.address || bound.address, bound.port, tls ? 'https' : 'http');
    server.on('request', (req, res) => s.onRequest(req, res));
    server.on('upgrade', (req: http.IncomingMessage, socket: Duplex, head: Buffer) => s.onUpgrade(req, socket, head));
    server.on('connection', (sock: Socket) => {
      s.sockets.add(sock);
      sock.once('close', () => s.sockets.delete(sock));
    });
    server.on('secureConnection', (sock: Socket) => {
      s.sockets.add(sock);
      sock.once('close', () => s.sockets.delete(sock));
    });
    current = s;
    deps.logger.info(`streaming server listening on ${s.baseUrl()}`);
    return s;
  }

  baseUrl(): string {
    const host = this.address.includes(':') ? `[${this.address}]` : this.address;
    return `${this.scheme}://${host}:${this.port}`;
  }

  url(kind: StreamKind, token: string): string {
    return `${this.baseUrl()}/${kind}/${token}`;
  }

  /** Stores a validated request and returns the URL the client must connect to. */
  prepare(req: PreparedRequest): string {
    return this.url(req.kind, this.tokens.put(req));
  }

  /** Lets the process exit while the server idles (it then lives as long as the daemon does). */
  unref(): void {
    this.server.unref();
  }

  /** Stops listening and cuts every open session. */
  async close(): Promise<void> {
    if (current === this) current = undefined;
    for (const c of this.wss.clients) c.terminate();
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private onRequest(req: http.IncomingMessage, res: http.ServerResponse): void {
    const m = PATH_RE.exec(new URL(req.url ?? '/', 'http://x').pathname);
    if (!m) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('not found\n');
      return;
    }
    // Not an upgrade: nothing to stream over. The token is spent like the kubelet spends it.
    const prepared = this.tokens.take(m[2]!);
    if (!prepared || prepared.kind !== m[1]) {
      res.writeHead(404, { 'Content-Type': 'text/plain' }).end('unknown or expired token\n');
      return;
    }
    res.writeHead(400, { 'Content-Type': 'text/plain' }).end('this endpoint needs an HTTP/1.1 upgrade to SPDY/3.1 or WebSocket\n');
  }

  private onUpgrade(req: http.IncomingMessage, socket: Duplex, head: Buffer): void {
    const { logger } = this.deps;
    socket.on('error', (err) => logger.debug(`streaming: socket: ${err.message}`));
    const url = new URL(req.url ?? '/', 'http://x');
    const m = PATH_RE.exec(url.pathname);
    const prepared = m ? this.tokens.take(m[2]!) : undefined;
    if (!m || !prepared || prepared.kind !== m[1]) {
      rawResponse(socket, 404, 'Not Found', [], 'unknown or expired token\n');
      return;
    }
    const upgrade = (req.headers.upgrade ?? '').toLowerCase();
    if (upgrade === 'websocket') return this.upgradeWebSocket(req, socket, head, prepared, url);
    if (upgrade.startsWith('spdy/3')) return this.upgradeSpdy(req, socket, head, prepared);
    rawResponse(socket, 400, 'Bad Request', [], `unsupported upgrade ${JSON.stringify(req.headers.upgrade ?? '')}\n`);
  }

  private upgradeSpdy(req: http.IncomingMessage, socket: Duplex, head: Buffer, prepared: PreparedRequest): void {
    const { logger } = this.deps;
    const server = prepared.kind === 'portforward' ? PORTFORWARD_PROTOCOLS : REMOTECOMMAND_PROTOCOLS;
    const client = headerList(req.headersDistinct?.[STREAM_PROTOCOL_HEADER] ?? req.headers[STREAM_PROTOCOL_HEADER]);
    const chosen = negotiate(client, server);
    if (chosen === undefined) {
      rawResponse(socket, 403, 'Forbidden', server.map((p) => [ACCEPTED_PROTOCOLS_HEADER, p]),
        `unable to upgrade: unable to negotiate protocol: client supports ${JSON.stringify(client)}, server accepts ${JSON.stringify(server)}\n`);
      return;
    }
    const lines = ['HTTP/1.1 101 Switching Protocols', 'Connection: Upgrade', 'Upgrade: SPDY/3.1'];
    if (chosen !== '') lines.push(`X-Stream-Protocol-Version: ${chosen}`);
    socket.write(lines.join('\r\n') + '\r\n\r\n');
    if ('setNoDelay' in socket && typeof (socket as Socket).setNoDelay === 'function') (socket as Socket).setNoDelay(true);
    if (head.length > 0) socket.unshift(head);
    // GOAWAY and FIN; the session's close (the client's FIN, or the grace running out) aborts
    // the backend through the same signal as a client that hangs up.
    if (prepared.kind === 'portforward') {
      const session = serveSpdyPortForward(socket, prepared.podSandboxId, this.deps.portForward, logger);
      this.closeWhenIdle(socket, spdyTraffic, prepared, 'SPDY', () => session.close(CLOSE_GRACE_MS));
    } else {
      const version = chosen === '' ? 1 : remoteCommandVersion(chosen);
      const idle = new AbortController();
      serveSpdyRemoteCommand(socket, prepared, version, this.deps, logger, { idle: idle.signal });
      // exec/attach first tell the client why on the error stream.
      this.closeWhenIdle(socket, spdyTraffic, prepared, 'SPDY', () => idle.abort(`stream idle timeout: no traffic for ${formatTimeout(this.idleTimeoutMs)}, the runtime closed the session`));
    }
  }

  /** Watches the upgraded connection's traffic until it closes; `close` ends an idle session. */
  private closeWhenIdle(socket: Duplex, meter: (socket: Duplex) => TrafficMeter, prepared: PreparedRequest, transport: string, close: () => void): void {
    const ms = this.idleTimeoutMs;
    if (!(ms > 0)) return;
    const stop = watchIdle(meter(socket).probe, ms, () => {
      this.deps.logger.info(`streaming: ${describeRequest(prepared)} over ${transport}: no traffic for ${formatTimeout(ms)}, closing the session (streaming.idle_timeout_seconds)`);
      close();
    });
    socket.once('close', stop);
  }

  private upgradeWebSocket(req: http.IncomingMessage, socket: Duplex, head: Buffer, prepared: PreparedRequest, url: URL): void {
    const { logger } = this.deps;
    const server = prepared.kind === 'portforward' ? WS_PORTFORWARD_PROTOCOLS : WS_REMOTECOMMAND_PROTOCOLS;
    const client = headerList(req.headers['sec-websocket-protocol']);
    const chosen = negotiate(client, server);
    if (chosen === undefined) {
      rawResponse(socket, 403, 'Forbidden', server.map((p) => [ACCEPTED_PROTOCOLS_HEADER, p]),
        `unable to upgrade: unable to negotiate protocol: client supports ${JSON.stringify(client)}, server accepts ${JSON.stringify(server)}\n`);
      return;
    }
    (req as http.IncomingMessage & { corralProtocol?: string }).corralProtocol = chosen;
    // ws validates offered subprotocols as RFC 7230 tokens, and client-go's tunnelling protocol
    // "SPDY/3.1+portforward.k8s.io" has a '/'. The choice is already made: show ws a valid token
    // and answer with the real name through handleProtocols.
    if (chosen === '') delete req.headers['sec-websocket-protocol'];
    else req.headers['sec-websocket-protocol'] = 'negotiated';
    this.wss.handleUpgrade(req, socket, head, (ws: WebSocket) => {
      if (prepared.kind === 'portforward') {
        if (chosen.startsWith(WS_TUNNEL_PREFIX)) {
          const tunnel = createWebSocketStream(ws, { allowHalfOpen: false });
          tunnel.on('error', (err) => logger.debug(`streaming: websocket tunnel: ${err.message}`));
          const session = serveSpdyPortForward(tunnel, prepared.podSandboxId, this.deps.portForward, logger);
          // GOAWAY inside the tunnel; ending the tunnel closes the WebSocket.
          this.closeWhenIdle(socket, (sock) => tunnelTraffic(sock, ws, tunnel), prepared, 'SPDY in WebSocket', () => session.close(CLOSE_GRACE_MS));
          return;
        }
        const queryPorts = url.searchParams.getAll('port').map(Number).filter((p) => Number.isInteger(p) && p > 0 && p < 65536);
        serveWsPortForward(ws, prepared.podSandboxId, queryPorts.length > 0 ? queryPorts : prepared.ports, this.deps.portForward, logger);
      } else {
        serveWsRemoteCommand(ws, chosen === '' ? 'channel.k8s.io' : chosen, prepared, this.deps, logger);
      }
      // A close frame; the 'close' event that follows aborts the backend.
      this.closeWhenIdle(socket, (sock) => webSocketTraffic(sock, ws), prepared, 'WebSocket', () => {
        if (ws.readyState === ws.OPEN) ws.close(WS_GOING_AWAY, 'idle timeout');
        const t = setTimeout(() => ws.terminate(), CLOSE_GRACE_MS);
        t.unref();
        ws.once('close', () => clearTimeout(t));
      });
    });
  }
}
