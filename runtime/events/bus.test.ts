import test from 'ava';
import { Writable } from 'node:stream';
import winston from 'winston';
import { ResourceExhaustedError } from '../errors.js';
import { EventBus } from './bus.js';

function memoryLogger(): { logger: winston.Logger; lines: string[] } {
  const lines: string[] = [];
  const stream = new Writable({ write(chunk, _enc, next) { lines.push(String(chunk)); next(); } });
  const format = winston.format.printf(({ level, message }) => `${level} ${String(message)}`);
  return { logger: winston.createLogger({ format, transports: [new winston.transports.Stream({ stream })] }), lines };
}

test('every subscriber gets every event, in order, including ones published before it reads', async (t) => {
  const bus = new EventBus<number>();
  const a = bus.subscribe();
  const b = bus.subscribe();
  for (let i = 0; i < 5; i++) bus.publish(i);
  const got: number[] = [];
  const reader = (async () => {
    for await (const ev of a) {
      got.push(ev);
      if (ev === 9) break;
    }
  })();
  await new Promise((r) => setImmediate(r));
  for (let i = 5; i < 10; i++) bus.publish(i);
  await reader;
  t.deepEqual(got, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  // break called return(): a is gone, b is still there.
  t.is(bus.subscriberCount, 1);
  t.is(b.pending, 10);
  const first = await b.next();
  t.deepEqual(first, { value: 0, done: false });
});

test('a subscriber only sees events published after it subscribed', async (t) => {
  const bus = new EventBus<string>();
  bus.publish('early');
  const s = bus.subscribe();
  bus.publish('late');
  t.deepEqual(await s.next(), { value: 'late', done: false });
});

test('a slow subscriber is dropped with a log line; publish never blocks and others go on', async (t) => {
  const { logger, lines } = memoryLogger();
  const bus = new EventBus<number>({ logger, bufferSize: 3 });
  const slow = bus.subscribe({ name: 'slow-peer' });
  const fast = bus.subscribe();
  const got: number[] = [];
  const reader = (async () => {
    for await (const ev of fast) {
      got.push(ev);
      if (ev === 9) return;
    }
  })();
  for (let i = 0; i < 10; i++) {
    bus.publish(i);
    await new Promise((r) => setImmediate(r));
  }
  await reader;
  t.deepEqual(got, [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  t.is(bus.subscriberCount, 0);
  t.true(lines.some((l) => l.startsWith('warn') && l.includes('slow-peer')), lines.join('\n'));
  const err = await t.throwsAsync(slow.next());
  t.true(err instanceof ResourceExhaustedError);
  t.regex(err!.message, /fell 3 events behind/);
  // After the failure is reported the iterator is just done.
  t.deepEqual(await slow.next(), { value: undefined, done: true });
});

test('a waiting reader fails at once when dropped', async (t) => {
  const bus = new EventBus<number>({ bufferSize: 1 });
  const s = bus.subscribe();
  // Queue it full without reading, then read: the first read resolves from the queue.
  bus.publish(1);
  bus.publish(2); // over the limit: dropped
  await t.throwsAsync(s.next(), { instanceOf: ResourceExhaustedError });
});

test('abort signal, close() and bus.close() end subscriptions', async (t) => {
  const bus = new EventBus<number>();
  const ac = new AbortController();
  const s1 = bus.subscribe({ signal: ac.signal });
  const pending = s1.next();
  ac.abort();
  t.deepEqual(await pending, { value: undefined, done: true });
  t.is(bus.subscriberCount, 0);

  const s2 = bus.subscribe();
  bus.publish(1);
  s2.close();
  t.deepEqual(await s2.next(), { value: undefined, done: true });

  const s3 = bus.subscribe();
  const p3 = s3.next();
  bus.close();
  t.deepEqual(await p3, { value: undefined, done: true });
  const s4 = bus.subscribe();
  t.deepEqual(await s4.next(), { value: undefined, done: true });
  t.is(bus.subscriberCount, 0);

  const aborted = new AbortController();
  aborted.abort();
  const bus2 = new EventBus<number>();
  const s5 = bus2.subscribe({ signal: aborted.signal });
  t.deepEqual(await s5.next(), { value: undefined, done: true });
  t.is(bus2.subscriberCount, 0);
});

test('publish with many queued events stays linear (compaction keeps order)', async (t) => {
  const bus = new EventBus<number>({ bufferSize: 100_000 });
  const s = bus.subscribe();
  const n = 50_000;
  const start = process.hrtime.bigint();
  for (let i = 0; i < n; i++) bus.publish(i);
  let expected = 0;
  for (let i = 0; i < n; i++) {
    const r = await s.next();
    if (r.value !== expected++) return t.fail(`out of order at ${i}: ${r.value}`);
  }
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  t.true(ms < 2000, `${ms} ms`);
  t.is(s.pending, 0);
});
