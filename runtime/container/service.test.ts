import test from 'ava';
import { mkdtemp, mkdir, readFile, readdir, rm, writeFile, access, symlink } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ContainerService } from './service.js';
import { resolveSubPath } from './image-volumes.js';
import type { ImagePort, SandboxPort, SandboxViewLike, SpecPort } from './ports.js';
import { OciRuntimes } from '../oci/runtime.js';
import { writeFakeRuntime, setFakeExitDir, fakeConmon, fakeCalls } from '../oci/testing.js';
import { defaultConfig } from '../config.js';
import { silentLogger } from '../util/log.js';
import { FakeSyscalls } from '../linux/fake.js';
import type { ContainerEvent } from './types.js';
import type { OciSpec } from '../oci/spec/types.js';

const IMAGE = { id: 'sha256:' + 'ab'.repeat(32), repoTags: ['busybox:latest'], repoDigests: ['busybox@sha256:' + 'cd'.repeat(32)], config: { config: { StopSignal: 'SIGINT' } } };

class FakeImages implements ImagePort {
  prepared: string[] = [];
  released: string[] = [];
  resolve(ref: string) {
    return ref === 'busybox:latest' || ref === IMAGE.id || IMAGE.id.slice(7).startsWith(ref) ? IMAGE : undefined;
  }
  async prepareRootfs(id: string, _image: string, target: string) {
    await mkdir(join(target, 'etc'), { recursive: true });
    this.prepared.push(id);
  }
  async releaseRootfs(id: string) {
    this.released.push(id);
  }
  /** Image volume views: key -> target. A plain directory stands in for the overlay. */
  views = new Map<string, string>();
  async prepareImageVolume(key: string, _image: string, target: string) {
    await mkdir(join(target, 'etc'), { recursive: true });
    await writeFile(join(target, 'etc', 'passwd'), 'root:x:0:0::/:/bin/sh\n');
    this.views.set(key, target);
  }
  async releaseImageVolume(key: string) {
    this.views.delete(key);
  }
  imageVolumeKeys(prefix = '') {
    return [...this.views.keys()].filter((k) => k.startsWith(prefix));
  }
}

class FakeSandboxes implements SandboxPort {
  pods = new Map<string, SandboxViewLike>();
  get(id: string) {
    return this.pods.get(id) ?? [...this.pods.values()].find((p) => p.id.startsWith(id));
  }
}

/** buildContainerSpec's input by container id (the tests of this file run concurrently). */
const specInputs = new Map<string, any>();

const fakeSpec: SpecPort = {
  async buildContainerSpec(input) {
    specInputs.set(input.containerId, input);
    const spec: OciSpec = {
      ociVersion: '1.0.2',
      process: { terminal: false, user: { uid: 1000, gid: 1000, additionalGids: [10] }, args: input.config.command ?? ['sh'], env: ['PATH=/usr/bin:/bin'], cwd: '/' },
      root: { path: input.rootfs },
      mounts: [],
      annotations: {},
      linux: { namespaces: [], cgroupsPath: input.cgroupsPath },
    };
    return { spec, warnings: [], hostPropagation: [] };
  },
  buildExecProcess(spec, cmd, tty) {
    return { ...spec.process, args: cmd, terminal: tty };
  },
};

interface Env {
  dir: string;
  svc: ContainerService;
  images: FakeImages;
  sandboxes: FakeSandboxes;
  root: string;
  events: ContainerEvent[];
  make(): Promise<ContainerService>;
}

async function setup(conmon = fakeConmon()): Promise<Env> {
  const dir = await mkdtemp(join(tmpdir(), 'ctrsvc-'));
  const bin = await writeFakeRuntime(dir);
  const root = join(dir, 'rt');
  const config = defaultConfig();
  config.root_dir = join(dir, 'lib');
  config.state_dir = join(dir, 'run');
  await setFakeExitDir(root, join(config.state_dir, 'exits'));
  const images = new FakeImages();
  const sandboxes = new FakeSandboxes();
  sandboxes.pods.set('pod1', {
    id: 'pod1' + '0'.repeat(60), name: 'k8s_POD_web_default_uid1_0',
    config: { metadata: { name: 'web', namespace: 'default', uid: 'uid1', attempt: 0 }, log_directory: join(dir, 'logs', 'pod1') },
    state: 'READY', namespaces: { net: '/run/netns/x' }, hostname: 'web', files: {}, cgroupParent: '/kubepods/pod1', runtimeHandler: '',
  });
  sandboxes.pods.set('pod2', { ...sandboxes.pods.get('pod1')!, id: 'pod2' + '0'.repeat(60), config: { metadata: { name: 'db', namespace: 'default', uid: 'uid2' } }, state: 'NOTREADY' });
  const events: ContainerEvent[] = [];
  const make = async () => {
    const s = await ContainerService.create({
      config, logger: silentLogger(), syscalls: new FakeSyscalls(), images, sandboxes,
      cgroups: { mode: 'v1', driver: 'cgroupfs', root: '/sys/fs/cgroup', controllers: [], unifiedControllers: [] },
      runtimes: OciRuntimes.of([{ name: 'fake', path: bin, root, options: [], monitorPath: bin }], 'fake'),
      spec: fakeSpec, conmon,
    });
    s.onEvent((e) => events.push(e));
    return s;
  };
  return { dir, svc: await make(), images, sandboxes, root, events, make };
}

