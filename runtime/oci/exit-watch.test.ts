import test from 'ava';
import { mkdtemp, writeFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ExitWatcher, type ExitRecord } from './exit-watch.js';

const waitFor = async (cond: () => boolean, ms = 3000) => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 10));
  return cond();
};

test('reports exit files already there at start, then new ones as they appear', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'exitw-'));
  await writeFile(join(dir, 'old'), '3');
  const seen: ExitRecord[] = [];
  const w = new ExitWatcher(dir, (e) => seen.push(e));
  await w.start();
  t.deepEqual(seen.map((e) => [e.id, e.exitCode]), [['old', 3]]);
  await writeFile(join(dir, 'new'), '137');
  t.true(await waitFor(() => seen.length === 2));
  t.deepEqual(seen[1]!.id, 'new');
  t.is(seen[1]!.exitCode, 137);
  t.true(seen[1]!.finishedAtMs > Date.now() - 10_000);
  w.close();
  await rm(dir, { recursive: true });
});

test('an empty file (conmon has not written the code yet) is reported once the code is there', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'exitw-'));
  const seen: ExitRecord[] = [];
  const w = new ExitWatcher(dir, (e) => seen.push(e));
  await w.start();
  await writeFile(join(dir, 'c1'), '');
  await new Promise((r) => setTimeout(r, 50));
  t.is(seen.length, 0);
  await writeFile(join(dir, 'c1'), '0');
  t.true(await waitFor(() => seen.length === 1));
  t.is(seen[0]!.exitCode, 0);
  // reported once, however many events follow
  await writeFile(join(dir, 'c1'), '0');
  await w.check('c1');
  t.is(seen.length, 1);
  await w.forget('c1');
  w.close();
  await rm(dir, { recursive: true });
});

test('conmon temp files (<id>.XXXXXX, renamed into place) are ignored', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'exitw-'));
  const seen: ExitRecord[] = [];
  const w = new ExitWatcher(dir, (e) => seen.push(e));
  await w.start();
  await writeFile(join(dir, 'c2.AB12CD'), '5');
  await new Promise((r) => setTimeout(r, 50));
  t.is(seen.length, 0);
  const { rename } = await import('node:fs/promises');
  await rename(join(dir, 'c2.AB12CD'), join(dir, 'c2'));
  t.true(await waitFor(() => seen.length === 1));
  t.is(seen[0]!.id, 'c2');
  t.is(seen[0]!.exitCode, 5);
  w.close();
  await rm(dir, { recursive: true });
});
