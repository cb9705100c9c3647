import test from 'ava';
import { existsSync, promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultConfig, type Config } from '../config.js';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError } from '../errors.js';
import { FakeSyscalls } from '../linux/fake.js';
import { silentLogger } from '../util/log.js';
import type { CgroupInfo } from '../cgroups/detect.js';
import { SandboxService, sortIps, type SandboxConfig } from './service.js';
import { FakeContainers, FakeNetwork, FakePinner, leftovers } from './testing.js';

interface Env {
  svc: SandboxService;
  config: Config;
  pinner: FakePinner;
  network: FakeNetwork;
  sys: FakeSyscalls;
  cgroups: CgroupInfo;
  base: string;
  reopen(): Promise<SandboxService>;
}

async function env(t: { teardown: (f: () => Promise<void>) => void }): Promise<Env> {
  const base = await fs.mkdtemp(join(tmpdir(), 'corral-sb-'));
  t.teardown(() => fs.rm(base, { recursive: true, force: true }));
  const config = defaultConfig();
  config.root_dir = join(base, 'root');
  config.state_dir = join(base, 'run');
  const cgRoot = join(base, 'cgroup');
  for (const c of ['cpu', 'memory']) await fs.mkdir(join(cgRoot, c), { recursive: true });
  const cgroups: CgroupInfo = { mode: 'v1', driver: 'cgroupfs', root: cgRoot, controllers: ['cpu', 'memory'], unifiedControllers: [] };
  const pinner = new FakePinner();
  const network = new FakeNetwork();
  const sys = new FakeSyscalls();
  const make = () => SandboxService.create({
    config, logger: silentLogger(), syscalls: sys, cgroups, network, pinner, hostHostname: 'node1',
    createUserns: pinner.createUserns, userNamespaces: (h) => h !== 'runc',
  });
  return { svc: await make(), config, pinner, network, sys, cgroups, base, reopen: make };
}

function podConfig(over: Partial<SandboxConfig> = {}, name = 'web'): SandboxConfig {
  return {
    metadata: { name, uid: `uid-${name}`, namespace: 'default', attempt: 0 },
    hostname: name,
    log_directory: '',
    dns_config: { servers: ['10.96.0.10'], searches: ['svc.cluster.local'], options: ['ndots:5'] },
    port_mappings: [],
    labels: { app: name },
    annotations: { a: '1' },
    linux: {
      cgroup_parent: '',
      security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD', target_id: '', userns_options: null } } as never,
      sysctls: {},
      overhead: null,
      resources: null,
    },
    windows: null,
    ...over,
  };
}

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(() => true, () => false);
}

