import test from 'ava';
import { promises as fs, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { COMPACT_MIN_BYTES, LOG_FILE, RecordLog, decodeFrames, encodeFrame } from './record-log.js';

interface M { name: string; pad?: string }
interface S { state: string; n?: number }

async function dir(t: { teardown: (f: () => Promise<void>) => void }): Promise<string> {
  const d = await fs.mkdtemp(join(tmpdir(), 'corral-log-'));
  t.teardown(() => fs.rm(d, { recursive: true, force: true }));
  return d;
}

async function open(d: string): Promise<RecordLog<M, S>> {
  const log = new RecordLog<M, S>(d, 'thing');
  await log.load();
  return log;
}

test('create, update and remove survive a reopen; no file per object', async (t) => {
  const d = await dir(t);
  const a = await open(d);
  await a.create('x', { name: 'x' }, { state: 'new' });
  await a.create('y', { name: 'y' }, { state: 'new' }, { durable: false });
  await a.update('x', (s) => ({ ...s, state: 'ready' }), { durable: false });
  await a.update('y', (s) => ({ ...s, state: 'ready' }));
  await a.remove('y');
  await t.throwsAsync(a.create('x', { name: 'x' }, { state: 'again' }), { message: /already exists/ });
  await t.throwsAsync(a.update('nope', (s) => s), { message: /not found/ });
  a.close();
  t.deepEqual(await fs.readdir(d), [LOG_FILE]);
  const b = await open(d);
  t.deepEqual(b.list().map((e) => [e.id, e.meta.name, e.status.state]), [['x', 'x', 'ready']]);
  b.close();
});

test('a frame cut short (a crash mid-write) ends the log and is cut off; later writes follow the valid part', async (t) => {
  const d = await dir(t);
  const a = await open(d);
  await a.create('x', { name: 'x' }, { state: 'one' });
  a.close();
  const whole = encodeFrame({ id: 'x', status: { state: 'two' } });
  await fs.appendFile(join(d, LOG_FILE), whole.subarray(0, whole.length - 3));
  const b = await open(d);
  t.is(b.get('x')!.status.state, 'one');
  await b.update('x', (s) => ({ ...s, state: 'three' }));
  b.close();
  const c = await open(d);
  t.is(c.get('x')!.status.state, 'three');
  c.close();
});

test('a frame whose checksum fails ends the log', async (t) => {
  const d = await dir(t);
  const a = await open(d);
  await a.create('x', { name: 'x' }, { state: 'one' });
  await a.update('x', (s) => ({ ...s, state: 'two' }));
  a.close();
  const buf = readFileSync(join(d, LOG_FILE));
  const first = decodeFrames<unknown>(buf);
  t.is(first.frames.length, 2);
  buf[buf.length - 2] ^= 0xff; // inside the second frame's payload
  await fs.writeFile(join(d, LOG_FILE), buf);
  const b = await open(d);
  t.is(b.get('x')!.status.state, 'one');
  t.true(statSync(join(d, LOG_FILE)).size < buf.length);
  b.close();
});

test('the log is rewritten once it holds mostly dead frames, and reads back the same', async (t) => {
  const d = await dir(t);
  const a = await open(d);
  await a.create('keep', { name: 'keep' }, { state: 'ready', n: 0 });
  const pad = 'p'.repeat(16 * 1024);
  let n = 0;
  while (n * 16 * 1024 < 2 * COMPACT_MIN_BYTES) {
    const id = `tmp${n}`;
    await a.create(id, { name: id, pad }, { state: 'new' }, { durable: false });
    await a.update('keep', (s) => ({ ...s, n }), { durable: false });
    await a.remove(id);
    n++;
  }
  const size = statSync(join(d, LOG_FILE)).size;
  t.true(size < COMPACT_MIN_BYTES, `log is ${size} bytes after ${n} creates and removes`);
  a.close();
  const b = await open(d);
  t.deepEqual(b.list().map((e) => [e.id, e.status.n]), [['keep', n - 1]]);
  b.close();
});

test('a rewrite started by an update keeps that update', async (t) => {
  const d = await dir(t);
  const a = await open(d);
  await a.create('x', { name: 'x' }, { state: 's0', n: 0 });
  const pad = 'q'.repeat(256 * 1024);
  let prev = 0;
  let rewrites = 0;
  for (let n = 1; n < 200 && rewrites < 2; n++) {
    await a.update('x', () => ({ state: pad, n }), { durable: false });
    const size = statSync(join(d, LOG_FILE)).size;
    if (size < prev) {
      rewrites++;
      const b = await open(d);
      t.is(b.get('x')!.status.n, n, `after the rewrite in update ${n}`);
      b.close();
    }
    prev = size;
  }
  t.is(rewrites, 2);
  a.close();
});
