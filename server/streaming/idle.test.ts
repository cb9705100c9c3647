import test from 'ava';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import { PassThrough, type Duplex } from 'node:stream';
import { WebSocket, createWebSocketStream } from 'ws';
import type { ExecBackend, Logger, PortForwardBackend, StreamIO } from '../../runtime/index.js';
import { formatTimeout, sampleInterval, socketBytes, spdyPingScanner, watchIdle } from './idle.js';
import { encodeFrame } from './spdy/frames.js';
import { HeaderCompressor } from './spdy/headers.js';
import { StreamingServer } from './server.js';
import { readAll, spdyUpgrade } from './spdy/test-client.js';
import { SpdySession } from './spdy/session.js';
import type { StreamOptions } from './remotecommand.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

// Short enough for a unit test, long enough that a loaded 2-core machine does not starve the
// 25 ms traffic of the "active" cases.
const IDLE_MS = 150;

test('watchIdle: fires once after the timeout without activity, never while the probe moves', async (t) => {
  let n = 0;
  let fired = 0;
  const start = performance.now();
  let firedAt = 0;
  const stop = watchIdle(() => n, 60, () => { fired++; firedAt = performance.now(); });
  for (let i = 0; i < 10; i++) {
    await sleep(15);
    n++;
  }
  t.is(fired, 0);
  const lastActivity = performance.now();
  await sleep(200);
  t.is(fired, 1);
  t.true(firedAt - lastActivity >= 60 - 1, `fired ${firedAt - lastActivity} ms after the last activity`);
  t.true(firedAt - start >= 150);
  stop();
});

test('watchIdle: stop() and a zero timeout watch nothing', async (t) => {
  let fired = 0;
  watchIdle(() => 0, 30, () => fired++)();
  watchIdle(() => 0, 0, () => fired++);
  await sleep(100);
  t.is(fired, 0);
});

test('socketBytes: counters of a socket, data and writes of another Duplex', async (t) => {
  const p = new PassThrough();
  const probe = socketBytes(p);
  const a = probe();
  p.write('xyz');
  await sleep(10);
  t.is(probe(), a + 6, 'the write and the data event it causes');

  const srv = net.createServer((c) => c.pipe(c));
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const c = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  await new Promise((r) => c.once('connect', r));
  const sp = socketBytes(c);
  const before = sp();
  c.write('hi');
  t.is(sp(), before + 2);
  c.destroy();
  srv.close();
});

test('spdyPingScanner: PINGs found across any chunking, look-alike bytes inside other frames ignored', (t) => {
  const c = new HeaderCompressor();
  const fakePing = encodeFrame({ type: 'PING', id: 99 }, c);
  const stream = Buffer.concat([
    encodeFrame({ type: 'SYN_STREAM', streamId: 1, associatedId: 0, priority: 0, slot: 0, flags: 0, headers: { streamtype: ['error'] } }, c),
    encodeFrame({ type: 'PING', id: 1 }, c),
    encodeFrame({ type: 'DATA', streamId: 1, flags: 0, data: Buffer.concat([fakePing, fakePing]) }, c),
    encodeFrame({ type: 'WINDOW_UPDATE', streamId: 0, delta: 100 }, c),
    encodeFrame({ type: 'PING', id: 4 }, c),
    encodeFrame({ type: 'DATA', streamId: 1, flags: 1, data: Buffer.alloc(0) }, c),
    encodeFrame({ type: 'PING', id: 7 }, c),
  ]);
  for (const size of [1, 3, 7, 8, 12, 13, stream.length]) {
    const ids: number[] = [];
    const scan = spdyPingScanner((id) => ids.push(id));
    for (let i = 0; i < stream.length; i += size) scan(stream.subarray(i, i + size));
    t.deepEqual(ids, [1, 4, 7], `chunks of ${size}`);
  }
});

test('sampleInterval and formatTimeout', (t) => {
  t.is(sampleInterval(150), 15);
  t.is(sampleInterval(4 * 3600_000), 30_000);
  t.is(sampleInterval(3), 1);
  t.is(formatTimeout(4 * 3600_000), '4 h');
  t.is(formatTimeout(90_000), '90 s');
  t.is(formatTimeout(120_000), '2 min');
  t.is(formatTimeout(150), '150 ms');
});

// A streaming server with a short idle timeout and backends that record what happens.

const aborted = new Set<string>();
const logLines: string[] = [];
const logger = {
  info: (m: string) => { logLines.push(m); },
  debug: () => {},
  warn: () => {},
  error: () => {},
} as unknown as Logger;

