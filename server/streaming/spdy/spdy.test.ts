import test from 'ava';
import net from 'node:net';
import zlib from 'node:zlib';
import { SPDY3_DICTIONARY } from './dictionary.js';
import { FrameParser, encodeFrame, FLAG_FIN, RstStatus, type Frame } from './frames.js';
import { HeaderCompressor, HeaderDecompressor, decodeHeaderBlock, encodeHeaderBlock, type HeaderMap } from './headers.js';
import { SpdySession, type SpdyStream } from './session.js';
import { readAll } from './test-client.js';

test('the dictionary is the 1423-byte SPDY/3 dictionary', (t) => {
  t.is(SPDY3_DICTIONARY.length, 1423);
  // DICTID that real SPDY/3 zlib streams carry (Adler-32 of the dictionary).
  let a = 1;
  let b = 0;
  for (const x of SPDY3_DICTIONARY) {
    a = (a + x) % 65521;
    b = (b + a) % 65521;
  }
  t.is(((b << 16) | a) >>> 0, 0xe3c6a7c2);
  t.true(SPDY3_DICTIONARY.subarray(0, 11).equals(Buffer.from([0, 0, 0, 7, ...Buffer.from('options')])));
});

const allFrames: Frame[] = [
  { type: 'SYN_STREAM', streamId: 1, associatedId: 0, priority: 3, slot: 0, flags: FLAG_FIN, headers: { streamtype: ['error'], port: ['80'] } },
  { type: 'SYN_REPLY', streamId: 1, flags: 0, headers: {} },
  { type: 'RST_STREAM', streamId: 5, status: RstStatus.CANCEL },
  { type: 'SETTINGS', flags: 1, entries: [{ flags: 0, id: 7, value: 1 << 20 }, { flags: 1, id: 4, value: 100 }] },
  { type: 'PING', id: 0xfffffffe },
  { type: 'GOAWAY', lastGoodStreamId: 9, status: 0 },
  { type: 'HEADERS', streamId: 3, flags: FLAG_FIN, headers: { 'x-multi': ['a', 'b'] } },
  { type: 'WINDOW_UPDATE', streamId: 0, delta: 65536 },
  { type: 'DATA', streamId: 7, flags: FLAG_FIN, data: Buffer.from('hello') },
  { type: 'DATA', streamId: 7, flags: 0, data: Buffer.alloc(0) },
];

test('every frame type round-trips, also when the bytes arrive one at a time', (t) => {
  const comp = new HeaderCompressor();
  const wire = Buffer.concat(allFrames.map((f) => encodeFrame(f, comp)));
  const whole = new FrameParser(new HeaderDecompressor()).push(wire);
  t.deepEqual(whole, allFrames);
  const parser = new FrameParser(new HeaderDecompressor());
  const got: Frame[] = [];
  for (let i = 0; i < wire.length; i++) got.push(...parser.push(wire.subarray(i, i + 1)));
  t.deepEqual(got, allFrames);
});

test('control frame header: C bit, version 3, type, flags, length', (t) => {
  const ping = encodeFrame({ type: 'PING', id: 1 }, new HeaderCompressor());
  t.is(ping.toString('hex'), '80030006000000040000000' + '1');
  const data = encodeFrame({ type: 'DATA', streamId: 3, flags: FLAG_FIN, data: Buffer.from('x') }, new HeaderCompressor());
  t.is(data.toString('hex'), '0000000301000001' + '78');
});

test('unknown control frames are skipped; other versions are refused', (t) => {
  const parser = new FrameParser(new HeaderDecompressor());
  const unknown = Buffer.from('8003000a00000004deadbeef', 'hex');
  const ping = encodeFrame({ type: 'PING', id: 3 }, new HeaderCompressor());
  t.deepEqual(parser.push(Buffer.concat([unknown, ping])), [{ type: 'PING', id: 3 }]);
  t.throws(() => new FrameParser(new HeaderDecompressor()).push(Buffer.from('8002000600000004000000001', 'hex')), { message: /version 2/ });
});

test('header blocks interoperate with a real zlib stream primed with the dictionary, in both directions', async (t) => {
  const blocks: HeaderMap[] = [
    { streamtype: ['stdin'] },
    { streamtype: ['stdout'], port: ['8080'], requestid: ['0'] },
    { streamtype: ['stdout'], port: ['8080'], requestid: ['1'] },
    { 'x-stream-protocol-version': ['v4.channel.k8s.io', 'v5.channel.k8s.io'] },
  ];
  // reference compressor -> our decompressor
  const deflate = zlib.createDeflate({ dictionary: SPDY3_DICTIONARY });
  const out: Buffer[] = [];
  deflate.on('data', (c: Buffer) => out.push(c));
  const ours = new HeaderDecompressor();
  for (const h of blocks) {
    deflate.write(encodeHeaderBlock(h));
    await new Promise<void>((r) => deflate.flush(zlib.constants.Z_SYNC_FLUSH, () => r()));
    await new Promise((r) => setImmediate(r));
    const block = Buffer.concat(out.splice(0));
    t.deepEqual(decodeHeaderBlock(ours.decompress(block)), h);
  }
  // our compressor -> reference decompressor
  const inflate = zlib.createInflate({ dictionary: SPDY3_DICTIONARY });
  const plain: Buffer[] = [];
  inflate.on('data', (c: Buffer) => plain.push(c));
  const comp = new HeaderCompressor();
  let first = true;
  for (const h of blocks) {
    const block = comp.compress(encodeHeaderBlock(h));
    if (first) t.is(block.readUInt32BE(2), 0xe3c6a7c2);
    first = false;
    inflate.write(block);
    await new Promise<void>((r) => inflate.flush(zlib.constants.Z_SYNC_FLUSH, () => r()));
    await new Promise((r) => setImmediate(r));
    t.deepEqual(decodeHeaderBlock(Buffer.concat(plain.splice(0))), h);
  }
  // repeated headers compress to less than their plain size (the window is really used)
  const c2 = new HeaderCompressor();
  const plainBlock = encodeHeaderBlock(blocks[1]!);
  c2.compress(plainBlock);
  t.true(c2.compress(plainBlock).length < plainBlock.length / 2);
});