function ctrConfig(name = 'app', extra: Record<string, unknown> = {}) {
  return {
    metadata: { name, attempt: 1 }, image: { image: 'busybox:latest' }, command: ['sh', '-c', 'sleep 100'],
    log_path: `${name}/1.log`, labels: { app: name, tier: 'front' }, annotations: { a: 'b' }, mounts: [], ...extra,
  };
}

const POD1 = 'pod1' + '0'.repeat(60);

const waitFor = async (cond: () => boolean, ms = 5000) => {
  const end = Date.now() + ms;
  while (!cond() && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  return cond();
};

test('create, start, stop, remove: states, timestamps, events, files', async (t) => {
  const env = await setup();
  const { svc } = env;
  const id = await svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig() });
  t.is(id.length, 64);
  let st = svc.status(id, true);
  t.is(st.status.state, 'CONTAINER_CREATED');
  t.is(st.status.log_path, join(env.dir, 'logs', 'pod1', 'app', '1.log'));
  t.is(st.status.image.image, 'busybox:latest');
  t.is(st.status.image_ref, IMAGE.repoDigests[0]);
  t.deepEqual(st.status.user, { linux: { uid: '1000', gid: '1000', supplemental_groups: ['10'] } });
  t.is(st.status.stop_signal, 'SIGNAL_SIGINT');
  const info = JSON.parse(st.info.info!);
  t.is(info.sandboxID, POD1);
  t.is(info.pid, 4242);
  t.is(info.runtimeSpec.linux.cgroupsPath, `/kubepods/pod1/corral-${id}`);
  const view = svc.get(id.slice(0, 8));
  t.is(view.podId, POD1);
  t.is(view.attachSocketPath, join(env.dir, 'run', 'attach', id, 'attach'));

  await svc.start(id);
  st = svc.status(id);
  t.is(st.status.state, 'CONTAINER_RUNNING');
  t.not(st.status.started_at, '0');
  await t.throwsAsync(svc.start(id), { message: /is RUNNING/ });

  await svc.stop(id, 10);
  st = svc.status(id);
  t.is(st.status.state, 'CONTAINER_EXITED');
  t.is(st.status.exit_code, 130); // the image's StopSignal: SIGINT
  t.is(st.status.reason, 'Error');
  t.true(BigInt(st.status.finished_at) >= BigInt(st.status.started_at));
  await svc.stop(id, 10); // idempotent

  await writeFile(st.status.log_path, 'kept\n');
  await svc.remove(id);
  t.throws(() => svc.get(id), { message: /not found/ });
  t.deepEqual(env.images.released, [id]);
  await t.throwsAsync(access(join(env.dir, 'lib', 'containers', id)));
  t.is(await readFile(st.status.log_path, 'utf8'), 'kept\n');
  await svc.remove(id); // idempotent
  await svc.stop(id, 0);
  t.deepEqual(env.events.map((e) => e.type), ['CONTAINER_CREATED_EVENT', 'CONTAINER_STARTED_EVENT', 'CONTAINER_STOPPED_EVENT', 'CONTAINER_DELETED_EVENT']);
  await svc.close();
  await rm(env.dir, { recursive: true });
});

test('names: concurrent retries join; a retry before the start gets the container; a started one\'s name is AlreadyExists naming the holder; removal frees it', async (t) => {
  const env = await setup();
  const { svc } = env;
  const [a, b] = await Promise.all([svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig() }), svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig() })]);
  t.is(a, b);
  t.is(await svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig() }), a);
  await svc.start(a);
  const err = await t.throwsAsync(svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig() }));
  t.is((err as any).kind, 'AlreadyExists');
  t.regex(err!.message, new RegExp(`k8s_app_web_default_uid1_1.*${a}`));
  await svc.remove(a);
  const c = await svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig() });
  t.not(c, a);
  await svc.remove(c);
  await svc.close();
  await rm(env.dir, { recursive: true });
});