const exec: ExecBackend = {
  async exec(req, io: StreamIO) {
    const [cmd, arg] = req.cmd;
    switch (cmd) {
      case 'hang':
        await new Promise<void>((resolve) => io.signal.addEventListener('abort', () => resolve()));
        aborted.add(arg!);
        return 137;
      case 'cat':
        io.stdin!.pipe(io.stdout!, { end: false });
        await new Promise((r) => io.stdin!.once('end', r));
        return 0;
      case 'tick':
        // Output only: the client never writes, the server does every 25 ms.
        for (let i = 0; i < Number(arg); i++) {
          if (io.signal.aborted) return 137;
          io.stdout!.write('t');
          await sleep(25);
        }
        return 0;
      default:
        throw new Error(`unknown ${cmd}`);
    }
  },
};

let echoPort = 0;
const forwarded: net.Socket[] = [];
const portForward: PortForwardBackend = {
  connect(_pod, _port, _signal, reads) {
    return new Promise((resolve, reject) => {
      const c = net.connect({ port: echoPort, host: '127.0.0.1', ...(reads ? { onread: reads } : {}) }, () => resolve(c));
      forwarded.push(c);
      c.once('error', reject);
    });
  },
};

let server: StreamingServer;
let echo: net.Server;

test.before(async () => {
  echo = net.createServer((c) => c.pipe(c));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  echoPort = (echo.address() as net.AddressInfo).port;
  server = await StreamingServer.start({
    config: { streaming: { address: '127.0.0.1', port: 0, tls_cert: '', tls_key: '', idle_timeout_seconds: 0 } },
    logger,
    exec,
    attach: { attach: async () => {} },
    portForward,
    idleTimeoutMs: IDLE_MS,
  });
});

test.after.always(async () => {
  await server.close();
  echo.close();
});

const io = (o: Partial<StreamOptions>): StreamOptions => ({ stdin: false, stdout: true, stderr: false, tty: false, ...o });

async function waitFor(cond: () => boolean, ms = 3000): Promise<boolean> {
  for (const end = Date.now() + ms; Date.now() < end; await sleep(10)) if (cond()) return true;
  return cond();
}

test.serial('SPDY: an idle exec gets GOAWAY, the connection ends and the process is aborted', async (t) => {
  const url = server.prepare({ kind: 'exec', containerId: 'c-idle', cmd: ['hang', 'spdy'], opts: io({ stdin: true }) });
  const up = await spdyUpgrade(url, ['v4.channel.k8s.io']);
  const s = up.session!;
  const goaway = new Promise((r) => s.once('goaway', r));
  const closed = new Promise((r) => s.once('close', r));
  const start = performance.now();
  const [error] = ['error', 'stdin', 'stdout'].map((type) => s.openStream({ streamtype: [type] }));
  const status = readAll(error!);
  await goaway;
  const after = performance.now() - start;
  t.true(after >= IDLE_MS - 1, `GOAWAY after ${after} ms`);
  // client-go turns a Failure that is not NonZeroExitCode into an error with this message.
  const st = JSON.parse((await status).toString());
  t.like(st, { status: 'Failure', reason: 'Timeout', code: 504 });
  t.regex(st.message, /^stream idle timeout: no traffic for 150 ms/);
  await closed;
  t.true(await waitFor(() => aborted.has('spdy')));
  t.true(logLines.some((l) => /exec in container c-idle over SPDY: no traffic for 150 ms, closing the session/.test(l)), logLines.join('\n'));
});

test.serial('SPDY: client-to-server traffic keeps an exec alive past the timeout', async (t) => {
  const url = server.prepare({ kind: 'exec', containerId: 'c-busy', cmd: ['cat'], opts: io({ stdin: true }) });
  const s = (await spdyUpgrade(url, ['v4.channel.k8s.io'])).session!;
  const error = s.openStream({ streamtype: ['error'] });
  const stdin = s.openStream({ streamtype: ['stdin'] });
  const stdout = s.openStream({ streamtype: ['stdout'] });
  const out = readAll(stdout);
  const status = readAll(error);
  for (let i = 0; i < 24; i++) {
    stdin.write(`${i}\n`);
    await sleep(25);
  }
  stdin.end();
  t.is((await out).toString().split('\n').length, 25);
  t.deepEqual(JSON.parse((await status).toString()), { metadata: {}, status: 'Success' });
  t.false(logLines.some((l) => l.includes('c-busy')), logLines.join('\n'));
});

