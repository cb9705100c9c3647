import test from 'ava';
import { randomBytes } from 'node:crypto';
import http from 'node:http';
import net from 'node:net';
import type { Duplex } from 'node:stream';
import { WebSocket, createWebSocketStream } from 'ws';
import { silentLogger } from '../../runtime/util/log.js';
import type { AttachBackend, ExecBackend, PortForwardBackend, StreamIO } from '../../runtime/index.js';
import { StreamingServer } from './server.js';
import { readAll, spdyUpgrade } from './spdy/test-client.js';
import { SpdySession } from './spdy/session.js';
import type { StreamOptions } from './remotecommand.js';

const aborted: string[] = [];

const exec: ExecBackend = {
  async exec(req, io: StreamIO) {
    const [cmd, arg] = req.cmd;
    switch (cmd) {
      case 'cat':
        io.stdin!.pipe(io.stdout!, { end: false });
        await new Promise((r) => io.stdin!.once('end', r));
        return 0;
      case 'exit':
        io.stdout?.write('out\n');
        io.stderr?.write('err\n');
        return Number(arg);
      case 'size':
        if (!io.resize.current) await new Promise((r) => io.resize.once('resize', r));
        io.stdout!.write(`${io.resize.current!.height} ${io.resize.current!.width}\n`);
        return 0;
      case 'hang':
        await new Promise<void>((resolve) => io.signal.addEventListener('abort', () => resolve()));
        aborted.push(arg ?? '');
        return 137;
      case 'big': {
        const chunk = Buffer.alloc(1 << 20, 0x61);
        for (let i = 0; i < Number(arg); i++) {
          if (!io.stdout!.write(chunk)) await new Promise((r) => io.stdout!.once('drain', r));
        }
        return 0;
      }
      default:
        throw new Error(`executable file not found: ${cmd}`);
    }
  },
};

const attach: AttachBackend = {
  async attach(_id, io) {
    io.stdout?.write('attached\n');
    if (io.stdin) {
      io.stdin.pipe(io.stdout!, { end: false });
      await new Promise((r) => io.stdin!.once('end', r));
    }
  },
};

let echoPort = 0;
const portForward: PortForwardBackend = {
  connect(_pod, port, _signal, reads) {
    return new Promise((resolve, reject) => {
      if (port !== 7777) return reject(new Error(`connect ECONNREFUSED 127.0.0.1:${port}`));
      const c = net.connect({ port: echoPort, host: '127.0.0.1', ...(reads ? { onread: reads } : {}) }, () => resolve(c));
      c.once('error', reject);
    });
  },
};

let server: StreamingServer;

test.before(async () => {
  const echo = net.createServer((c) => c.pipe(c));
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', () => r()));
  echoPort = (echo.address() as net.AddressInfo).port;
  echo.unref();
  server = await StreamingServer.start({
    config: { streaming: { address: '127.0.0.1', port: 0, tls_cert: '', tls_key: '', idle_timeout_seconds: 0 } },
    logger: silentLogger(),
    exec,
    attach,
    portForward,
    tokenTtlMs: 1000,
  });
});

test.after.always(async () => {
  await server.close();
});

const io = (o: Partial<StreamOptions>): StreamOptions => ({ stdin: false, stdout: true, stderr: true, tty: false, ...o });

async function spdyExec(cmd: string[], opts: StreamOptions, protocols = ['v4.channel.k8s.io', 'v3.channel.k8s.io'], stdinData?: string) {
  const url = server.prepare({ kind: 'exec', containerId: 'c1', cmd, opts });
  const up = await spdyUpgrade(url, protocols);
  const session = up.session!;
  const open = (type: string) => session.openStream({ streamtype: [type] });
  const error = open('error');
  const stdin = opts.stdin ? open('stdin') : undefined;
  const stdout = opts.stdout ? open('stdout') : undefined;
  const stderr = opts.stderr && !opts.tty ? open('stderr') : undefined;
  const resize = opts.tty ? open('resize') : undefined;
  error.end();
  stdout?.end();
  stderr?.end();
  if (stdin && stdinData !== undefined) stdin.end(stdinData);
  const [out, err, status] = await Promise.all([
    stdout ? readAll(stdout) : Buffer.alloc(0),
    stderr ? readAll(stderr) : Buffer.alloc(0),
    readAll(error),
  ]);
  return { up, session, resize, out: out.toString(), err: err.toString(), status: status.toString() };
}