test('preconditions: unknown pod, pod not ready, unknown image, unknown handler', async (t) => {
  const env = await setup();
  const { svc } = env;
  t.is(((await t.throwsAsync(svc.create({ pod_sandbox_id: 'nope', config: ctrConfig() }))) as any).kind, 'NotFound');
  t.is(((await t.throwsAsync(svc.create({ pod_sandbox_id: 'pod2', config: ctrConfig() }))) as any).kind, 'FailedPrecondition');
  const e = await t.throwsAsync(svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig('x', { image: { image: 'nginx:1' } }) }));
  t.is((e as any).kind, 'NotFound');
  t.regex(e!.message, /image "nginx:1" not found/);
  env.sandboxes.pods.get('pod1')!.runtimeHandler = 'kata';
  const h = await t.throwsAsync(svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig('y') }));
  t.regex(h!.message, /"kata" not found; known handlers: fake/);
  t.deepEqual(svc.list(), []);
  await svc.close();
  await rm(env.dir, { recursive: true });
});

test('a failing create undoes everything and frees the name', async (t) => {
  const env = await setup(fakeConmon({ fail: 'runtime create failed: boom' }));
  const err = await t.throwsAsync(env.svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig() }));
  t.regex(err!.message, /boom/);
  t.is(env.images.prepared.length, 1);
  t.deepEqual(env.images.released, env.images.prepared);
  const left = await import('node:fs/promises').then((f) => f.readdir(join(env.dir, 'lib', 'containers')));
  t.deepEqual(left, []);
  const calls = await fakeCalls(env.root);
  t.deepEqual(calls.at(-1), ['delete', '--force', env.images.prepared[0]!]);
  const again = await t.throwsAsync(env.svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig() }));
  t.regex(again!.message, /boom/); // not AlreadyExists: the name was released
  await env.svc.close();
  await rm(env.dir, { recursive: true });
});

test('stop escalates to SIGKILL when the stop signal is ignored; timeout 0 kills at once', async (t) => {
  const env = await setup();
  const { svc } = env;
  const id = await svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig() });
  await svc.start(id);
  await writeFile(join(env.root, `${id}.ignore-term`), '');
  // the image says SIGINT, the CRI config overrides it
  const id2 = await svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig('b', { stop_signal: 'SIGNAL_SIGTERM' }) });
  await svc.start(id2);
  await writeFile(join(env.root, `${id2}.ignore-term`), '');
  const t0 = Date.now();
  await svc.stop(id2, 1);
  t.true(Date.now() - t0 >= 1000);
  t.is(svc.status(id2).status.exit_code, 137);
  const t1 = Date.now();
  await svc.stop(id, 0);
  t.true(Date.now() - t1 < 900);
  t.is(svc.status(id).status.exit_code, 137);
  await svc.removeAllInPod(POD1);
  t.deepEqual(svc.list(), []);
  await svc.close();
  await rm(env.dir, { recursive: true });
});

test('exit reasons; the termination message is left to the kubelet (it reads the file and appends it to ours)', async (t) => {
  const env = await setup();
  const { svc } = env;
  const msgFile = join(env.dir, 'termination-log');
  await writeFile(msgFile, 'x'.repeat(5000));
  const id = await svc.create({
    pod_sandbox_id: 'pod1',
    config: ctrConfig('done', {
      annotations: { 'io.kubernetes.container.terminationMessagePath': '/dev/termination-log' },
      mounts: [{ container_path: '/dev/termination-log', host_path: msgFile }],
    }),
  });
  await writeFile(join(env.root, `${id}.exit-on-start`), '0');
  await svc.start(id);
  t.true(await waitFor(() => svc.get(id).state === 'EXITED'));
  const st = svc.status(id).status;
  t.true(BigInt(st.started_at) <= BigInt(st.finished_at));
  const mine = env.events.filter((e) => e.containerId === id).map((e) => e.type);
  t.deepEqual(mine, ['CONTAINER_CREATED_EVENT', 'CONTAINER_STARTED_EVENT', 'CONTAINER_STOPPED_EVENT']);
  t.is(st.reason, 'Completed');
  t.is(st.exit_code, 0);
  t.is(st.message, '');
  t.is(st.mounts[0].host_path, msgFile);

  const id2 = await svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig('oom') });
  await writeFile(join(env.root, `${id2}.exit-on-start`), '137');
  await writeFile(join(svc.get(id2).bundleDir, 'oom'), '');
  await svc.start(id2);
  t.true(await waitFor(() => svc.get(id2).state === 'EXITED'));
  t.is(svc.status(id2).status.reason, 'OOMKilled');
  await svc.removeAllInPod(POD1);
  await svc.close();
  await rm(env.dir, { recursive: true });
});

