import test from 'ava';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CgroupInfo } from './detect.js';
import { applyPodLimits, createPodCgroup, limitWrites, podCgroupExists, removeCgroupDirs, sharesToWeight, sumPodLimits } from './pod.js';

test('sumPodLimits adds overhead to the containers sum; absent limits stay unlimited', (t) => {
  const l = sumPodLimits(
    { cpu_shares: '512', cpu_quota: '50000', cpu_period: '100000', memory_limit_in_bytes: '1000', memory_swap_limit_in_bytes: '3000', cpuset_cpus: '0', hugepage_limits: [{ page_size: '2MB', limit: '4194304' }], unified: { 'memory.high': '900' } },
    { cpu_shares: '10', cpu_quota: '10000', memory_limit_in_bytes: '24' },
  );
  t.is(l.cpuShares, 522n);
  t.is(l.cpuQuota, 60000n);
  t.is(l.cpuPeriod, 100000n);
  t.is(l.memoryLimit, 1024n);
  t.is(l.memorySwapLimit, 3024n);
  t.is(l.cpusetCpus, '0');
  t.deepEqual(l.hugepages, { '2MB': 4194304n });
  t.deepEqual(l.unified, { 'memory.high': '900' });
  const none = sumPodLimits(null, { memory_limit_in_bytes: '100', cpu_quota: '5' });
  t.is(none.memoryLimit, undefined);
  t.is(none.cpuQuota, undefined);
});

test('limitWrites: v1 (and hybrid) file names', (t) => {
  const l = sumPodLimits({ cpu_shares: '1024', cpu_quota: '20000', cpu_period: '100000', memory_limit_in_bytes: '1048576', memory_swap_limit_in_bytes: '2097152', cpuset_mems: '0', hugepage_limits: [{ page_size: '1GB', limit: '1073741824' }], unified: { 'memory.high': '1' } }, null);
  const expect = [
    { controller: 'cpuset', file: 'cpuset.mems', value: '0' },
    { controller: 'cpu', file: 'cpu.shares', value: '1024' },
    { controller: 'cpu', file: 'cpu.cfs_period_us', value: '100000' },
    { controller: 'cpu', file: 'cpu.cfs_quota_us', value: '20000' },
    { controller: 'memory', file: 'memory.limit_in_bytes', value: '1048576' },
    { controller: 'memory', file: 'memory.memsw.limit_in_bytes', value: '2097152' },
    { controller: 'hugetlb', file: 'hugetlb.1GB.limit_in_bytes', value: '1073741824' },
  ];
  t.deepEqual(limitWrites({ mode: 'v1' }, l), expect);
  t.deepEqual(limitWrites({ mode: 'hybrid' }, l), expect);
});

test('limitWrites: v2 file names and conversions', (t) => {
  const l = sumPodLimits({ cpu_shares: '1024', cpu_quota: '20000', cpu_period: '100000', memory_limit_in_bytes: '1048576', memory_swap_limit_in_bytes: '2097152', hugepage_limits: [{ page_size: '2MB', limit: '2097152' }], unified: { 'memory.high': '1' } }, null);
  t.deepEqual(limitWrites({ mode: 'v2' }, l), [
    { controller: 'cpu', file: 'cpu.weight', value: '39' },
    { controller: 'cpu', file: 'cpu.max', value: '20000 100000' },
    { controller: 'memory', file: 'memory.max', value: '1048576' },
    { controller: 'memory', file: 'memory.swap.max', value: '1048576' },
    { controller: 'hugetlb', file: 'hugetlb.2MB.max', value: '2097152' },
    { controller: 'memory', file: 'memory.high', value: '1' },
  ]);
  t.deepEqual(limitWrites({ mode: 'v2' }, sumPodLimits({ cpu_period: '50000' }, null)), [{ controller: 'cpu', file: 'cpu.max', value: 'max 50000' }]);
  t.is(sharesToWeight(2n), 1n);
  t.is(sharesToWeight(262144n), 10000n);
});

