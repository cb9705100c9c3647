import test from 'ava';
import { interleaved, latencyRows, loop, percentile, sleep } from './lib.js';

test('percentile is nearest-rank: p50 of 1..10 is 5, p99 of 50 samples is the largest', (t) => {
  const xs = [10, 1, 9, 2, 8, 3, 7, 4, 6, 5];
  t.is(percentile(xs, 50), 5);
  t.is(percentile(xs, 99), 10);
  t.is(percentile(Array.from({ length: 50 }, (_, i) => i), 99), 49);
  t.true(Number.isNaN(percentile([], 50)));
});

test('loop keeps at most `concurrency` ops in flight and runs each index once', async (t) => {
  let inFlight = 0;
  let most = 0;
  const seen: number[] = [];
  const r = await loop(23, 4, 10_000, async (i) => {
    inFlight++;
    most = Math.max(most, inFlight);
    await sleep(1);
    seen.push(i);
    inFlight--;
  });
  t.deepEqual(r, { done: 23, timedOut: false });
  t.is(most, 4);
  t.deepEqual([...seen].sort((a, b) => a - b), Array.from({ length: 23 }, (_, i) => i));
});

test('loop stops issuing ops once its time budget is spent, and rethrows the first failure', async (t) => {
  const r = await loop(1000, 1, 30, () => sleep(5));
  t.true(r.timedOut);
  t.true(r.done < 1000);
  await t.throwsAsync(loop(5, 2, 1000, async (i) => { if (i === 2) throw new Error('boom'); }), { message: 'boom' });
});

test('interleaved alternates rounds of corral and floor', async (t) => {
  const order: string[] = [];
  const r = await interleaved(4, 2, 10_000, async () => { order.push('c'); return 1; }, async () => { order.push('f'); return 2; });
  t.deepEqual(order, ['c', 'c', 'f', 'f', 'c', 'c', 'f', 'f']);
  t.deepEqual(r, { corral: [1, 1, 1, 1], floor: [2, 2, 2, 2], timedOut: false });
});

test('latencyRows: ratio corral/floor and the goal on p50 only', (t) => {
  const rows = latencyRows('x', [10, 20, 30], [10, 10, 10], 1.3);
  t.is(rows[0]!.metric, 'x p50');
  t.is(rows[0]!.ratio, 2);
  t.is(rows[0]!.ok, false);
  t.is(rows[1]!.goal, undefined);
  t.is(latencyRows('y', [1], undefined)[0]!.ratio, undefined);
});