test('run: pins, sets up the network, writes files, mounts shm; status and view report it', async (t) => {
  const { svc, pinner, network, sys, config } = await env(t);
  const cfg = podConfig();
  cfg.linux!.sysctls = { 'net.ipv4.ip_unprivileged_port_start': '0', 'kernel.shmmax': '65536' };
  const id = await svc.run(cfg, '');
  t.regex(id, /^[0-9a-f]{64}$/);
  const v = svc.get(id.slice(0, 8));
  t.is(v.state, 'READY');
  t.is(v.name, 'k8s_POD_web_default_uid-web_0');
  t.is(v.runtimeHandler, config.default_runtime);
  t.deepEqual(v.ips, ['10.0.0.2', 'fd00::2']);
  t.deepEqual(Object.keys(v.namespaces).sort(), ['ipc', 'net', 'uts']);
  t.is(v.namespaces.pid, undefined);
  t.is(pinner.pinned.size, 3);
  t.deepEqual(pinner.requests[0]!.sysctls, [['kernel/shmmax', '65536'], ['net/ipv4/ip_unprivileged_port_start', '0']]);
  t.is(pinner.requests[0]!.hostname, 'web');
  t.is(await fs.readFile(v.files.resolvConf, 'utf8'), 'search svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n');
  t.regex(await fs.readFile(v.files.hosts, 'utf8'), /10\.0\.0\.2\tweb\n/);
  t.is(await fs.readFile(v.files.hostname, 'utf8'), 'web\n');
  // Beside the pins, on the state dir (a tmpfs on a node); the record's dir holds only the record.
  const runDir = join(config.state_dir, 'sandboxes', id);
  t.deepEqual([v.files.hosts, v.files.resolvConf, v.files.hostname], ['hosts', 'resolv.conf', 'hostname'].map((f) => join(runDir, f)));
  t.deepEqual(await fs.readdir(join(config.root_dir, 'sandboxes')), ['records.log']);
  t.truthy(v.files.shm);
  const mount = sys.calls.find((c) => c.name === 'mount')!;
  t.deepEqual(mount.args, ['shm', v.files.shm, 'tmpfs', 0x2 | 0x4 | 0x8, `mode=1777,size=${64 * 1024 * 1024}`]);
  t.true(network.up.has(id));

  const st = svc.status(id, true);
  t.is(st.status?.state, 'SANDBOX_READY');
  t.is(st.status?.network?.ip, '10.0.0.2');
  t.deepEqual(st.status?.network?.additional_ips, [{ ip: 'fd00::2' }]);
  t.deepEqual(st.status?.linux?.namespaces?.options, { network: 'POD', pid: 'CONTAINER', ipc: 'POD', target_id: '' });
  t.deepEqual(st.status?.labels, { app: 'web' });
  t.is(st.status?.runtime_handler, '', 'reported as requested; the view has the resolved one');
  t.regex(String(st.status?.created_at ?? ''), /^\d{19}$/);
  const info = JSON.parse(st.info!.info!);
  t.is(info.namespaces.net, v.namespaces.net);
  t.deepEqual(info.network.cniResult.ips.length, 2);
});

