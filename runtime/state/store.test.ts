import test from 'ava';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { InvalidArgumentError, NotFoundError } from '../errors.js';
import { NameIndex, ObjectStore, newId, writeFileAtomic } from './store.js';

interface Meta { name: string }
interface Status { state: string; n: number }

const dirs: string[] = [];
test.after.always(async () => {
  await Promise.all(dirs.map((d) => fs.rm(d, { recursive: true, force: true })));
});

async function fresh() {
  const dir = await fs.mkdtemp(join(tmpdir(), 'corral-store-'));
  dirs.push(dir);
  const store = new ObjectStore<Meta, Status>(dir, 'container');
  await store.load();
  return { dir, store };
}

test('ids are 64 lowercase hex characters and unique', (t) => {
  const a = newId();
  t.regex(a, /^[0-9a-f]{64}$/);
  t.not(a, newId());
});

test('create, update and reload from disk', async (t) => {
  const { dir, store } = await fresh();
  const id = newId();
  await store.create(id, { name: 'a' }, { state: 'CREATED', n: 0 });
  await store.update(id, (s) => ({ ...s, state: 'RUNNING', n: s.n + 1 }));
  const again = new ObjectStore<Meta, Status>(dir, 'container');
  const { loaded } = await again.load();
  t.is(loaded, 1);
  t.deepEqual(again.get(id)!.status, { state: 'RUNNING', n: 1 });
  t.deepEqual(again.get(id)!.meta, { name: 'a' });
});

test('a crash between the temp write and the rename leaves the old status intact', async (t) => {
  const { dir, store } = await fresh();
  const id = newId();
  await store.create(id, { name: 'a' }, { state: 'CREATED', n: 0 });
  // What a crash leaves: a complete or torn temp file beside the untouched status.json.
  await fs.writeFile(join(dir, id, 'status.json.tmp-999-deadbeef'), '{"state":"RUN');
  const again = new ObjectStore<Meta, Status>(dir, 'container');
  await again.load();
  t.deepEqual(again.get(id)!.status, { state: 'CREATED', n: 0 });
});

test('a directory without meta.json (crashed create) is skipped on load', async (t) => {
  const { dir } = await fresh();
  await fs.mkdir(join(dir, 'half'));
  await fs.writeFile(join(dir, 'half', 'status.json'), '{}');
  const again = new ObjectStore<Meta, Status>(dir, 'container');
  const r = await again.load();
  t.is(r.loaded, 0);
  t.deepEqual(r.skipped, ['half']);
});

test('concurrent updates of one id are serialised (no lost update)', async (t) => {
  const { store } = await fresh();
  const id = newId();
  await store.create(id, { name: 'a' }, { state: 'CREATED', n: 0 });
  await Promise.all(Array.from({ length: 20 }, () => store.update(id, (s) => ({ ...s, n: s.n + 1 }))));
  t.is(store.get(id)!.status.n, 20);
});

test('a failing update function changes nothing and does not block the next', async (t) => {
  const { store } = await fresh();
  const id = newId();
  await store.create(id, { name: 'a' }, { state: 'CREATED', n: 0 });
  await t.throwsAsync(store.update(id, () => { throw new Error('boom'); }), { message: 'boom' });
  await store.update(id, (s) => ({ ...s, n: 5 }));
  t.is(store.get(id)!.status.n, 5);
});

test('prefix lookup: exact, unique prefix, ambiguous lists candidates, unknown is NotFound', async (t) => {
  const { store } = await fresh();
  await store.create('abc111' + '0'.repeat(58), { name: 'a' }, { state: 'x', n: 0 });
  await store.create('abc222' + '0'.repeat(58), { name: 'b' }, { state: 'x', n: 0 });
  t.is(store.resolve('abc1').meta.name, 'a');
  t.is(store.resolve('abc222' + '0'.repeat(58)).meta.name, 'b');
  const amb = t.throws(() => store.resolve('abc'));
  t.true(amb instanceof InvalidArgumentError);
  t.regex(amb!.message, /ambiguous: abc111.*abc222/);
  const nf = t.throws(() => store.resolve('ffff'));
  t.true(nf instanceof NotFoundError);
  t.regex(nf!.message, /container "ffff" not found/);
  t.is(store.find('ffff'), undefined);
  t.throws(() => store.resolve(''), { instanceOf: InvalidArgumentError });
});

test('remove deletes the directory and is idempotent', async (t) => {
  const { dir, store } = await fresh();
  const id = newId();
  await store.create(id, { name: 'a' }, { state: 'x', n: 0 });
  await store.remove(id);
  await store.remove(id);
  t.is(store.get(id), undefined);
  await t.throwsAsync(fs.access(join(dir, id)));
  await t.throwsAsync(store.update(id, (s) => s), { instanceOf: NotFoundError });
  await store.settled();
  t.deepEqual(await fs.readdir(join(dir, '.trash')), []);
});

test('a removal sticks across a restart even when the background deletion did not finish', async (t) => {
  const { dir, store } = await fresh();
  const [a, b] = [newId(), newId()];
  await store.create(a, { name: 'a' }, { state: 'x', n: 0 });
  await store.create(b, { name: 'b' }, { state: 'x', n: 0 });
  await store.remove(a);
  await store.settled();
  // What a crash between the rename and the deletion leaves.
  await fs.mkdir(join(dir, '.trash', `${b}-dead`), { recursive: true });
  await fs.writeFile(join(dir, '.trash', `${b}-dead`, 'meta.json'), '{"name":"b"}');
  const again = new ObjectStore<Meta, Status>(dir, 'container');
  t.deepEqual(await again.load(), { loaded: 1, skipped: [] });
  t.deepEqual(again.list().map((e) => e.id), [b]);
  t.deepEqual(await fs.readdir(dir), [b]);
});

test('create writes both files at once and leaves no temp file', async (t) => {
  const { dir, store } = await fresh();
  const id = newId();
  await store.create(id, { name: 'a' }, { state: 'x', n: 0 });
  t.deepEqual((await fs.readdir(join(dir, id))).sort(), ['meta.json', 'status.json']);
  t.deepEqual(JSON.parse(await fs.readFile(join(dir, id, 'meta.json'), 'utf8')), { name: 'a' });
});

test('create of an existing id is AlreadyExists', async (t) => {
  const { store } = await fresh();
  const id = newId();
  await store.create(id, { name: 'a' }, { state: 'x', n: 0 });
  await t.throwsAsync(store.create(id, { name: 'a' }, { state: 'x', n: 0 }), { message: /already exists/ });
});

test('name index: reserve, conflict returns the holder, release', (t) => {
  const names = new NameIndex();
  t.is(names.reserve('k8s_POD_a', 'id1'), undefined);
  t.is(names.reserve('k8s_POD_a', 'id1'), undefined);
  t.is(names.reserve('k8s_POD_a', 'id2'), 'id1');
  names.release('k8s_POD_a', 'id2');
  t.is(names.get('k8s_POD_a'), 'id1');
  names.release('k8s_POD_a');
  t.is(names.reserve('k8s_POD_a', 'id2'), undefined);
});

test('writeFileAtomic: a write that fails leaves no temp file beside the target', async (t) => {
  const dir = await fs.mkdtemp(join(tmpdir(), 'atomic-'));
  // The target is a non-empty directory: the rename fails after the temp file was written.
  await fs.mkdir(join(dir, 'target', 'inside'), { recursive: true });
  await t.throwsAsync(writeFileAtomic(join(dir, 'target'), 'x'));
  t.deepEqual((await fs.readdir(dir)).sort(), ['target']);
  await fs.rm(dir, { recursive: true });
});