test('list filters: id prefix, state, pod prefix, labels', async (t) => {
  const env = await setup();
  const { svc } = env;
  const a = await svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig('a', { labels: { app: 'a', tier: 'front' } }) });
  const b = await svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig('b', { labels: { app: 'b', tier: 'front' } }) });
  await svc.start(b);
  const ids = (f: any) => svc.list(f).map((c) => c.id).sort();
  t.deepEqual(ids({}), [a, b].sort());
  t.deepEqual(ids({ id: a.slice(0, 10) }), [a]);
  t.deepEqual(ids({ state: { state: 'CONTAINER_RUNNING' } }), [b]);
  t.deepEqual(ids({ pod_sandbox_id: 'pod1' }), [a, b].sort());
  t.deepEqual(ids({ pod_sandbox_id: 'pod2' }), []);
  t.deepEqual(ids({ label_selector: { app: 'a', tier: 'front' } }), [a]);
  t.deepEqual(ids({ label_selector: { tier: 'back' } }), []);
  const c = svc.list({ id: b })[0];
  t.is(c.pod_sandbox_id, POD1);
  t.deepEqual(c.metadata, { name: 'b', attempt: 1 });
  t.is(c.image_ref, IMAGE.repoDigests[0]);
  await svc.removeAllInPod(POD1);
  await svc.close();
  await rm(env.dir, { recursive: true });
});

test('update goes to the runtime as OCI resources and is persisted; exited containers refuse', async (t) => {
  const env = await setup();
  const { svc } = env;
  const id = await svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig('u', { linux: { resources: { cpu_shares: '2', memory_limit_in_bytes: '0' } } }) });
  await svc.start(id);
  await svc.update(id, { cpu_shares: '512', cpu_quota: '50000', cpu_period: '100000', memory_limit_in_bytes: '67108864' });
  const sent = JSON.parse(await readFile(join(env.root, `${id}.resources.json`), 'utf8'));
  t.deepEqual(sent, { cpu: { shares: 512, quota: 50000, period: 100000 }, memory: { limit: 67108864 } });
  const r = svc.status(id).status.resources.linux;
  t.is(r.cpu_shares, '512');
  t.is(r.memory_limit_in_bytes, '67108864');
  await svc.stop(id, 0);
  t.is(((await t.throwsAsync(svc.update(id, { cpu_shares: '2' }))) as any).kind, 'FailedPrecondition');
  t.is(((await t.throwsAsync(svc.reopenLog(id))) as any).kind, 'FailedPrecondition');
  await svc.remove(id);
  await svc.close();
  await rm(env.dir, { recursive: true });
});

test('execSync: separate stdout and stderr, the exit code, and a timeout that kills', async (t) => {
  const env = await setup();
  const { svc } = env;
  const id = await svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig() });
  await t.throwsAsync(svc.execSync(id, ['true'], 0), { message: /not running/ });
  await svc.start(id);
  const r = await svc.execSync(id, ['sh', '-c', 'echo out; echo err >&2; exit 3'], 5);
  t.is(r.stdout.toString(), 'out\n');
  t.is(r.stderr.toString(), 'err\n');
  t.is(r.exitCode, 3);
  const t0 = Date.now();
  const err = await t.throwsAsync(svc.execSync(id, ['sleep', '30'], 1));
  t.is((err as any).kind, 'DeadlineExceeded');
  t.true(Date.now() - t0 < 5000);
  await svc.remove(id);
  await svc.close();
  await rm(env.dir, { recursive: true });
});