async function fakeRoot(t: { teardown: (f: () => Promise<void>) => void }): Promise<string> {
  const root = await fs.mkdtemp(join(tmpdir(), 'corral-cg-'));
  t.teardown(() => fs.rm(root, { recursive: true, force: true }));
  return root;
}

test('v1: creates the missing levels in every hierarchy, seeds cpuset, applies and removes only what it made', async (t) => {
  const root = await fakeRoot(t);
  for (const c of ['cpu', 'cpuset', 'memory', 'unified']) await fs.mkdir(join(root, c, 'kubepods'), { recursive: true });
  await fs.writeFile(join(root, 'cpuset', 'kubepods', 'cpuset.cpus'), '0-1\n');
  await fs.writeFile(join(root, 'cpuset', 'kubepods', 'cpuset.mems'), '0\n');
  const info: CgroupInfo = { mode: 'hybrid', driver: 'cgroupfs', root, controllers: ['cpu', 'cpuset', 'memory'], unifiedControllers: [] };
  t.false(await podCgroupExists(info, '/kubepods/pod1'));
  const created = await createPodCgroup(info, '/kubepods/pod1');
  // hybrid: the cgroup2 tree gets the pod cgroup too (runc nests containers there).
  t.deepEqual(created, ['cpu', 'cpuset', 'memory', 'unified'].map((c) => join(root, c, 'kubepods', 'pod1')));
  t.true(await podCgroupExists(info, '/kubepods/pod1'));
  t.is(await fs.readFile(join(root, 'cpuset', 'kubepods', 'pod1', 'cpuset.cpus'), 'utf8'), '0-1');
  await applyPodLimits(info, '/kubepods/pod1', sumPodLimits({ memory_limit_in_bytes: '4096', cpu_shares: '100' }, null));
  t.is(await fs.readFile(join(root, 'memory', 'kubepods', 'pod1', 'memory.limit_in_bytes'), 'utf8'), '4096');
  t.is(await fs.readFile(join(root, 'cpu', 'kubepods', 'pod1', 'cpu.shares'), 'utf8'), '100');
  await removeCgroupDirs(created);
  for (const c of ['cpu', 'cpuset', 'memory', 'unified']) {
    t.false(await fs.access(join(root, c, 'kubepods', 'pod1')).then(() => true, () => false));
    t.true(await fs.access(join(root, c, 'kubepods')).then(() => true, () => false));
  }
});

test('v2: enables controllers on the way down and writes the v2 files', async (t) => {
  const root = await fakeRoot(t);
  await fs.writeFile(join(root, 'cgroup.controllers'), 'cpu memory pids io\n');
  await fs.writeFile(join(root, 'cgroup.subtree_control'), '');
  const info: CgroupInfo = { mode: 'v2', driver: 'systemd', root, controllers: ['cpu', 'memory', 'pids', 'io'], unifiedControllers: [] };
  const path = '/kubepods.slice/kubepods-pod2.slice';
  const created = await createPodCgroup(info, path);
  t.deepEqual(created, [join(root, 'kubepods.slice'), join(root, 'kubepods.slice', 'kubepods-pod2.slice')]);
  t.is(await fs.readFile(join(root, 'cgroup.subtree_control'), 'utf8'), '+cpu +memory +pids +io');
  await applyPodLimits(info, path, sumPodLimits({ memory_limit_in_bytes: '8192', cpu_quota: '1000', cpu_period: '10000' }, null));
  t.is(await fs.readFile(join(root, 'kubepods.slice', 'kubepods-pod2.slice', 'memory.max'), 'utf8'), '8192');
  t.is(await fs.readFile(join(root, 'kubepods.slice', 'kubepods-pod2.slice', 'cpu.max'), 'utf8'), '1000 10000');
  await removeCgroupDirs(created);
  t.deepEqual((await fs.readdir(root)).sort(), ['cgroup.controllers', 'cgroup.subtree_control']);
});
