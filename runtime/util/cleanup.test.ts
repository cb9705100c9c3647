import test from 'ava';
import { CleanupStack } from './cleanup.js';

test('run() undoes in reverse order, once, and keeps going past a failing undo', async (t) => {
  const order: string[] = [];
  const reported: string[] = [];
  const s = new CleanupStack((e) => reported.push(e.step));
  s.push('a', () => { order.push('a'); });
  s.push('b', async () => { order.push('b'); throw new Error('boom'); });
  s.push('c', async () => { order.push('c'); });
  const errors = await s.run();
  t.deepEqual(order, ['c', 'b', 'a']);
  t.deepEqual(errors.map((e) => e.step), ['b']);
  t.deepEqual(reported, ['b']);
  t.is(s.size, 0);
  await s.run();
  t.deepEqual(order, ['c', 'b', 'a']);
});

test('guard() releases on success and unwinds then rethrows the original error on failure', async (t) => {
  const undone: string[] = [];
  const ok = await new CleanupStack().guard(async (s) => {
    s.push('x', () => { undone.push('x'); });
    return 42;
  });
  t.is(ok, 42);
  t.deepEqual(undone, []);

  const err = await t.throwsAsync(new CleanupStack().guard(async (s) => {
    s.push('one', () => { undone.push('one'); });
    s.push('two', () => { throw new Error('undo failed too'); });
    throw new Error('step three failed');
  }));
  t.is(err?.message, 'step three failed');
  t.deepEqual(undone, ['one']);
});
