import test from 'ava';
import { mkdtemp, rm, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OciRuntimes, OciRuntime, crunNeedsHybridWorkaround } from './runtime.js';
import { writeFakeRuntime, setFakeExitDir, fakeCalls } from './testing.js';
import { defaultConfig } from '../config.js';
import { silentLogger } from '../util/log.js';
import { NotFoundError } from '../errors.js';
import type { CgroupInfo } from '../cgroups/detect.js';

const v1: CgroupInfo = { mode: 'v1', driver: 'cgroupfs', root: '/sys/fs/cgroup', controllers: ['memory'], unifiedControllers: [] };

async function setup() {
  const dir = await mkdtemp(join(tmpdir(), 'ocirt-'));
  const bin = await writeFakeRuntime(dir);
  const root = join(dir, 'root');
  await setFakeExitDir(root, join(dir, 'exits'));
  return { dir, bin, root, rt: new OciRuntime({ name: 'fake', path: bin, root, options: [], monitorPath: bin }) };
}

test('state of an unknown container is undefined; kill/delete of one are not errors', async (t) => {
  const { dir, rt, root } = await setup();
  t.is(await rt.state('nope'), undefined);
  t.false(await rt.kill('nope', 'SIGTERM'));
  await t.notThrowsAsync(rt.delete('nope'));
  const calls = await fakeCalls(root);
  t.deepEqual(calls[1], ['kill', 'nope', 'TERM']);
  t.deepEqual(calls[2], ['delete', '--force', 'nope']);
  await rm(dir, { recursive: true });
});

test('update passes the resources as a JSON file', async (t) => {
  const { dir, rt, root } = await setup();
  await rt.update('c1', { cpu: { shares: 512 } });
  t.deepEqual(JSON.parse(await readFile(join(root, 'c1.resources.json'), 'utf8')), { cpu: { shares: 512 } });
  await rm(dir, { recursive: true });
});

test('start of an unknown container fails with the runtime message', async (t) => {
  const { dir, rt } = await setup();
  const err = await t.throwsAsync(rt.start('ghost'));
  t.regex(err!.message, /fake start ghost: container "ghost" does not exist/);
  await rm(dir, { recursive: true });
});

test('unknown handler is NotFound naming the known ones; "" is the default', async (t) => {
  const { dir, bin } = await setup();
  const rts = OciRuntimes.of([{ name: 'a', path: bin, root: '/r', options: [], monitorPath: bin }, { name: 'b', path: bin, root: '/r2', options: [], monitorPath: bin }], 'b');
  t.is(rts.get('').name, 'b');
  t.is(rts.get('a').name, 'a');
  const err = t.throws(() => rts.get('kata'));
  t.true(err instanceof NotFoundError);
  t.regex(err!.message, /"kata" not found; known handlers: a, b/);
  await rm(dir, { recursive: true });
});

test('a default handler that cannot run falls back to runc', async (t) => {
  const { dir, bin } = await setup();
  const cfg = defaultConfig();
  cfg.state_dir = join(dir, 'state');
  cfg.runtimes = {
    crun: { path: join(dir, 'missing-crun'), root: join(dir, 'crun'), options: [] },
    runc: { path: bin, root: join(dir, 'runc'), options: [] },
  };
  const rts = await OciRuntimes.create(cfg, v1, silentLogger());
  t.is(rts.defaultHandler, 'runc');
  t.regex(rts.choice.reason, /crun cannot run here .*missing-crun.*using runc/);
  await rm(dir, { recursive: true });
});

test('crun needs the workaround only on hybrid hosts whose cgroup2 has controllers', (t) => {
  t.false(crunNeedsHybridWorkaround(v1));
  t.false(crunNeedsHybridWorkaround({ ...v1, mode: 'hybrid', unifiedControllers: [] }));
  t.true(crunNeedsHybridWorkaround({ ...v1, mode: 'hybrid', unifiedControllers: ['hugetlb'] }));
});
