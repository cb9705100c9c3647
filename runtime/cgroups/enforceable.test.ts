import test from 'ava';
import { enforceableResources, type LimitPolicy } from './enforceable.js';
import { FailedPreconditionError } from '../errors.js';

const hybrid: LimitPolicy = { controllers: ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'pids'], disableHugetlb: false, unenforceable: 'drop' };
const kubeletHuge = [{ pageSize: '2MB', limit: 0 }, { pageSize: '1GB', limit: 0 }];

test('the kubelet\'s zero hugepage limits on a host without hugetlb: dropped without a warning', (t) => {
  const w: string[] = [];
  const out = enforceableResources({ memory: { limit: 1 << 26 }, hugepageLimits: kubeletHuge }, hybrid, w);
  t.deepEqual(out, { memory: { limit: 1 << 26 } });
  t.deepEqual(w, []);
});

test('a real hugepage limit without hugetlb: dropped with a warning, or refused under "fail"', (t) => {
  const w: string[] = [];
  const out = enforceableResources({ hugepageLimits: [{ pageSize: '2MB', limit: 4 << 20 }] }, hybrid, w);
  t.is(out.hugepageLimits, undefined);
  t.regex(w[0]!, /hugepage limits \(no hugetlb controller\)/);
  const err = t.throws(() => enforceableResources({ hugepageLimits: [{ pageSize: '2MB', limit: 4 << 20 }] }, { ...hybrid, unenforceable: 'fail' }, []));
  t.true(err instanceof FailedPreconditionError);
});

test('hugepage limits pass where hugetlb exists, unless disable_hugetlb_controller', (t) => {
  const withHuge = { ...hybrid, controllers: [...hybrid.controllers, 'hugetlb'] };
  const res = { hugepageLimits: [{ pageSize: '2MB', limit: 4 << 20 }] };
  t.deepEqual(enforceableResources(res, withHuge, []), res);
  const w: string[] = [];
  t.deepEqual(enforceableResources(res, { ...withHuge, disableHugetlb: true }, w), {});
  t.deepEqual(w, []);
});

test('cpuset in a guest without the cpuset controller: cpus and mems dropped, quota kept', (t) => {
  const w: string[] = [];
  const v2 = { controllers: ['cpu', 'io', 'memory', 'pids'], disableHugetlb: false, unenforceable: 'drop' as const };
  const out = enforceableResources({ cpu: { quota: 50000, period: 100000, cpus: '0' } }, v2, w);
  t.deepEqual(out, { cpu: { quota: 50000, period: 100000 } });
  t.regex(w[0]!, /cpuset cpus=0 \(no cpuset controller\)/);
});

test('devices and unified settings are not touched; no controllers known at all drops nothing', (t) => {
  const res = { devices: [{ allow: false, access: 'rwm' }], unified: { 'memory.high': '1000' } };
  t.deepEqual(enforceableResources(res, { ...hybrid, controllers: ['cpu'] }, []), res);
  const all = { cpu: { shares: 2, cpus: '0' }, memory: { limit: 1 }, hugepageLimits: [{ pageSize: '2MB', limit: 1 }] };
  t.deepEqual(enforceableResources(all, { ...hybrid, controllers: [] }, []), all);
});
