import test from 'ava';
import { InvalidArgumentError } from '../../errors.js';
import type { LinuxContainerResources__Output } from '../../../proto/gen/runtime/v1/LinuxContainerResources.js';
import type { ContainerSpecInput, SpecDeps } from './context.js';
import { containerConfig, fakeDeps, specContext, specInput } from './fixtures.js';
import { ociResourcesFromCri, withCgroupsPath, withOomScoreAdj, withResources, withSysctls } from './resources.js';
import { ALL_CAPABILITIES } from './capabilities.js';

async function resources(r: Partial<LinuxContainerResources__Output> | undefined, over: Partial<ContainerSpecInput> = {}, deps: Partial<SpecDeps> = {}) {
  const { spec, ctx } = specContext(specInput({ config: containerConfig({ command: ['x'] }, {}, r), ...over }), fakeDeps({}, deps));
  await withCgroupsPath(spec, ctx);
  await withResources(spec, ctx);
  await withOomScoreAdj(spec, ctx);
  return { spec, ctx };
}

test('resources: none asked: only the cgroups path and oom_score_adj 0', async (t) => {
  const { spec } = await resources(undefined);
  t.is(spec.linux.cgroupsPath, '/kubepods/pod1/c1');
  t.deepEqual(spec.linux.resources, {});
  t.is(spec.process.oomScoreAdj, 0);
});

test('resources: cpu, memory, cpuset, hugepages, unified on v2', async (t) => {
  const { spec, ctx } = await resources({
    cpu_period: '100000', cpu_quota: '50000', cpu_shares: '512', memory_limit_in_bytes: '67108864',
    cpuset_cpus: '0-1', cpuset_mems: '0', hugepage_limits: [{ page_size: '2MB', limit: '4194304' }],
    unified: { 'memory.high': '60000000' }, oom_score_adj: '500',
  });
  t.deepEqual(spec.linux.resources, {
    cpu: { shares: 512, quota: 50000, period: 100000, cpus: '0-1', mems: '0' },
    memory: { limit: 67108864, swap: 67108864 },
    hugepageLimits: [{ pageSize: '2MB', limit: 4194304 }],
    unified: { 'memory.high': '60000000' },
  });
  t.is(spec.process.oomScoreAdj, 500);
  t.deepEqual(ctx.warnings, []);
});

test('resources: swap limit given, and swap lower than memory refused', async (t) => {
  const { spec } = await resources({ memory_limit_in_bytes: '1000', memory_swap_limit_in_bytes: '3000' });
  t.deepEqual(spec.linux.resources?.memory, { limit: 1000, swap: 3000 });
  await t.throwsAsync(resources({ memory_limit_in_bytes: '3000', memory_swap_limit_in_bytes: '1000' }), { instanceOf: InvalidArgumentError });
});

test('resources: no swap accounting: no swap field, a warning if one was asked for', async (t) => {
  const { spec, ctx } = await resources({ memory_limit_in_bytes: '1000', memory_swap_limit_in_bytes: '3000' }, { cgroupMode: 'v1' }, { swapAccounting: async () => false });
  t.deepEqual(spec.linux.resources?.memory, { limit: 1000 });
  t.regex(ctx.warnings.join(), /swap/);
});

test('resources: unified ignored with a warning on v1 and hybrid', async (t) => {
  const { spec, ctx } = await resources({ unified: { 'memory.high': '1' } }, { cgroupMode: 'hybrid' });
  t.is(spec.linux.resources?.unified, undefined);
  t.regex(ctx.warnings.join(), /unified cgroup settings ignored on a hybrid/);
});

test('resources: negative quota (unlimited) passes through, zero values are left out', async (t) => {
  const { spec } = await resources({ cpu_quota: '-1', cpu_shares: '0', cpu_period: '0' });
  t.deepEqual(spec.linux.resources?.cpu, { quota: -1 });
});

const oomRows: Array<[string, string, number, string[] | undefined, number, boolean]> = [
  // title, requested, daemon's own, host caps, expected, warned
  ['positive kept', '1000', 0, undefined, 1000, false],
  ['negative clamped without CAP_SYS_RESOURCE', '-997', 0, ALL_CAPABILITIES.filter((c) => c !== 'CAP_SYS_RESOURCE'), 0, true],
  ['clamped to a positive daemon value', '100', 300, ALL_CAPABILITIES.filter((c) => c !== 'CAP_SYS_RESOURCE'), 300, true],
  ['negative kept with CAP_SYS_RESOURCE', '-997', 0, undefined, -997, false],
  ['out of range', '-5000', -1000, undefined, -1000, false],
];
for (const [title, requested, own, hostCaps, want, warned] of oomRows) {
  test(`resources: oom_score_adj ${title}`, async (t) => {
    const { spec, ctx } = await resources({ oom_score_adj: requested }, hostCaps ? { hostCaps } : {}, { currentOomScoreAdj: async () => own });
    t.is(spec.process.oomScoreAdj, want);
    t.is(ctx.warnings.some((w) => /oom_score_adj/.test(w)), warned);
  });
}

test('resources: default sysctls only for namespaces the pod owns', async (t) => {
  const base = specInput();
  const { spec, ctx } = specContext(specInput({
    defaultSysctls: { 'net.ipv4.ping_group_range': '0 2147483647', 'kernel.shmmax': '1', 'vm.swappiness': '1' },
    sandbox: { ...base.sandbox, namespaces: { net: '/n' } },
  }));
  await withSysctls(spec, ctx);
  t.deepEqual(spec.linux.sysctl, { 'net.ipv4.ping_group_range': '0 2147483647' });
  t.regex(ctx.warnings.join(), /vm.swappiness is not namespaced/);
});

test('resources: ociResourcesFromCri is usable alone (UpdateContainerResources)', (t) => {
  const warnings: string[] = [];
  t.deepEqual(ociResourcesFromCri({ cpu_quota: '20000', cpu_period: '100000', memory_limit_in_bytes: '100' }, 'v1', false, warnings), {
    cpu: { quota: 20000, period: 100000 }, memory: { limit: 100 },
  });
  t.deepEqual(ociResourcesFromCri(null, 'v2', true, warnings), {});
  t.deepEqual(warnings, []);
});

test('resources: device rules set earlier survive', async (t) => {
  const { spec, ctx } = specContext(specInput({ config: containerConfig({ command: ['x'] }, {}, { cpu_shares: '2' }) }));
  spec.linux.resources = { devices: [{ allow: false, access: 'rwm' }] };
  await withResources(spec, ctx);
  t.deepEqual(spec.linux.resources, { devices: [{ allow: false, access: 'rwm' }], cpu: { shares: 2 } });
});