test('SPDY exec: stdin echoed to stdout, Success status on the error stream (v4)', async (t) => {
  const r = await spdyExec(['cat'], io({ stdin: true }), undefined, 'hello\nworld\n');
  t.is(r.up.status, 101);
  t.is(r.up.protocol, 'v4.channel.k8s.io');
  t.is(r.out, 'hello\nworld\n');
  t.deepEqual(JSON.parse(r.status), { metadata: {}, status: 'Success' });
  await new Promise((res) => r.session.once('close', res));
});

test('SPDY exec: a non-zero exit code is a NonZeroExitCode Status with the ExitCode cause', async (t) => {
  const r = await spdyExec(['exit', '3'], io({}), ['v5.channel.k8s.io']);
  t.is(r.up.protocol, 'v5.channel.k8s.io');
  t.is(r.out, 'out\n');
  t.is(r.err, 'err\n');
  const st = JSON.parse(r.status);
  t.is(st.status, 'Failure');
  t.is(st.reason, 'NonZeroExitCode');
  t.deepEqual(st.details.causes, [{ reason: 'ExitCode', message: '3' }]);
  t.regex(st.message, /command terminated with non-zero exit code/);
});

test('SPDY exec: v2 carries a plain message, and nothing on success', async (t) => {
  const fail = await spdyExec(['exit', '2'], io({}), ['v2.channel.k8s.io']);
  t.is(fail.up.protocol, 'v2.channel.k8s.io');
  t.regex(fail.status, /^command terminated with non-zero exit code/);
  const ok = await spdyExec(['exit', '0'], io({}), ['v2.channel.k8s.io']);
  t.is(ok.status, '');
});

test('SPDY exec: a command that cannot start is an InternalError status', async (t) => {
  const r = await spdyExec(['nope'], io({}));
  const st = JSON.parse(r.status);
  t.is(st.reason, 'InternalError');
  t.regex(st.message, /executable file not found/);
});

test('SPDY exec with tty: resize events reach the backend', async (t) => {
  const url = server.prepare({ kind: 'exec', containerId: 'c1', cmd: ['size'], opts: io({ tty: true, stderr: false }) });
  const up = await spdyUpgrade(url, ['v4.channel.k8s.io']);
  const s = up.session!;
  const error = s.openStream({ streamtype: ['error'] });
  const stdout = s.openStream({ streamtype: ['stdout'] });
  const resize = s.openStream({ streamtype: ['resize'] });
  resize.write(JSON.stringify({ Width: 132, Height: 43 }) + '\n');
  const out = await readAll(stdout);
  t.is(out.toString(), '43 132\n');
  t.deepEqual(JSON.parse((await readAll(error)).toString()), { metadata: {}, status: 'Success' });
});

test('SPDY exec: a client that goes away aborts the backend', async (t) => {
  const url = server.prepare({ kind: 'exec', containerId: 'c1', cmd: ['hang', 'spdy'], opts: io({}) });
  const up = await spdyUpgrade(url, ['v4.channel.k8s.io']);
  const s = up.session!;
  for (const type of ['error', 'stdout', 'stderr']) s.openStream({ streamtype: [type] });
  await new Promise((r) => setTimeout(r, 100));
  s.destroy();
  for (let i = 0; i < 50 && !aborted.includes('spdy'); i++) await new Promise((r) => setTimeout(r, 20));
  t.true(aborted.includes('spdy'));
});

test('SPDY exec: 16 MiB of stdout arrive intact through a flow-controlling client', async (t) => {
  const r = await spdyExec(['big', '16'], io({ stderr: false }));
  t.is(r.out.length, 16 << 20);
  t.true(/^a+$/.test(r.out));
});

test('SPDY attach: output and stdin, Success at the end', async (t) => {
  const url = server.prepare({ kind: 'attach', containerId: 'c1', opts: io({ stdin: true, stderr: false }) });
  const up = await spdyUpgrade(url, ['v4.channel.k8s.io']);
  const s = up.session!;
  const error = s.openStream({ streamtype: ['error'] });
  const stdin = s.openStream({ streamtype: ['stdin'] });
  const stdout = s.openStream({ streamtype: ['stdout'] });
  stdin.end('typed\n');
  t.is((await readAll(stdout)).toString(), 'attached\ntyped\n');
  t.deepEqual(JSON.parse((await readAll(error)).toString()), { metadata: {}, status: 'Success' });
});

test('no common protocol: 403 with X-Accepted-Stream-Protocol-Versions', async (t) => {
  const url = server.prepare({ kind: 'exec', containerId: 'c1', cmd: ['cat'], opts: io({}) });
  const r = await spdyUpgrade(url, ['v9.channel.k8s.io']);
  t.is(r.status, 403);
  t.regex(String(r.headers['x-accepted-stream-protocol-versions']), /v5\.channel\.k8s\.io.*v4\.channel\.k8s\.io/);
});

