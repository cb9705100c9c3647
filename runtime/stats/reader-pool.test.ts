import test from 'ava';
import { fileURLToPath } from 'node:url';
import { CgroupStatsReader } from '../cgroups/stats.js';
import { PooledStatsReader } from './reader-pool.js';

const V1 = fileURLToPath(new URL('../../../runtime/cgroups/testdata/v1/', import.meta.url));

test('the worker-thread reader returns what the in-process reader does, batched', async (t) => {
  const pool = new PooledStatsReader({ mode: 'hybrid', root: V1 });
  t.teardown(() => pool.close());
  const direct = await new CgroupStatsReader({ mode: 'hybrid', root: V1 }).read('/kubepods/pod1/ctr1');
  const [a, b, missing] = await Promise.all([pool.read('/kubepods/pod1/ctr1'), pool.read('/kubepods/pod1/ctr1'), pool.read('/nope')]);
  const strip = (s: typeof direct) => ({ ...s, timestampNs: 0n, monotonicNs: 0n });
  t.deepEqual(strip(a), strip(direct));
  t.deepEqual(strip(b), strip(direct));
  t.is(missing, undefined);
  // Later calls reuse the worker.
  t.is((await pool.read('/kubepods/pod1/ctr1'))?.memory?.workingSetBytes, direct?.memory?.workingSetBytes);
});

test('a large batch is split across two workers and answers every caller in order', async (t) => {
  const pool = new PooledStatsReader({ mode: 'hybrid', root: V1, workers: 2 });
  t.teardown(() => pool.close());
  const paths = Array.from({ length: 40 }, (_, i) => (i % 3 === 0 ? `/missing-${i}` : '/kubepods/pod1/ctr1'));
  const res = await Promise.all(paths.map((p) => pool.read(p)));
  t.deepEqual(res.map((r) => r === undefined), paths.map((p) => p.startsWith('/missing')));
  t.is(res[1]?.cpu?.usageNs, 69915994n);
});
