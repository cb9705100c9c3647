import test from 'ava';
import { execFileSync } from 'node:child_process';
import { EventEmitter } from 'node:events';
import { closeSync, constants, mkdtempSync, openSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { silentLogger } from '../util/log.js';
import type { SeqpacketConnection } from '../linux/seqpacket.js';
import { ConmonAttachBackend } from './attach.js';
import { ResizeEvents } from './types.js';

class FakeConn extends EventEmitter {
  sent: Buffer[] = [];
  endedWrite = false;
  closed = false;
  send(b: Buffer, cb: (err?: Error) => void = () => {}): void { this.sent.push(b); cb(); }
  endWrite(): void { this.endedWrite = true; }
  close(): void { this.closed = true; }
}

function container(dir: string, tty: boolean) {
  return { id: 'c1', podId: 'p', state: 'RUNNING' as const, runtimeHandler: 'crun', runtimePath: '', runtimeRoot: '', bundleDir: dir,
    attachSocketPath: join(dir, 'attach'), ctlFifoPath: join(dir, 'ctl'), tty, stdin: true };
}

test('attach: packets by stream byte, stdin in small packets, EOF half-closes, resize goes to the ctl fifo', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'corral-attach-'));
  try {
    execFileSync('mkfifo', [join(dir, 'ctl')]);
    // A reader on the fifo, as conmon keeps one open (O_RDWR: opening never waits for a writer).
    const ctl = openSync(join(dir, 'ctl'), constants.O_RDWR);
    const conn = new FakeConn();
    const backend = new ConmonAttachBackend({
      containers: { get: () => container(dir, true) },
      logger: silentLogger(),
      connect: () => conn as unknown as SeqpacketConnection,
    });
    const stdin = new PassThrough();
    const stdout = new PassThrough();
    let out = '';
    stdout.on('data', (b: Buffer) => { out += b.toString(); });
    const resize = new ResizeEvents();
    resize.push({ width: 80, height: 24 });
    const abort = new AbortController();
    const done = backend.attach('c1', { stdin, stdout, tty: true, resize, signal: abort.signal });
    await new Promise((r) => setTimeout(r, 50));
    conn.emit('packet', Buffer.from('\x02hello '));
    conn.emit('packet', Buffer.from('\x03world'));
    stdin.write(Buffer.alloc(10000, 0x61));
    resize.push({ width: 100, height: 30 });
    stdin.end();
    await new Promise((r) => setTimeout(r, 100));
    t.is(out, 'hello world', 'with a tty, stderr packets (none expected) go to stdout');
    t.deepEqual(conn.sent.map((b) => b.length), [4096, 4096, 1808]);
    t.true(conn.endedWrite);
    conn.emit('end');
    await done;
    t.true(conn.closed);
    const buf = Buffer.alloc(4096);
    t.is(buf.toString('utf8', 0, readSync(ctl, buf)), '1 24 80\n1 30 100\n');
    closeSync(ctl);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('attach: a detaching client (abort) ends the session and leaves the container alone', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'corral-attach-'));
  try {
    const conn = new FakeConn();
    const backend = new ConmonAttachBackend({
      containers: { get: () => container(dir, false) },
      logger: silentLogger(),
      connect: () => conn as unknown as SeqpacketConnection,
    });
    const stdout = new PassThrough();
    const stderr = new PassThrough();
    let out = '';
    let err = '';
    stdout.on('data', (b: Buffer) => { out += b.toString(); });
    stderr.on('data', (b: Buffer) => { err += b.toString(); });
    const abort = new AbortController();
    const done = backend.attach('c1', { stdout, stderr, tty: false, resize: new ResizeEvents(), signal: abort.signal });
    conn.emit('packet', Buffer.from('\x02o'));
    conn.emit('packet', Buffer.from('\x03e'));
    abort.abort();
    await done;
    t.is(out, 'o');
    t.is(err, 'e');
    t.true(conn.closed);
    t.false(conn.endedWrite);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