test('run: invalid input is refused before anything is created', async (t) => {
  const { svc, pinner, network } = await env(t);
  await t.throwsAsync(svc.run(podConfig({ metadata: { name: 'x', uid: '', namespace: 'd', attempt: 0 } })), { instanceOf: InvalidArgumentError, message: /metadata\.uid/ });
  const hostNet = podConfig();
  hostNet.linux!.security_context = { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD', target_id: '' } } as never;
  hostNet.linux!.sysctls = { 'net.core.somaxconn': '1024' };
  await t.throwsAsync(svc.run(hostNet), { instanceOf: InvalidArgumentError, message: /net\.core\.somaxconn/ });
  await t.throwsAsync(svc.run(podConfig(), 'nope'), { instanceOf: InvalidArgumentError, message: /runtime handler "nope"/ });
  await t.throwsAsync(svc.run(podConfig({ hostname: 'x'.repeat(70) })), { instanceOf: InvalidArgumentError, message: /hostname/ });
  t.regex(await svc.run(podConfig()), /^[0-9a-f]{64}$/, 'a refused request holds no name');
  await svc.remove(svc.list()[0]!.id as string);
  t.is(pinner.requests.length, 1);
  t.is(network.calls.length, 2);
  t.deepEqual(svc.list(), []);
});

test('run: a failing step undoes every earlier one and the name is free again', async (t) => {
  const { svc, pinner, network, sys, config } = await env(t);
  const cfg = podConfig();
  cfg.linux!.cgroup_parent = '/kubepods/podfail';
  network.fail = new Error('plugin bridge failed: no IP addresses available');
  await t.throwsAsync(svc.run(cfg), { message: /no IP addresses/ });
  t.is(pinner.pinned.size, 0);
  t.deepEqual(network.calls.map((c) => c.split(' ')[0]), ['add', 'del']);
  t.deepEqual(await leftovers(svc, join(config.root_dir, 'sandboxes')), []);
  t.deepEqual(await leftovers(svc, join(config.state_dir, 'sandboxes')), []);
  t.false(await exists(join(svc['deps'].cgroups.root, 'memory', 'kubepods', 'podfail')));
  t.is(sys.calls.filter((c) => c.name === 'mount').length, 0);
  // A sysctl refused by the kernel is InvalidArgument naming it, with the same cleanup.
  network.fail = undefined;
  pinner.refuseSysctl = 'net/ipv4/tcp_nope';
  cfg.linux!.sysctls = { 'net.ipv4.tcp_nope': '1' };
  await t.throwsAsync(svc.run(cfg), { instanceOf: InvalidArgumentError, message: /net\.ipv4\.tcp_nope/ });
  t.deepEqual(await leftovers(svc, join(config.root_dir, 'sandboxes')), []);
  // The name was released: a good config now works.
  cfg.linux!.sysctls = {};
  t.regex(await svc.run(cfg), /^[0-9a-f]{64}$/);
});

test('name reservation: a retry while the first runs joins it; READY returns the id; NOTREADY holds the name', async (t) => {
  const { svc, pinner, network } = await env(t);
  let release!: () => void;
  const opened = new Promise<void>((r) => { release = r; });
  pinner.gate = () => opened;
  const first = svc.run(podConfig());
  const second = svc.run(podConfig());
  await new Promise((r) => setTimeout(r, 20));
  t.deepEqual(svc.list(), [], 'a sandbox being created is not listed');
  release();
  const [a, b] = await Promise.all([first, second]);
  t.is(a, b);
  t.is(pinner.requests.length, 1);
  t.is(network.calls.length, 1);
  t.is(await svc.run(podConfig()), a);
  await svc.stop(a);
  await t.throwsAsync(svc.run(podConfig()), { instanceOf: AlreadyExistsError, message: new RegExp(`k8s_POD_web_default_uid-web_0.*${a}`) });
  // Another attempt number is another name.
  const c = podConfig();
  c.metadata!.attempt = 1;
  t.not(await svc.run(c), a);
});

test('name reservation: a retry of a failed first call tries anew', async (t) => {
  const { svc, pinner, network } = await env(t);
  let release!: () => void;
  const opened = new Promise<void>((r) => { release = r; });
  pinner.gate = () => opened;
  network.fail = new Error('transient');
  const first = svc.run(podConfig());
  await new Promise((r) => setTimeout(r, 10));
  const second = svc.run(podConfig());
  pinner.gate = undefined;
  const firstDone = first.catch((e: Error) => e);
  release();
  t.is(((await firstDone) as Error).message, 'transient');
  t.regex(await second, /^[0-9a-f]{64}$/);
});

test('stop and remove: containers first, network down, shm unmounted; idempotent; unknown ids succeed', async (t) => {
  const { svc, pinner, network, sys, config } = await env(t);
  const containers = new FakeContainers();
  svc.setContainers(containers);
  const id = await svc.run(podConfig());
  const shm = svc.get(id).files.shm!;
  await svc.stop(id);
  await svc.stop(id);
  t.deepEqual(containers.calls, [`stop ${id} 0`, `stop ${id} 0`]);
  t.deepEqual(network.calls, [`add ${id}`, `del ${id}`]);
  t.is(svc.get(id).state, 'NOTREADY');
  t.deepEqual(svc.get(id).ips, []);
  t.deepEqual(sys.calls.filter((c) => c.name === 'umount2').map((c) => c.args[0]), [shm]);
  t.is(svc.status(id).status?.state, 'SANDBOX_NOTREADY');
  await svc.remove(id);
  await svc.remove(id);
  await svc.stop('0123456789');
  t.true(containers.calls.includes(`remove ${id}`));
  t.is(pinner.pinned.size, 0);
  t.throws(() => svc.get(id), { instanceOf: NotFoundError });
  t.throws(() => svc.status(id), { instanceOf: NotFoundError });
  t.deepEqual(await leftovers(svc, join(config.root_dir, 'sandboxes')), []);
  t.deepEqual(await leftovers(svc, join(config.state_dir, 'sandboxes')), []);
  // The name is free after removal.
  t.not(await svc.run(podConfig()), id);
});

test('events: run reports created and started, the first stop stopped, remove deleted; in order', async (t) => {
  const { svc } = await env(t);
  const seen: string[] = [];
  const off = svc.onEvent((e) => seen.push(`${e.type} ${e.podId}`));
  const id = await svc.run(podConfig());
  await svc.stop(id);
  await svc.stop(id);
  await svc.remove(id);
  await svc.remove(id);
  off();
  await svc.run(podConfig({}, 'other'));
  t.deepEqual(seen, ['CONTAINER_CREATED_EVENT', 'CONTAINER_STARTED_EVENT', 'CONTAINER_STOPPED_EVENT', 'CONTAINER_DELETED_EVENT'].map((e) => `${e} ${id}`));
});

test('host network and host ipc: no pins for them, no CNI, host hostname, no shm', async (t) => {
  const { svc, pinner, network } = await env(t);
  const cfg = podConfig({ dns_config: null });
  cfg.linux!.security_context = { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'NODE', target_id: '' } } as never;
  const id = await svc.run(cfg);
  const v = svc.get(id);
  t.deepEqual(v.namespaces, {});
  t.is(v.hostname, 'node1');
  t.is(v.files.shm, undefined);
  t.is(pinner.requests.length, 0);
  t.deepEqual(network.calls, []);
  t.is(await fs.readFile(v.files.resolvConf, 'utf8'), await fs.readFile('/etc/resolv.conf', 'utf8').catch(() => ''));
  const onlyIpc = podConfig({}, 'other');
  onlyIpc.linux!.security_context = { namespace_options: { network: 'NODE', pid: 'CONTAINER', ipc: 'POD', target_id: '' } } as never;
  const id2 = await svc.run(onlyIpc);
  t.deepEqual(Object.keys(svc.get(id2).namespaces), ['ipc']);
  t.is(pinner.requests[0]!.hostname, undefined);
});

