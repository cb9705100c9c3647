import test from 'ava';
import { InvalidArgumentError } from '../../errors.js';
import { RUNTIME_DEFAULT_PROFILE } from './default.js';
import { compileSeccompProfile, kernelAtLeast, nativeSeccompArch, type SeccompProfile } from './profile.js';

const profile: SeccompProfile = {
  defaultAction: 'SCMP_ACT_ERRNO',
  archMap: [{ architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86'] }],
  syscalls: [
    { names: ['a'], action: 'SCMP_ACT_ALLOW' },
    { names: ['needs-admin'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] } },
    { names: ['needs-two'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN', 'CAP_NET_ADMIN'] } },
    { names: ['not-admin'], action: 'SCMP_ACT_ERRNO', errnoRet: 38, excludes: { caps: ['CAP_SYS_ADMIN'] } },
    { names: ['x86-only'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['SCMP_ARCH_X86_64'] } },
    { names: ['not-x86'], action: 'SCMP_ACT_ALLOW', excludes: { arches: ['SCMP_ARCH_X86_64'] } },
    { names: ['new-kernel'], action: 'SCMP_ACT_ALLOW', includes: { minKernel: '6.1' } },
    { names: ['with-args'], action: 'SCMP_ACT_ALLOW', args: [{ index: 1, value: 2, valueTwo: 0, op: 'SCMP_CMP_EQ' }] },
  ],
};

const names = (caps: string[], arch = 'x64', kernel = '6.18.0') =>
  compileSeccompProfile(profile, { arch, capabilities: caps, kernel }).syscalls!.map((s) => s.names[0]);

test('compile: includes and excludes', (t) => {
  t.deepEqual(names([]), ['a', 'not-admin', 'x86-only', 'new-kernel', 'with-args']);
  t.deepEqual(names(['CAP_SYS_ADMIN']), ['a', 'needs-admin', 'x86-only', 'new-kernel', 'with-args']);
  t.deepEqual(names(['CAP_SYS_ADMIN', 'CAP_NET_ADMIN']), ['a', 'needs-admin', 'needs-two', 'x86-only', 'new-kernel', 'with-args']);
  t.deepEqual(names([], 'arm64', '5.10.0'), ['a', 'not-admin', 'not-x86', 'with-args']);
});

test('compile: architectures from archMap, none for an unmapped arch', (t) => {
  t.deepEqual(compileSeccompProfile(profile, { arch: 'x64', capabilities: [] }).architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86']);
  t.is(compileSeccompProfile(profile, { arch: 'arm64', capabilities: [] }).architectures, undefined);
});

test('compile: args and errnoRet kept, zero valueTwo dropped', (t) => {
  const s = compileSeccompProfile(profile, { arch: 'x64', capabilities: [], kernel: '6.1.0' }).syscalls!;
  t.deepEqual(s.find((r) => r.names[0] === 'with-args'), { names: ['with-args'], action: 'SCMP_ACT_ALLOW', args: [{ index: 1, value: 2, op: 'SCMP_CMP_EQ' }] });
  t.deepEqual(s.find((r) => r.names[0] === 'not-admin'), { names: ['not-admin'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 });
});

test('compile: invalid profiles are InvalidArgument naming the problem', (t) => {
  const bad = (p: unknown, re: RegExp) => t.throws(() => compileSeccompProfile(p as SeccompProfile, { arch: 'x64', capabilities: [] }, 'profile /p'), { instanceOf: InvalidArgumentError, message: re });
  bad({ defaultAction: 'NOPE' }, /profile \/p: defaultAction "NOPE"/);
  bad({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ action: 'SCMP_ACT_ERRNO' }] }, /rule 0 names no syscall/);
  bad({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['x'], action: 'SCMP_ACT_BAD' }] }, /unknown action/);
  bad({ defaultAction: 'SCMP_ACT_ALLOW', syscalls: [{ names: ['x'], action: 'SCMP_ACT_ERRNO', args: [{ index: 0, value: 1, op: 'LIKE' }] }] }, /unknown operator/);
  bad(null, /defaultAction/);
});

test('helpers', (t) => {
  t.is(nativeSeccompArch('x64'), 'SCMP_ARCH_X86_64');
  t.is(nativeSeccompArch('arm64'), 'SCMP_ARCH_AARCH64');
  t.true(kernelAtLeast('4.8', '6.18.44-fc'));
  t.true(kernelAtLeast('6.18', '6.18.0'));
  t.false(kernelAtLeast('6.19', '6.18.0'));
  t.false(kernelAtLeast('5.0', '4.19.0'));
});

test('RuntimeDefault: no syscall both allowed unconditionally and denied, no duplicate names in the base list', (t) => {
  const base = RUNTIME_DEFAULT_PROFILE.syscalls![0].names!;
  t.is(new Set(base).size, base.length);
  for (const danger of ['mount', 'umount2', 'unshare', 'setns', 'keyctl', 'add_key', 'request_key', 'bpf', 'perf_event_open',
    'kexec_load', 'init_module', 'open_by_handle_at', 'userfaultfd', 'io_uring_setup', 'clone', 'clone3', 'personality', 'socket',
    'ptrace', 'chroot', 'reboot', 'swapon', 'pivot_root', 'quotactl']) {
    t.false(base.includes(danger), danger);
  }
});
