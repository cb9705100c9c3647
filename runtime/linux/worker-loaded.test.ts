import test from 'ava';
import { Worker } from 'node:worker_threads';
import { terminateWhenLoaded, whenLoaded } from './worker-loaded.js';

const body = (delayMs: number) => `
  const { parentPort } = require('node:worker_threads');
  const until = Date.now() + ${delayMs};
  while (Date.now() < until) {}
  parentPort.postMessage({ id: 0, loaded: true });
  setInterval(() => {}, 1000);
`;

test('terminate waits until the worker has loaded', async (t) => {
  const w = new Worker(body(300), { eval: true });
  const loaded = whenLoaded(w);
  let loadedAt = 0;
  void loaded.then(() => { loadedAt = Date.now(); });
  await terminateWhenLoaded(w, loaded);
  t.true(loadedAt > 0, 'LOADED arrived before terminate');
});

test('a worker that never loads is terminated after the cap; one that exits counts as loaded', async (t) => {
  const stuck = new Worker('setInterval(() => {}, 1000)', { eval: true });
  const t0 = Date.now();
  await terminateWhenLoaded(stuck, whenLoaded(stuck), 200);
  t.true(Date.now() - t0 >= 190);
  const quick = new Worker('', { eval: true });
  await t.notThrowsAsync(whenLoaded(quick));
});