test('list filters by id prefix, state and labels; oldest first', async (t) => {
  const { svc } = await env(t);
  const a = await svc.run(podConfig({}, 'a'));
  const b = await svc.run(podConfig({}, 'b'));
  await svc.stop(b);
  t.deepEqual(svc.list().map((p) => p.id), [a, b]);
  t.deepEqual(svc.list({ id: a.slice(0, 6), state: null, label_selector: {} }).map((p) => p.id), [a]);
  t.deepEqual(svc.list({ id: '', state: { state: 'SANDBOX_NOTREADY' }, label_selector: {} }).map((p) => p.id), [b]);
  t.deepEqual(svc.list({ id: '', state: null, label_selector: { app: 'a' } }).map((p) => p.id), [a]);
  t.deepEqual(svc.list({ id: '', state: null, label_selector: { app: 'a', x: 'y' } }), []);
  const item = svc.list()[0]!;
  t.is(item.metadata?.name, 'a');
  t.is(item.state, 'SANDBOX_READY');
  t.deepEqual(item.annotations, { a: '1' });
});

test('pod cgroup: created with limits when missing, updated, removed with the pod; left alone when it exists', async (t) => {
  const { svc, cgroups } = await env(t);
  const cfg = podConfig();
  cfg.linux!.cgroup_parent = '/kubepods/burstable/pod1';
  cfg.linux!.resources = { memory_limit_in_bytes: '1000', cpu_shares: '100' } as never;
  cfg.linux!.overhead = { memory_limit_in_bytes: '24' } as never;
  const id = await svc.run(cfg);
  const v = svc.get(id);
  t.is(v.cgroupParent, '/kubepods/burstable/pod1');
  const mem = join(cgroups.root, 'memory', 'kubepods', 'burstable', 'pod1');
  t.is(await fs.readFile(join(mem, 'memory.limit_in_bytes'), 'utf8'), '1024');
  await svc.updateResources(id, null, { memory_limit_in_bytes: '2000' });
  t.is(await fs.readFile(join(mem, 'memory.limit_in_bytes'), 'utf8'), '2000');
  await svc.remove(id);
  t.false(await exists(join(cgroups.root, 'memory', 'kubepods')));

  await fs.mkdir(join(cgroups.root, 'memory', 'kubelet-made', 'pod2'), { recursive: true });
  const cfg2 = podConfig({}, 'two');
  cfg2.linux!.cgroup_parent = '/kubelet-made/pod2';
  cfg2.linux!.resources = { memory_limit_in_bytes: '1000' } as never;
  const id2 = await svc.run(cfg2);
  t.false(await exists(join(cgroups.root, 'memory', 'kubelet-made', 'pod2', 'memory.limit_in_bytes')));
  await svc.updateResources(id2, null, { memory_limit_in_bytes: '5' });
  await svc.remove(id2);
  t.true(await exists(join(cgroups.root, 'memory', 'kubelet-made', 'pod2')));
  await t.throwsAsync(svc.updateResources('ffff', null, null), { instanceOf: NotFoundError });
});