test('restart: state is rebuilt from disk and the runtime; exits seen while down are picked up', async (t) => {
  const env = await setup();
  const a = await env.svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig('a') });
  const b = await env.svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig('b') });
  const c = await env.svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig('c') });
  await env.svc.start(a);
  await env.svc.start(c);
  await env.svc.close();
  // while corral is down: a exits (conmon writes its file), c's runtime state vanishes
  await writeFile(join(env.dir, 'run', 'exits', a), '7');
  await rm(join(env.root, `${c}.json`));
  const svc = await env.make();
  t.is(svc.get(a).state, 'EXITED');
  t.is(svc.status(a).status.exit_code, 7);
  t.is(svc.get(b).state, 'CREATED');
  t.is(svc.get(c).state, 'UNKNOWN');
  t.truthy(svc.get(b).spec);
  t.is(await svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig('b') }), b); // a kubelet's retry after the restart
  await svc.start(b);
  t.is(((await t.throwsAsync(svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig('b') }))) as any).kind, 'AlreadyExists');
  t.is(svc.get(b).state, 'RUNNING');
  await svc.stop(c, 0);
  t.is(svc.get(c).state, 'EXITED');
  await svc.removeAllInPod(POD1);
  t.deepEqual(svc.list(), []);
  await svc.close();
  await rm(env.dir, { recursive: true });
});

const imageVolume = (container_path: string, image: string, extra: Record<string, unknown> = {}) =>
  ({ container_path, readonly: true, image: { image, user_specified_image: 'busybox' }, ...extra });

test('image volumes: a bind of the view (or its sub path), image_ref in status, the image in use, released on remove', async (t) => {
  const env = await setup();
  const { svc } = env;
  const id = await svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig('app', {
    mounts: [{ container_path: '/data', host_path: env.dir }, imageVolume('/iv', 'busybox:latest'), imageVolume('/sub', IMAGE.id, { image_sub_path: 'etc' })],
  }) });
  const bundle = join(env.dir, 'lib', 'containers', id);
  const m = specInputs.get(id).config.mounts;
  t.deepEqual(m.map((x: any) => [x.container_path, x.host_path, x.readonly, x.image]), [
    ['/data', env.dir, undefined, undefined],
    ['/iv', join(bundle, 'image-volumes', '0'), true, null],
    ['/sub', join(bundle, 'image-volumes', '1', 'etc'), true, null],
  ]);
  t.deepEqual(env.images.imageVolumeKeys(), [`${id}.iv0`, `${id}.iv1`]);
  const mounts = svc.status(id).status.mounts;
  t.deepEqual(mounts.map((x: any) => x.image?.image_ref), [undefined, IMAGE.id, IMAGE.id]);
  t.is(mounts[1].image.image, 'busybox:latest');
  t.deepEqual(svc.containersUsingImage(IMAGE.id), [id]);
  await svc.remove(id);
  t.deepEqual(env.images.imageVolumeKeys(), []);
  await svc.close();
  await rm(env.dir, { recursive: true });
});

test('image volumes: bad requests are InvalidArgument or NotFound and leave no view and no container', async (t) => {
  const env = await setup();
  const { svc } = env;
  const bad: Array<[unknown, string, RegExp]> = [
    [imageVolume('/iv', 'busybox:latest', { readonly: false }), 'InvalidArgument', /must be readonly/],
    [imageVolume('/iv', 'busybox:latest', { image_sub_path: '../etc' }), 'InvalidArgument', /must not contain/],
    [imageVolume('/iv', 'busybox:latest', { image_sub_path: 'not-existing' }), 'InvalidArgument', /sub path "not-existing" \(for \/iv\) does not exist in the image/],
    [imageVolume('/iv', 'busybox:latest', { image_sub_path: 'etc/passwd' }), 'InvalidArgument', /is not a directory/],
    [imageVolume('/iv', 'nginx:latest'), 'NotFound', /image volume nginx:latest is not present/],
  ];
  for (const [mount, kind, re] of bad) {
    const err = await t.throwsAsync(svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig('app', { mounts: [imageVolume('/ok', 'busybox:latest'), mount] }) }));
    t.is((err as any).kind, kind, err!.message);
    t.regex(err!.message, re);
    t.deepEqual(env.images.imageVolumeKeys(), []);
    t.deepEqual(svc.list(), []);
  }
  await svc.close();
  await rm(env.dir, { recursive: true });
});

test('image volumes: views of containers gone while the daemon was down are released at start', async (t) => {
  const env = await setup();
  const id = await env.svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig('app', { mounts: [imageVolume('/iv', 'busybox:latest')] }) });
  await env.svc.close();
  env.images.views.set(`${'f'.repeat(64)}.iv0`, '/nowhere');
  const svc = await env.make();
  t.deepEqual(env.images.imageVolumeKeys(), [`${id}.iv0`]);
  await svc.remove(id);
  await svc.close();
  await rm(env.dir, { recursive: true });
});