test.serial('SPDY: server-to-client output alone keeps an exec alive', async (t) => {
  const url = server.prepare({ kind: 'exec', containerId: 'c-out', cmd: ['tick', '24'], opts: io({}) });
  const s = (await spdyUpgrade(url, ['v4.channel.k8s.io'])).session!;
  const error = s.openStream({ streamtype: ['error'] });
  const stdout = s.openStream({ streamtype: ['stdout'] });
  const [out, status] = await Promise.all([readAll(stdout), readAll(error)]);
  t.is(out.toString(), 't'.repeat(24));
  t.deepEqual(JSON.parse(status.toString()), { metadata: {}, status: 'Success' });
  t.false(logLines.some((l) => l.includes('c-out')), logLines.join('\n'));
});

test.serial('SPDY port-forward: an idle session is closed and its pod connection with it', async (t) => {
  const url = server.prepare({ kind: 'portforward', podSandboxId: 'p-idle', ports: [80] });
  const s = (await spdyUpgrade(url, ['portforward.k8s.io'])).session!;
  const closed = new Promise((r) => s.once('close', r));
  const n = forwarded.length;
  const error = s.openStream({ streamtype: ['error'], port: ['80'], requestid: ['0'] });
  const data = s.openStream({ streamtype: ['data'], port: ['80'], requestid: ['0'] });
  error.end();
  data.on('error', () => {});
  error.on('error', () => {});
  const echoed = new Promise<string>((r) => data.once('data', (b: Buffer) => r(b.toString())));
  data.write('ping');
  t.is(await echoed, 'ping');
  await closed;
  const conn = forwarded[n]!;
  t.true(await waitFor(() => conn.destroyed));
  t.true(logLines.some((l) => /port-forward to pod p-idle over SPDY: no traffic/.test(l)));
});

test.serial('SPDY: client PINGs every 20 ms do not keep an idle exec alive (client-go pings every 5 s)', async (t) => {
  const url = server.prepare({ kind: 'exec', containerId: 'c-pinged', cmd: ['hang', 'spdy-pinged'], opts: io({ stdin: true }) });
  const s = (await spdyUpgrade(url, ['v4.channel.k8s.io'])).session!;
  for (const type of ['error', 'stdin', 'stdout']) s.openStream({ streamtype: [type] });
  const closed = new Promise((r) => s.once('close', r));
  const start = performance.now();
  let pongs = 0;
  const pinger = setInterval(() => { if (!s.isClosed) void s.ping().then((rtt) => { if (rtt >= 0) pongs++; }); }, 20);
  await closed;
  clearInterval(pinger);
  const after = performance.now() - start;
  t.true(pongs >= 3, `${pongs} PINGs answered`);
  t.true(after >= IDLE_MS - 1 && after < 2000, `closed after ${after} ms`);
  t.true(await waitFor(() => aborted.has('spdy-pinged')));
});

function wsOpen(url: string, protocol: string): Promise<{ ws: WebSocket; closed: Promise<{ code: number; reason: string }> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws'), [protocol]);
    const closed = new Promise<{ code: number; reason: string }>((r) => ws.once('close', (code, reason) => r({ code, reason: reason.toString() })));
    ws.on('message', () => {});
    ws.once('open', () => resolve({ ws, closed }));
    ws.once('error', reject);
  });
}

test.serial('WebSocket: an idle exec gets a close frame (1001) and the process is aborted', async (t) => {
  const url = server.prepare({ kind: 'exec', containerId: 'c-wsidle', cmd: ['hang', 'ws'], opts: io({ stdin: true }) });
  const start = performance.now();
  const c = await wsOpen(url, 'v5.channel.k8s.io');
  const { code, reason } = await c.closed;
  t.true(performance.now() - start >= IDLE_MS - 1);
  t.is(code, 1001);
  t.is(reason, 'idle timeout');
  t.true(await waitFor(() => aborted.has('ws')));
  t.true(logLines.some((l) => /exec in container c-wsidle over WebSocket: no traffic/.test(l)));
});