test('restart: READY sandboxes come back with their names; lost pins mean NOTREADY; crashed creates are undone', async (t) => {
  const e = await env(t);
  const id = await e.svc.run(podConfig());
  const lost = await e.svc.run(podConfig({}, 'lost'));
  // A create cut short after pinning: persisted as creating.
  let entered!: () => void;
  const inPin = new Promise<void>((r) => { entered = r; });
  e.pinner.gate = () => { entered(); return new Promise(() => undefined); };
  void e.svc.run(podConfig({}, 'crashed'));
  await inPin;
  e.pinner.gate = undefined;
  // Its record is written while it pins: wait for the record.
  let crashedId: string | undefined;
  for (let i = 0; i < 100 && !crashedId; i++) {
    const ids = (await fs.readFile(join(e.config.root_dir, 'sandboxes', 'records.log'), 'latin1')).match(/"id":"[0-9a-f]{64}"/g) ?? [];
    crashedId = ids.map((m) => m.slice(6, -1)).find((d) => d !== id && d !== lost);
    if (!crashedId) await new Promise((r) => setTimeout(r, 10));
  }
  if (!crashedId) return t.fail('the interrupted create left no record');
  // "Reboot" for one pod: its pins vanish.
  for (const p of Object.values(e.svc.get(lost).namespaces)) e.pinner.pinned.delete(p!);

  const svc2 = await e.reopen();
  t.is(svc2.get(id).state, 'READY');
  t.deepEqual(svc2.get(id).ips, ['10.0.0.2', 'fd00::2']);
  t.is(await svc2.run(podConfig()), id);
  t.is(svc2.get(lost).state, 'NOTREADY');
  t.is(svc2.find(crashedId), undefined);
  t.is(svc2.find(crashedId), undefined);
  t.true(e.network.calls.includes(`del ${crashedId}`));
  await svc2.remove(id);
  await svc2.remove(lost);
  t.false(e.network.up.has(id));
});