test('tokens are single use, kind-bound and expire', async (t) => {
  const url = server.prepare({ kind: 'exec', containerId: 'c1', cmd: ['exit', '0'], opts: io({}) });
  const first = await spdyUpgrade(url, ['v4.channel.k8s.io']);
  t.is(first.status, 101);
  first.session!.destroy();
  t.is((await spdyUpgrade(url, ['v4.channel.k8s.io'])).status, 404);
  t.is((await spdyUpgrade(url.replace('/exec/', '/attach/'), ['v4.channel.k8s.io'])).status, 404);
  t.is((await spdyUpgrade(`${server.baseUrl()}/exec/unknown`, ['v4.channel.k8s.io'])).status, 404);
  const late = server.prepare({ kind: 'exec', containerId: 'c1', cmd: ['exit', '0'], opts: io({}) });
  await new Promise((r) => setTimeout(r, 1100));
  t.is((await spdyUpgrade(late, ['v4.channel.k8s.io'])).status, 404);
  t.regex(url, /^http:\/\/127\.0\.0\.1:\d+\/exec\/[A-Za-z0-9_-]{22}$/);
});

function wsOpen(url: string, protocols: string[]): Promise<{ ws: WebSocket; messages: Buffer[]; closed: Promise<number> }> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url.replace(/^http/, 'ws'), protocols);
    const messages: Buffer[] = [];
    const closed = new Promise<number>((r) => ws.once('close', (code) => r(code)));
    ws.on('message', (m: Buffer) => messages.push(Buffer.from(m)));
    ws.once('open', () => resolve({ ws, messages, closed }));
    ws.once('unexpected-response', (_req, res) => reject(new Error(`HTTP ${res.statusCode}`)));
    ws.once('error', reject);
  });
}

function channel(messages: Buffer[], ch: number): string {
  return Buffer.concat(messages.filter((m) => m[0] === ch).map((m) => m.subarray(1))).toString();
}

test('WebSocket v5: stdin with the close signal, exit code on channel 3, close 1000', async (t) => {
  const url = server.prepare({ kind: 'exec', containerId: 'c1', cmd: ['cat'], opts: io({ stdin: true }) });
  const c = await wsOpen(url, ['v5.channel.k8s.io']);
  t.is(c.ws.protocol, 'v5.channel.k8s.io');
  c.ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('ws in\n')]));
  c.ws.send(Buffer.from([255, 0]));
  t.is(await c.closed, 1000);
  t.is(channel(c.messages, 1), 'ws in\n');
  t.deepEqual(JSON.parse(channel(c.messages, 3)), { metadata: {}, status: 'Success' });
});

test('WebSocket v4: exit code status; base64 variant uses text frames', async (t) => {
  const url = server.prepare({ kind: 'exec', containerId: 'c1', cmd: ['exit', '7'], opts: io({}) });
  const c = await wsOpen(url, ['v4.channel.k8s.io']);
  await c.closed;
  t.is(channel(c.messages, 1), 'out\n');
  t.is(channel(c.messages, 2), 'err\n');
  t.deepEqual(JSON.parse(channel(c.messages, 3)).details.causes, [{ reason: 'ExitCode', message: '7' }]);

  const url2 = server.prepare({ kind: 'exec', containerId: 'c1', cmd: ['exit', '0'], opts: io({}) });
  const b = await wsOpen(url2, ['v4.base64.channel.k8s.io']);
  await b.closed;
  const out = b.messages.filter((m) => m[0] === 0x31).map((m) => Buffer.from(m.subarray(1).toString(), 'base64').toString()).join('');
  t.is(out, 'out\n');
});

test('WebSocket: resize on channel 4, no common protocol is 403', async (t) => {
  const url = server.prepare({ kind: 'exec', containerId: 'c1', cmd: ['size'], opts: io({ tty: true, stderr: false }) });
  const c = await wsOpen(url, ['v5.channel.k8s.io']);
  c.ws.send(Buffer.concat([Buffer.from([4]), Buffer.from('{"Width":100,"Height":30}')]));
  await c.closed;
  t.is(channel(c.messages, 1), '30 100\n');
  const url2 = server.prepare({ kind: 'exec', containerId: 'c1', cmd: ['size'], opts: io({}) });
  await t.throwsAsync(wsOpen(url2, ['v9.channel.k8s.io']), { message: /403/ });
});

