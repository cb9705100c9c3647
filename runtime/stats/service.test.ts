import test from 'ava';
import { tmpdir } from 'node:os';
import { fileURLToPath } from 'node:url';
import { CgroupStatsReader } from '../cgroups/stats.js';
import type { ContainerView } from '../container/types.js';
import type { SandboxView } from '../sandbox/service.js';
import { silentLogger } from '../util/log.js';
import { StatsService, cgroupPathOf } from './service.js';

const V2 = fileURLToPath(new URL('../../../runtime/cgroups/testdata/v2/', import.meta.url));

function container(id: string, podId: string, cgroupsPath: string, extra: Partial<ContainerView> = {}): ContainerView {
  return {
    id, podId, name: `k8s_${id}`, metadata: { name: id, attempt: 0 }, state: 'RUNNING', labels: { app: id }, annotations: {}, startedAt: '1700000000123456789',
    spec: { linux: { cgroupsPath } }, ...extra,
  } as unknown as ContainerView;
}

function pod(id: string, cgroupPath: string, net?: string): SandboxView {
  return {
    id, name: `k8s_POD_${id}`, state: 'READY', cgroupPath, cgroupParent: cgroupPath,
    namespaces: net ? { net } : {},
    config: { metadata: { name: id, uid: `uid-${id}`, namespace: 'default', attempt: 1 }, labels: { pod: id }, annotations: {} },
  } as unknown as SandboxView;
}

function setup(opts: { podCgroup?: string; onlyLo?: boolean } = {}) {
  let mono = 1_000_000_000n;
  const reader = new CgroupStatsReader({ mode: 'v2', root: V2, now: () => ({ wall: 1_700_000_000_000_000_000n, mono }), procRoot: fileURLToPath(new URL('../../../runtime/cgroups/testdata/proc/', import.meta.url)) });
  const containers = [
    container('c1', 'p1', '/kubepods/pod1/ctr1'),
    container('c2', 'p1', '/kubepods/pod1/ctr1'),
    container('c3', 'p1', '/kubepods/pod1/ctr1', { state: 'EXITED' }),
  ];
  const pods = [pod('p1', opts.podCgroup ?? '', '/run/netns/p1')];
  const svc = new StatsService({
    cgroups: { mode: 'v2', root: V2, driver: 'cgroupfs' },
    reader,
    logger: silentLogger(),
    containers: { listViews: () => containers, find: (id) => containers.find((c) => c.id.startsWith(id)) },
    sandboxes: {
      list: () => pods.map((p) => ({ id: p.id })),
      find: (id) => pods.find((p) => p.id.startsWith(id)),
    },
    // A real directory: metrics statfs the layer's filesystem.
    layers: { rootfsUsage: async () => ({ bytes: 8192, inodes: 3, mountpoint: tmpdir() }) },
    netns: {
      read: async () => [
        { name: 'lo', rxBytes: 1n, rxPackets: 1n, rxErrors: 0n, rxDropped: 0n, txBytes: 1n, txPackets: 1n, txErrors: 0n, txDropped: 0n },
        ...(opts.onlyLo ? [] : [{ name: 'eth0', rxBytes: 1500n, rxPackets: 3n, rxErrors: 1n, rxDropped: 0n, txBytes: 700n, txPackets: 2n, txErrors: 2n, txDropped: 0n }]),
      ],
    },
  });
  return { svc, advance: (ns: bigint) => { mono += ns; } };
}

test('ContainerStats: cgroup numbers in the proto shape, writable layer, rate from the second call', async (t) => {
  const { svc, advance } = setup();
  const s = await svc.containerStats('c1');
  t.deepEqual(s.attributes, { id: 'c1', metadata: { name: 'c1', attempt: 0 }, labels: { app: 'c1' }, annotations: {} });
  t.is(s.cpu?.usage_core_nano_seconds?.value, '140000000');
  t.is(s.cpu?.usage_nano_cores, null);
  t.is(s.cpu?.timestamp, '1700000000000000000');
  t.is(s.cpu?.psi?.Some?.Total, '121510908');
  t.is(s.memory?.working_set_bytes?.value, String(8859648 - 122880));
  t.is(s.memory?.available_bytes?.value, String(67108864 - (8859648 - 122880)));
  t.is(s.memory?.rss_bytes?.value, '110592');
  t.is(s.memory?.page_faults?.value, '954');
  t.is(s.memory?.major_page_faults?.value, '2');
  t.deepEqual(s.writable_layer?.used_bytes, { value: '8192' });
  t.deepEqual(s.writable_layer?.inodes_used, { value: '3' });
  t.is(s.swap?.swap_usage_bytes?.value, '4096');
  t.is(s.swap?.swap_available_bytes, null);
  t.truthy(s.io?.psi);
  // The fake counters do not move, so the rate after 1 s is zero: present, not missing.
  advance(1_000_000_000n);
  t.deepEqual((await svc.containerStats('c1')).cpu?.usage_nano_cores, { value: '0' });
  await t.throwsAsync(svc.containerStats('zz'), { message: /container "zz" not found/ });
});

test('a pod netns with only lo (eth0 gone after StopPodSandbox) has no network figures, never a network without default_interface', async (t) => {
  const { svc } = setup({ onlyLo: true });
  const s = await svc.podSandboxStats('p1');
  t.is(s.linux?.network, null);
  for (const p of await svc.listPodSandboxStats()) t.true(p.linux?.network === null || !!p.linux?.network?.default_interface);
});