test('restart: records of the older one-directory-per-pod form are taken into the log; their pod files stay where they were', async (t) => {
  const e = await env(t);
  const id = await e.svc.run(podConfig());
  const v = e.svc.get(id);
  // The same pod as an older daemon would have left it: meta.json and status.json in a
  // directory of its own, its files beside them, no filesDir in the meta.
  const recDir = join(e.config.root_dir, 'sandboxes', id);
  const meta = { ...(e.svc as unknown as { store: { get(id: string): { meta: Record<string, unknown>; status: unknown } } }).store.get(id)!.meta };
  const status = (e.svc as unknown as { store: { get(id: string): { status: unknown } } }).store.get(id)!.status;
  delete meta.filesDir;
  await e.svc.close();
  await fs.rm(join(e.config.root_dir, 'sandboxes', 'records.log'));
  await fs.mkdir(recDir, { recursive: true });
  await fs.writeFile(join(recDir, 'meta.json'), JSON.stringify(meta));
  await fs.writeFile(join(recDir, 'status.json'), JSON.stringify(status));
  await fs.copyFile(v.files.hosts, join(recDir, 'hosts'));
  // And a create of that daemon that crashed before its record: a directory without meta.json.
  const crashed = 'cd'.repeat(32);
  await fs.mkdir(join(e.config.root_dir, 'sandboxes', crashed));

  const svc2 = await e.reopen();
  const v2 = svc2.get(id);
  t.is(v2.state, 'READY');
  t.is(v2.files.hosts, join(recDir, 'hosts'));
  t.deepEqual((await fs.readdir(recDir)).sort(), ['hosts']);
  t.false(await exists(join(e.config.root_dir, 'sandboxes', crashed)));
  // Taken in for good: a third start reads it from the log alone.
  await svc2.close();
  const svc3 = await e.reopen();
  t.is(svc3.get(id).state, 'READY');
  await svc3.remove(id);
  t.deepEqual(await leftovers(svc3, join(e.config.root_dir, 'sandboxes')), []);
});

test('restart: a run dir without a record (a create cut short before writing it) is swept', async (t) => {
  const e = await env(t);
  const orphan = 'ab'.repeat(32);
  const pin = join(e.config.state_dir, 'sandboxes', orphan, 'ns', 'ipc');
  await fs.mkdir(join(pin, '..'), { recursive: true });
  await fs.writeFile(pin, '');
  e.pinner.pinned.add(pin);
  const svc2 = await e.reopen();
  t.false(e.pinner.pinned.has(pin));
  t.deepEqual(await leftovers(svc2, join(e.config.state_dir, 'sandboxes')), []);
});

test('sortIps puts IPv4 first', (t) => {
  t.deepEqual(sortIps(['fd00::1', '10.0.0.1', 'fe80::2', '192.168.0.1']), ['10.0.0.1', '192.168.0.1', 'fd00::1', 'fe80::2']);
});

test('user namespace POD: made with its maps, net/ipc/uts joined for hostname and sysctls, pinned and unpinned with the pod', async (t) => {
  const e = await env(t);
  const map = [{ container_id: 0, host_id: 231072, length: 65536 }];
  const cfg = podConfig({ linux: { ...podConfig().linux!, sysctls: { 'net.ipv4.ip_forward': '1' }, security_context: { namespace_options: { network: 'POD', pid: 'CONTAINER', ipc: 'POD', target_id: '', userns_options: { mode: 'POD', uids: map, gids: map } } } as never } });
  const id = await e.svc.run(cfg);
  const v = e.svc.get(id)!;
  const ns = join(e.config.state_dir, 'sandboxes', id, 'ns');
  t.deepEqual(v.namespaces, { user: join(ns, 'user'), net: join(ns, 'net'), ipc: join(ns, 'ipc'), uts: join(ns, 'uts') });
  t.deepEqual(v.namespaceModes.userns, { uids: [{ containerId: 0, hostId: 231072, length: 65536 }], gids: [{ containerId: 0, hostId: 231072, length: 65536 }] });
  const req = e.pinner.requests.at(-1)!;
  t.deepEqual(req.join, { net: join(ns, 'net'), ipc: join(ns, 'ipc'), uts: join(ns, 'uts') });
  t.is(req.hostname, 'web');
  t.deepEqual(req.sysctls, [['net/ipv4/ip_forward', '1']]);
  await e.svc.stop(id);
  await e.svc.remove(id);
  t.deepEqual([...e.pinner.pinned], []);
  await t.throwsAsync(e.svc.run(cfg, 'runc'), { instanceOf: FailedPreconditionError, message: /handler "runc" cannot run pods in a user namespace/ });
  t.deepEqual([...e.pinner.pinned], []);
});