test('WebSocket: closing the socket aborts the backend', async (t) => {
  const url = server.prepare({ kind: 'exec', containerId: 'c1', cmd: ['hang', 'ws'], opts: io({}) });
  const c = await wsOpen(url, ['v5.channel.k8s.io']);
  c.ws.terminate();
  for (let i = 0; i < 50 && !aborted.includes('ws'); i++) await new Promise((r) => setTimeout(r, 20));
  t.true(aborted.includes('ws'));
});

async function forwardOnce(session: SpdySession, port: number, requestId: string, payload: string) {
  const error = session.openStream({ streamtype: ['error'], port: [String(port)], requestid: [requestId] });
  error.end();
  const data = session.openStream({ streamtype: ['data'], port: [String(port)], requestid: [requestId] });
  const errText = readAll(error);
  const back = readAll(data);
  data.end(payload);
  return { back: (await back).toString(), err: (await errText).toString() };
}

test('SPDY port-forward: data/error pairs, echo through the backend, dial errors on the error stream', async (t) => {
  const url = server.prepare({ kind: 'portforward', podSandboxId: 'p1', ports: [7777] });
  const up = await spdyUpgrade(url, ['portforward.k8s.io']);
  t.is(up.protocol, 'portforward.k8s.io');
  const s = up.session!;
  const [a, b] = await Promise.all([forwardOnce(s, 7777, '0', 'GET / one'), forwardOnce(s, 7777, '1', 'GET / two')]);
  t.is(a.back, 'GET / one');
  t.is(b.back, 'GET / two');
  t.is(a.err, '');
  const bad = await forwardOnce(s, 81, '2', 'x');
  t.is(bad.back, '');
  t.regex(bad.err, /error forwarding port 81 to pod p1: connect ECONNREFUSED/);
  s.close();
});

test('port-forward over WebSocket: SPDY tunnelled in binary messages (crictl -r websocket)', async (t) => {
  const url = server.prepare({ kind: 'portforward', podSandboxId: 'p1', ports: [7777] });
  // The ws client refuses to offer a subprotocol with a '/', so the handshake is done by hand
  // and the upgraded socket is handed to a client-side WebSocket.
  const { socket, head, protocol } = await new Promise<{ socket: Duplex; head: Buffer; protocol: string }>((resolve, reject) => {
    const req = http.request(url, {
      headers: {
        Connection: 'Upgrade', Upgrade: 'websocket', 'Sec-WebSocket-Version': '13',
        'Sec-WebSocket-Key': randomBytes(16).toString('base64'), 'Sec-WebSocket-Protocol': 'SPDY/3.1+portforward.k8s.io',
      },
    });
    req.on('upgrade', (res, sock, h) => resolve({ socket: sock, head: h, protocol: String(res.headers['sec-websocket-protocol']) }));
    req.on('response', (res) => reject(new Error(`HTTP ${res.statusCode}`)));
    req.on('error', reject);
    req.end();
  });
  t.is(protocol, 'SPDY/3.1+portforward.k8s.io');
  const ws = new WebSocket(null as unknown as string, undefined, { autoPong: true } as never);
  (ws as unknown as { _isServer: boolean })._isServer = false;
  (ws as unknown as { setSocket(s: Duplex, h: Buffer, o: object): void }).setSocket(socket, head, { maxPayload: 0, allowSynchronousEvents: true });
  const session = new SpdySession(createWebSocketStream(ws), { isServer: false, flowControl: 'strict' });
  const big = 'x'.repeat(300_000);
  const r = await forwardOnce(session, 7777, '0', big);
  t.is(r.back.length, big.length);
  session.destroy();
});

test('port-forward over WebSocket channels (portforward.k8s.io): port prefix then data', async (t) => {
  const url = server.prepare({ kind: 'portforward', podSandboxId: 'p1', ports: [7777] });
  const c = await wsOpen(`${url}?port=7777`, ['portforward.k8s.io']);
  await new Promise((r) => setTimeout(r, 50));
  c.ws.send(Buffer.concat([Buffer.from([0]), Buffer.from('ping')]));
  for (let i = 0; i < 50 && channel(c.messages, 0).length < 6; i++) await new Promise((r) => setTimeout(r, 20));
  const data = Buffer.concat(c.messages.filter((m) => m[0] === 0).map((m) => m.subarray(1)));
  t.is(data.readUInt16LE(0), 7777);
  t.is(data.subarray(2).toString(), 'ping');
  c.ws.close();
});

test('a plain GET without upgrade is refused; unknown paths are 404', async (t) => {
  const url = server.prepare({ kind: 'exec', containerId: 'c1', cmd: ['cat'], opts: io({}) });
  t.is((await fetch(url)).status, 400);
  t.is((await fetch(url)).status, 404);
  t.is((await fetch(`${server.baseUrl()}/nothing`)).status, 404);
});