test('image volumes: a sub path resolves inside the view, symlinks included', async (t) => {
  const root = await mkdtemp(join(tmpdir(), 'ivroot-'));
  await mkdir(join(root, 'usr', 'share'), { recursive: true });
  await writeFile(join(root, 'usr', 'file'), '');
  await symlink('/usr/share', join(root, 'abs'));
  await symlink('../../../../usr', join(root, 'usr', 'share', 'up'));
  await symlink('/etc', join(root, 'hostetc'));
  await symlink('loop', join(root, 'loop'));
  const m = { container_path: '/v', image: { image: 'img' } as any };
  t.is(await resolveSubPath(root, 'abs', m), join(root, 'usr', 'share'));
  t.is(await resolveSubPath(root, 'usr/share/up/share', m), join(root, 'usr', 'share'));
  await t.throwsAsync(resolveSubPath(root, 'hostetc', m), { message: /does not exist in the image/ });
  await t.throwsAsync(resolveSubPath(root, 'loop', m), { message: /too many levels/ });
  await t.throwsAsync(resolveSubPath(root, 'usr/file/x', m), { message: /does not exist/ });
  await t.throwsAsync(resolveSubPath(root, 'usr/file', m), { message: /not a directory/ });
  await rm(root, { recursive: true });
});

test('a container whose conmon is gone is killed and reported exited 255; one with its conmon alive is left alone', async (t) => {
  // This test process is no conmon: a container "monitored" by it has lost its monitor.
  const env = await setup(fakeConmon({ conmonPid: process.pid }));
  const id = await env.svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig() });
  await env.svc.start(id);
  t.deepEqual(await env.svc.sweepMonitors(), [id]);
  const st = env.svc.status(id).status;
  t.is(st.state, 'CONTAINER_EXITED');
  // The fake runtime writes an exit file when it kills (a real one has no conmon left to write it).
  if (st.exit_code === 255) t.regex(st.message, /conmon\) died/);
  else t.is(st.exit_code, 137);
  const calls = (await fakeCalls(env.root)).map((c) => c.filter((a) => !a.startsWith('--')).slice(0, 2).join(' '));
  t.true(calls.some((c) => c.startsWith('kill')));
  t.true(calls.some((c) => c.startsWith('delete')));
  t.deepEqual(await env.svc.sweepMonitors(), []);
  await env.svc.remove(id);
  await env.svc.close();
  await rm(env.dir, { recursive: true });
});

test('create refuses before anything is made: log paths out of the log directory, NUL in the process, bad names, signals, resources', async (t) => {
  const env = await setup();
  const bad = async (extra: Record<string, unknown>, re: RegExp) => {
    const err = await t.throwsAsync(env.svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig('v', extra) }));
    t.is((err as any).kind, 'InvalidArgument', err!.message);
    t.regex(err!.message, re);
  };
  await bad({ log_path: '../../../../etc/cron.d/x' }, /log_path .* must name a file under the pod's log directory/);
  await bad({ log_path: '/abs.log' }, /log_path/);
  await bad({ log_path: '..' }, /log_path/);
  await bad({ log_path: 'dir/' }, /log_path/);
  await bad({ command: ['x\0y'] }, /command contains NUL/);
  await bad({ envs: [{ key: 'A', value: 'b\0' }] }, /envs contains NUL/);
  await bad({ metadata: { name: 'a/b', attempt: 0 } }, /container name "a\/b"/);
  await bad({ stop_signal: 'SIGNOPE' }, /stop_signal/);
  await bad({ linux: { resources: { cpu_period: 1 } } }, /container resources: cpu_period 1/);
  await bad({ annotations: { big: 'x'.repeat(300 * 1024) } }, /container annotations/);
  t.deepEqual(await readdir(join(env.dir, 'lib', 'containers')).catch(() => []), []);
  t.is(await readdir(join(env.dir, 'logs')).then(() => 'made', () => 'none'), 'none');
  await env.svc.close();
  await rm(env.dir, { recursive: true });
});

test('StopContainer of a container whose conmon is gone does not wait for an exit no one will write', async (t) => {
  const env = await setup(fakeConmon({ conmonPid: process.pid }));
  const id = await env.svc.create({ pod_sandbox_id: 'pod1', config: ctrConfig() });
  await env.svc.start(id);
  // An hour's grace: waiting for the exit would outlast the test's own timeout.
  await env.svc.stop(id, 3600);
  t.is(env.svc.status(id).status.state, 'CONTAINER_EXITED');
  await env.svc.remove(id);
  await env.svc.close();
  await rm(env.dir, { recursive: true });
});
