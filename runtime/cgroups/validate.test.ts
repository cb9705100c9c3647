import test from 'ava';
import { InvalidArgumentError } from '../errors.js';
import { parseCpuList, validateCriResources } from './validate.js';

const host = { cpus: new Set([0, 1]), mems: new Set([0]) };
const bad = (r: Parameters<typeof validateCriResources>[0], re: RegExp) => (t: { throws: (fn: () => void, e: object) => unknown }) =>
  t.throws(() => validateCriResources(r, 'ctr', host), { instanceOf: InvalidArgumentError, message: re });

test('what the kubelet sends passes; zero is unset everywhere', (t) => {
  t.notThrows(() => validateCriResources({
    cpu_period: '100000', cpu_quota: '50000', cpu_shares: '512', memory_limit_in_bytes: '134217728', memory_swap_limit_in_bytes: '268435456',
    oom_score_adj: '-997', cpuset_cpus: '0-1', cpuset_mems: '0', hugepage_limits: [{ page_size: '2MB', limit: '0' }, { page_size: '1GB', limit: '0' }],
    unified: { 'memory.high': '1000000', 'memory.oom.group': '1' },
  }, 'ctr', host));
  t.notThrows(() => validateCriResources({ cpu_period: 0, cpu_quota: 0, cpu_shares: 0, memory_swap_limit_in_bytes: -1 }, 'ctr', host));
  t.notThrows(() => validateCriResources({ cpu_quota: -1, cpu_shares: 2 }, 'ctr', host));
  t.notThrows(() => validateCriResources(null, 'ctr', host));
});

test('values the kernel refuses are InvalidArgument naming the field', (t) => {
  bad({ cpu_period: 1 }, /ctr: cpu_period 1 is out of range/)(t);
  bad({ cpu_period: '9223372036854775807' }, /cpu_period/)(t);
  bad({ cpu_quota: -2147483648 }, /cpu_quota/)(t);
  bad({ cpu_quota: 999 }, /cpu_quota/)(t);
  bad({ cpu_shares: -1 }, /cpu_shares/)(t);
  bad({ cpu_shares: 1_000_000 }, /cpu_shares/)(t);
  bad({ memory_limit_in_bytes: -5 }, /memory_limit_in_bytes/)(t);
  bad({ memory_swap_limit_in_bytes: -5 }, /memory_swap_limit_in_bytes/)(t);
  bad({ memory_swap_limit_in_bytes: '9223372036854775807' }, /memory_swap_limit_in_bytes/)(t);
  bad({ oom_score_adj: 1001 }, /oom_score_adj/)(t);
  bad({ cpu_shares: 'abc' }, /cpu_shares "abc" is not an integer/)(t);
});

test('cpusets: list syntax, ranges forwards, online on this node', (t) => {
  t.deepEqual(parseCpuList('0-2,5', 'x'), [0, 1, 2, 5]);
  bad({ cpuset_cpus: 'abc' }, /cpuset_cpus "abc" is not a list/)(t);
  bad({ cpuset_mems: '\n' }, /cpuset_mems/)(t);
  bad({ cpuset_cpus: '3-1' }, /runs backwards/)(t);
  bad({ cpuset_cpus: '0-7' }, /2,3,4,5,6 not online/)(t);
  bad({ cpuset_mems: '1' }, /cpuset_mems "1": 1 not online/)(t);
});

test('names that become cgroup file names cannot name a path or the tree itself', (t) => {
  bad({ unified: { 'memory.x/../../../etc/cron.d/pwn': '1' } }, /not a cgroup file name/)(t);
  bad({ unified: { '../x': '1' } }, /not a cgroup file name/)(t);
  bad({ unified: { 'cgroup.procs': '1' } }, /the cgroup tree's own file/)(t);
  bad({ unified: { 'memory.high': '1\n2' } }, /one line/)(t);
  bad({ hugepage_limits: [{ page_size: '2MB/../../x', limit: 1 }] }, /page_size/)(t);
  bad({ hugepage_limits: [{ page_size: '2MB', limit: -1 }] }, /limit -1/)(t);
});