test('ListContainerStats: running and created only, filters by id prefix, pod and labels', async (t) => {
  const { svc } = setup();
  t.deepEqual((await svc.listContainerStats()).map((s) => s.attributes?.id), ['c1', 'c2']);
  t.deepEqual((await svc.listContainerStats({ id: 'c2', pod_sandbox_id: '', label_selector: {} })).map((s) => s.attributes?.id), ['c2']);
  t.deepEqual((await svc.listContainerStats({ id: '', pod_sandbox_id: 'p', label_selector: { app: 'c1' } })).map((s) => s.attributes?.id), ['c1']);
  t.deepEqual(await svc.listContainerStats({ id: '', pod_sandbox_id: 'nope', label_selector: {} }), []);
});

test('PodSandboxStats without a pod cgroup sums its containers; network from the netns', async (t) => {
  const { svc } = setup();
  const s = await svc.podSandboxStats('p1');
  t.deepEqual(s.attributes?.metadata, { name: 'p1', uid: 'uid-p1', namespace: 'default', attempt: 1 });
  t.is(s.linux?.cpu?.usage_core_nano_seconds?.value, '280000000');
  t.is(s.linux?.memory?.working_set_bytes?.value, String(2 * (8859648 - 122880)));
  t.is(s.linux?.memory?.available_bytes, null);
  t.is(s.linux?.process?.process_count?.value, '4');
  t.deepEqual(s.linux?.containers?.map((c) => c.attributes?.id), ['c1', 'c2']);
  t.deepEqual(s.linux?.network?.default_interface, { name: 'eth0', rx_bytes: { value: '1500' }, rx_errors: { value: '1' }, tx_bytes: { value: '700' }, tx_errors: { value: '2' } });
  t.is(s.linux?.network?.interfaces?.length, 1);
});

test('PodSandboxStats with a pod cgroup reads it', async (t) => {
  const { svc } = setup({ podCgroup: '/kubepods/pod1/ctr1' });
  const [s] = await svc.listPodSandboxStats();
  t.is(s?.linux?.cpu?.usage_core_nano_seconds?.value, '140000000');
  t.is(s?.linux?.memory?.available_bytes?.value, String(67108864 - (8859648 - 122880)));
  t.is(s?.linux?.process?.process_count?.value, '2');
});

test('cgroupPathOf: cgroupfs paths and systemd slice:prefix:name', (t) => {
  t.is(cgroupPathOf('/kubepods/besteffort/pod1/corral-abc', 'cgroupfs'), '/kubepods/besteffort/pod1/corral-abc');
  t.is(cgroupPathOf('kubepods-besteffort-pod1.slice:corral:abc', 'systemd'), '/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/corral-abc.scope');
  t.is(cgroupPathOf('system.slice:corral:abc', 'systemd'), '/system.slice/corral-abc.scope');
});

test('metrics: every sample names a descriptor and carries its label values, cAdvisor names', async (t) => {
  const { svc } = setup({ podCgroup: '/kubepods/pod1/ctr1' });
  const descs = svc.listMetricDescriptors();
  const byName = new Map(descs.map((d) => [d.name, d]));
  t.is(byName.size, descs.length, 'names are unique');
  t.deepEqual(byName.get('container_cpu_usage_seconds_total')?.label_keys, ['container', 'id', 'image', 'name', 'namespace', 'pod', 'cpu']);
  const [pm] = await svc.listPodSandboxMetrics();
  t.is(pm?.pod_sandbox_id, 'p1');
  const samples = [...(pm?.metrics ?? []), ...(pm?.container_metrics ?? []).flatMap((c) => c.metrics ?? [])];
  for (const m of samples) {
    const d = byName.get(m.name!);
    t.truthy(d, m.name);
    t.is(m.label_values?.length, d?.label_keys?.length, m.name);
  }
  t.deepEqual(pm?.container_metrics?.map((c) => c.container_id), ['c1', 'c2']);
  const c1 = pm!.container_metrics![0]!.metrics!;
  const ws = c1.find((m) => m.name === 'container_memory_working_set_bytes')!;
  t.deepEqual(ws.label_values, ['c1', '/kubepods/pod1/ctr1', '', 'k8s_c1', 'default', 'p1']);
  t.deepEqual(ws.value, { value: String(8859648 - 122880) });
  t.is(ws.metric_type, 'GAUGE');
  t.is(c1.find((m) => m.name === 'container_cpu_usage_seconds_total')?.metric_type, 'COUNTER');
  t.deepEqual(c1.find((m) => m.name === 'container_fs_usage_bytes')?.value, { value: '8192' });
  const rx = pm!.metrics!.filter((m) => m.name === 'container_network_receive_bytes_total');
  t.deepEqual(rx.map((m) => [m.label_values?.[6], m.value?.value]), [['eth0', '1500']]);
  t.true(pm!.metrics!.some((m) => m.name === 'container_processes'));
});

test('metrics: every descriptor has a sample, as critest checks (bar the ones that need PSI, a quota or a reservation)', async (t) => {
  const { svc } = setup({ podCgroup: '/kubepods/pod1/ctr1' });
  const [pm] = await svc.listPodSandboxMetrics();
  const seen = new Set([...(pm?.metrics ?? []), ...(pm?.container_metrics ?? []).flatMap((c) => c.metrics ?? [])].map((m) => m.name));
  const mayLack = /^container_pressure_|^container_spec_cpu_quota$|^container_spec_memory_reservation_limit_bytes$/;
  const missing = svc.listMetricDescriptors().map((d) => d.name!).filter((n) => !seen.has(n) && !mayLack.test(n));
  t.deepEqual(missing, []);
});