test('a header block naming another dictionary is refused', (t) => {
  const bad = Buffer.from([0x78, 0xbb, 1, 2, 3, 4, 0, 0]);
  t.throws(() => new HeaderDecompressor().decompress(bad), { message: /dictionary other than SPDY/ });
});

async function pair(serverOpts: { flowControl?: 'auto' | 'strict' | 'off' } = {}, clientOpts: { flowControl?: 'auto' | 'strict' | 'off'; receiveWindow?: number } = {}) {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const port = (srv.address() as net.AddressInfo).port;
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const csock = net.connect(port, '127.0.0.1');
  const ssock = await accepted;
  srv.close();
  const server = new SpdySession(ssock, { isServer: true, ...serverOpts });
  const client = new SpdySession(csock, { isServer: false, flowControl: 'strict', ...clientOpts });
  return { server, client };
}

test('streams: SYN_STREAM/SYN_REPLY, data both ways, FIN half-close, ping', async (t) => {
  const { server, client } = await pair();
  server.on('stream', (s: SpdyStream) => {
    s.reply({ ok: ['yes'] });
    s.pipe(s); // echo until the client's FIN, then FIN back
  });
  const s = client.openStream({ streamtype: ['stdin'] });
  const replied = new Promise((r) => s.once('reply', r));
  s.end('hello spdy');
  t.is((await readAll(s)).toString(), 'hello spdy');
  t.deepEqual(await replied, { ok: ['yes'] });
  t.true((await client.ping()) >= 0);
  client.close();
  await new Promise((r) => server.once('close', r));
});

test('RST_STREAM from the peer destroys the stream', async (t) => {
  const { server, client } = await pair();
  const got = new Promise<SpdyStream>((r) => server.once('stream', r));
  const s = client.openStream({ streamtype: ['data'] });
  const ss = await got;
  const reset = new Promise((r) => ss.once('reset', r));
  s.reset(RstStatus.CANCEL);
  t.is(await reset, RstStatus.CANCEL);
  t.true(ss.destroyed);
  client.destroy();
});

test('strict flow control: a sender stops at the window and resumes on WINDOW_UPDATE', async (t) => {
  const { server, client } = await pair({ flowControl: 'auto' }, { flowControl: 'strict' });
  const total = 1024 * 1024;
  const payload = Buffer.alloc(total, 7);
  const got = new Promise<SpdyStream>((r) => server.once('stream', r));
  const cs = client.openStream({ streamtype: ['stdout'] });
  const ss = await got;
  ss.reply();
  // The client (strict) honours its default window even before any WINDOW_UPDATE, and the server
  // does not read: the client's write must stall with about 64 KiB in flight.
  let written = false;
  cs.write(payload, () => { written = true; });
  await new Promise((r) => setTimeout(r, 200));
  t.false(written);
  // Now read: window updates flow and the write completes.
  const all = readAll(ss);
  cs.end();
  t.is((await all).length, total);
  t.true(written);
  client.destroy();
});

test('auto mode: a peer that never grants window (like spdystream) is not waited for', async (t) => {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const raw = net.connect((srv.address() as net.AddressInfo).port, '127.0.0.1');
  const server = new SpdySession(await accepted, { isServer: true });
  srv.close();
  const got = new Promise<SpdyStream>((r) => server.once('stream', r));
  raw.write(encodeFrame({ type: 'SYN_STREAM', streamId: 1, associatedId: 0, priority: 0, slot: 0, flags: 0, headers: { streamtype: ['stdout'] } }, new HeaderCompressor()));
  const ss = await got;
  const data = Buffer.alloc(512 * 1024, 1);
  const parser = new FrameParser(new HeaderDecompressor());
  let received = 0;
  const fin = new Promise<void>((resolve) => raw.on('data', (c: Buffer) => {
    for (const f of parser.push(c)) {
      if (f.type === 'DATA') {
        received += f.data.length;
        if (f.flags & FLAG_FIN) resolve();
      }
    }
  }));
  ss.end(data);
  await fin;
  t.is(received, data.length);
  raw.destroy();
});

test('GOAWAY: new streams are refused, the session closes', async (t) => {
  const { server, client } = await pair();
  const closed = new Promise((r) => client.once('close', r));
  server.close();
  await closed;
  t.true(client.isClosed);
});

test('a peer that half-closes TCP gets its connection closed (no CLOSE-WAIT left behind)', async (t) => {
  const srv = net.createServer({ allowHalfOpen: true });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', () => r()));
  const accepted = new Promise<net.Socket>((r) => srv.once('connection', r));
  const raw = net.connect({ port: (srv.address() as net.AddressInfo).port, host: '127.0.0.1', allowHalfOpen: true });
  const ssock = await accepted;
  srv.close();
  const server = new SpdySession(ssock, { isServer: true });
  const closed = new Promise((r) => server.once('close', r));
  const peerSawEnd = new Promise((r) => raw.once('end', r));
  const socketClosed = new Promise((r) => ssock.once('close', r));
  raw.resume();
  raw.end();
  await closed;
  await peerSawEnd;
  await socketClosed;
  t.true(ssock.destroyed);
  raw.destroy();
});