test.serial('WebSocket: client pings every 20 ms do not keep an idle exec alive', async (t) => {
  const url = server.prepare({ kind: 'exec', containerId: 'c-wspinged', cmd: ['hang', 'ws-pinged'], opts: io({ stdin: true }) });
  const c = await wsOpen(url, 'v5.channel.k8s.io');
  let pongs = 0;
  c.ws.on('pong', () => pongs++);
  const start = performance.now();
  const pinger = setInterval(() => {
    if (c.ws.readyState !== c.ws.OPEN) return;
    c.ws.ping(pongs % 2 === 0 ? Buffer.alloc(0) : Buffer.from('heartbeat'));
    if (pongs % 3 === 0) c.ws.pong(Buffer.from('unsolicited'));
  }, 20);
  const { code } = await c.closed;
  clearInterval(pinger);
  const after = performance.now() - start;
  t.is(code, 1001);
  t.true(pongs >= 3, `${pongs} pongs`);
  t.true(after >= IDLE_MS - 1 && after < 2000, `closed after ${after} ms`);
  t.true(await waitFor(() => aborted.has('ws-pinged')));
});

test.serial('WebSocket: stdin traffic keeps an exec alive past the timeout', async (t) => {
  const url = server.prepare({ kind: 'exec', containerId: 'c-wsbusy', cmd: ['cat'], opts: io({ stdin: true }) });
  const c = await wsOpen(url, 'v5.channel.k8s.io');
  const out: Buffer[] = [];
  c.ws.on('message', (m: Buffer) => { if (m[0] === 1) out.push(m.subarray(1)); });
  for (let i = 0; i < 24; i++) {
    c.ws.send(Buffer.from(`\x00${i}\n`));
    await sleep(25);
  }
  c.ws.send(Buffer.from([255, 0]));
  t.is((await c.closed).code, 1000);
  t.is(Buffer.concat(out).toString().split('\n').length, 25);
  t.false(logLines.some((l) => l.includes('c-wsbusy')), logLines.join('\n'));
});

test.serial('WebSocket port-forward: an idle session is closed with 1001', async (t) => {
  const url = server.prepare({ kind: 'portforward', podSandboxId: 'p-wsidle', ports: [80] });
  const c = await wsOpen(`${url}?port=80`, 'portforward.k8s.io');
  t.is((await c.closed).code, 1001);
  t.true(logLines.some((l) => /port-forward to pod p-wsidle over WebSocket: no traffic/.test(l)));
});

test.serial('SPDY tunnelled in WebSocket (crictl -r websocket port-forward): GOAWAY, then the WebSocket closes', async (t) => {
  const url = server.prepare({ kind: 'portforward', podSandboxId: 'p-tunnel', ports: [80] });
  // By hand, as in server.test.ts: the ws client refuses a subprotocol with a '/'.
  const { socket, head } = await new Promise<{ socket: Duplex; head: Buffer }>((resolve, reject) => {
    const req = http.request(url, {
      headers: {
        Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': randomBytes(16).toString('base64'), 'Sec-WebSocket-Protocol': 'SPDY/3.1+portforward.k8s.io',
      },
    });
    req.on('upgrade', (_res, sock, h) => resolve({ socket: sock, head: h }));
    req.on('response', (res) => reject(new Error(`HTTP ${res.statusCode}`)));
    req.on('error', reject);
    req.end();
  });
  const ws = new WebSocket(null as unknown as string, undefined, { autoPong: true } as never);
  (ws as unknown as { _isServer: boolean })._isServer = false;
  (ws as unknown as { setSocket(s: Duplex, h: Buffer, o: object): void }).setSocket(socket, head, { maxPayload: 0, allowSynchronousEvents: true });
  const wsClosed = new Promise((r) => ws.once('close', r));
  const tunnel = createWebSocketStream(ws);
  tunnel.on('error', () => {});
  const session = new SpdySession(tunnel, { isServer: false, flowControl: 'strict' });
  const goaway = new Promise((r) => session.once('goaway', r));
  // SPDY PINGs inside the tunnel and WebSocket pings around it are keep-alives, not traffic.
  let pongs = 0;
  const pinger = setInterval(() => {
    if (session.isClosed || ws.readyState !== ws.OPEN) return;
    void session.ping().then((rtt) => { if (rtt >= 0) pongs++; });
    ws.ping();
  }, 20);
  const start = performance.now();
  await goaway;
  const after = performance.now() - start;
  await wsClosed;
  clearInterval(pinger);
  t.true(pongs >= 3, `${pongs} PINGs answered`);
  t.true(after >= IDLE_MS - 1 && after < 2000, `GOAWAY after ${after} ms`);
  t.true(logLines.some((l) => /port-forward to pod p-tunnel over SPDY in WebSocket: no traffic/.test(l)));
  session.destroy();
});
