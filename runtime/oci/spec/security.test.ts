import test from 'ava';
import { InvalidArgumentError } from '../../errors.js';
import type { LinuxContainerSecurityContext__Output } from '../../../proto/gen/runtime/v1/LinuxContainerSecurityContext.js';
import { withCapabilities } from './capabilities.js';
import type { SpecDeps } from './context.js';
import { containerConfig, fakeDeps, specContext, specInput } from './fixtures.js';
import {
  APPARMOR_DEFAULT_PROFILE, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS, selectSeccomp, withApparmor, withMaskedPaths,
  withRoot, withSeccomp, withSelinux,
} from './security.js';
import type { OciSeccomp } from './types.js';

type SC = Partial<LinuxContainerSecurityContext__Output>;

function ctxFor(sc: SC, deps: Partial<SpecDeps> = {}) {
  return specContext(specInput({ config: containerConfig({ command: ['x'] }, sc) }), fakeDeps({}, deps));
}

const selectRows: Array<[string, SC, ReturnType<typeof selectSeccomp>]> = [
  ['nothing: unconfined', {}, { kind: 'unconfined' }],
  ['RuntimeDefault', { seccomp: { profile_type: 'RuntimeDefault', localhost_ref: '' } }, { kind: 'runtime-default' }],
  ['Unconfined', { seccomp: { profile_type: 'Unconfined', localhost_ref: '' } }, { kind: 'unconfined' }],
  ['Localhost', { seccomp: { profile_type: 'Localhost', localhost_ref: '/p.json' } }, { kind: 'localhost', path: '/p.json' }],
  ['path runtime/default', { seccomp_profile_path: 'runtime/default' }, { kind: 'runtime-default' }],
  ['path docker/default', { seccomp_profile_path: 'docker/default' }, { kind: 'runtime-default' }],
  ['path unconfined', { seccomp_profile_path: 'unconfined' }, { kind: 'unconfined' }],
  ['path localhost/', { seccomp_profile_path: 'localhost//etc/p.json' }, { kind: 'localhost', path: '/etc/p.json' }],
  ['structured field wins', { seccomp: { profile_type: 'Unconfined', localhost_ref: '' }, seccomp_profile_path: 'runtime/default' }, { kind: 'unconfined' }],
  ['privileged: unconfined', { privileged: true, seccomp: { profile_type: 'RuntimeDefault', localhost_ref: '' } }, { kind: 'unconfined' }],
  ['privileged ignores Localhost too', { privileged: true, seccomp: { profile_type: 'Localhost', localhost_ref: '/p.json' } }, { kind: 'unconfined' }],
  ['privileged ignores the deprecated path', { privileged: true, seccomp_profile_path: 'localhost//p.json' }, { kind: 'unconfined' }],
];
for (const [title, sc, want] of selectRows) {
  test(`seccomp select: ${title}`, (t) => {
    t.deepEqual(selectSeccomp(ctxFor(sc).ctx), want);
  });
}

test('seccomp select: bad references', (t) => {
  t.throws(() => selectSeccomp(ctxFor({ seccomp_profile_path: 'custom' }).ctx), { instanceOf: InvalidArgumentError });
  t.throws(() => selectSeccomp(ctxFor({ seccomp_profile_path: 'localhost/rel.json' }).ctx), { instanceOf: InvalidArgumentError });
  t.throws(() => selectSeccomp(ctxFor({ seccomp: { profile_type: 'Localhost', localhost_ref: '' } }).ctx), { instanceOf: InvalidArgumentError });
});

async function seccompFor(sc: SC, deps: Partial<SpecDeps> = {}): Promise<OciSeccomp | undefined> {
  const { spec, ctx } = ctxFor(sc, deps);
  await withCapabilities(spec, ctx);
  await withSeccomp(spec, ctx);
  return spec.linux.seccomp;
}

function rulesFor(s: OciSeccomp, name: string) {
  return (s.syscalls ?? []).filter((r) => r.names.includes(name));
}

const RD = { seccomp: { profile_type: 'RuntimeDefault' as const, localhost_ref: '' } };

test('seccomp RuntimeDefault: deny by default, architectures, allowlist', async (t) => {
  const s = (await seccompFor(RD))!;
  t.is(s.defaultAction, 'SCMP_ACT_ERRNO');
  t.is(s.defaultErrnoRet, 1);
  t.deepEqual(s.architectures, ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86', 'SCMP_ARCH_X32']);
  for (const n of ['read', 'openat', 'execve', 'futex', 'arch_prctl', 'chroot', 'ptrace']) t.true(rulesFor(s, n).some((r) => r.action === 'SCMP_ACT_ALLOW' && !r.args), n);
  for (const n of ['mount', 'unshare', 'setns', 'keyctl', 'bpf', 'reboot', 'init_module', 'open_by_handle_at', 'io_uring_setup', 'set_tls', 'settimeofday']) t.deepEqual(rulesFor(s, n), [], n);
  // clone only without namespace flags; clone3 answers ENOSYS so libc falls back to clone.
  t.deepEqual(rulesFor(s, 'clone'), [{ names: ['clone'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 0x7e020000, op: 'SCMP_CMP_MASKED_EQ' }] }]);
  t.deepEqual(rulesFor(s, 'clone3'), [{ names: ['clone3'], action: 'SCMP_ACT_ERRNO', errnoRet: 38 }]);
  t.deepEqual(rulesFor(s, 'socket'), [{ names: ['socket'], action: 'SCMP_ACT_ALLOW', args: [{ index: 0, value: 40, op: 'SCMP_CMP_NE' }] }]);
  t.is(rulesFor(s, 'personality').length, 5);
});

test('seccomp RuntimeDefault: capability-gated rules follow the capability set', async (t) => {
  const s = (await seccompFor({ ...RD, capabilities: { add_capabilities: ['SYS_ADMIN', 'SYS_TIME'], drop_capabilities: ['SYS_CHROOT'], add_ambient_capabilities: [] } }))!;
  t.true(rulesFor(s, 'mount').some((r) => r.action === 'SCMP_ACT_ALLOW'));
  t.true(rulesFor(s, 'settimeofday').some((r) => r.action === 'SCMP_ACT_ALLOW'));
  t.deepEqual(rulesFor(s, 'chroot'), []);
  t.true(rulesFor(s, 'clone').every((r) => !r.args), 'unconditional clone with CAP_SYS_ADMIN');
  t.true(rulesFor(s, 'clone3').every((r) => r.action === 'SCMP_ACT_ALLOW'));
});

test('seccomp RuntimeDefault: arm64 architectures and calls', async (t) => {
  const s = (await seccompFor(RD, { arch: 'arm64' }))!;
  t.deepEqual(s.architectures, ['SCMP_ARCH_AARCH64', 'SCMP_ARCH_ARM']);
  t.true(rulesFor(s, 'set_tls').length > 0);
  t.deepEqual(rulesFor(s, 'arch_prctl'), []);
});

test('seccomp: unconfined and privileged have no seccomp', async (t) => {
  t.is(await seccompFor({}), undefined);
  t.is(await seccompFor({ ...RD, privileged: true }), undefined);
});

test('seccomp Localhost: OCI and Docker formats, missing and broken files', async (t) => {
  const files: Record<string, string> = {
    '/oci.json': JSON.stringify({ defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64'], syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO' }] }),
    '/docker.json': JSON.stringify({
      defaultAction: 'SCMP_ACT_ERRNO',
      archMap: [{ architecture: 'SCMP_ARCH_X86_64', subArchitectures: ['SCMP_ARCH_X86'] }, { architecture: 'SCMP_ARCH_AARCH64', subArchitectures: ['SCMP_ARCH_ARM'] }],
      syscalls: [
        { name: 'read', action: 'SCMP_ACT_ALLOW', args: [] },
        { names: ['chroot'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_CHROOT'] } },
        { names: ['mount'], action: 'SCMP_ACT_ALLOW', includes: { caps: ['CAP_SYS_ADMIN'] } },
        { names: ['set_tls'], action: 'SCMP_ACT_ALLOW', includes: { arches: ['SCMP_ARCH_AARCH64'] } },
      ],
    }),
    '/broken.json': '{',
    '/badaction.json': JSON.stringify({ defaultAction: 'SCMP_ACT_NOPE' }),
  };
  const readFile = async (p: string) => {
    if (p in files) return files[p];
    throw Object.assign(new Error('ENOENT'), { code: 'ENOENT' });
  };
  const local = (p: string): SC => ({ seccomp: { profile_type: 'Localhost', localhost_ref: p } });
  t.deepEqual(await seccompFor(local('/oci.json'), { readFile }), {
    defaultAction: 'SCMP_ACT_ALLOW', architectures: ['SCMP_ARCH_X86_64'], syscalls: [{ names: ['mkdir'], action: 'SCMP_ACT_ERRNO' }],
  });
  t.deepEqual(await seccompFor(local('/docker.json'), { readFile }), {
    defaultAction: 'SCMP_ACT_ERRNO', architectures: ['SCMP_ARCH_X86_64', 'SCMP_ARCH_X86'],
    syscalls: [{ names: ['read'], action: 'SCMP_ACT_ALLOW' }, { names: ['chroot'], action: 'SCMP_ACT_ALLOW' }],
  });
  await t.throwsAsync(seccompFor(local('/missing.json'), { readFile }), { instanceOf: InvalidArgumentError, message: /\/missing.json does not exist/ });
  await t.throwsAsync(seccompFor(local('/broken.json'), { readFile }), { instanceOf: InvalidArgumentError, message: /not valid JSON/ });
  await t.throwsAsync(seccompFor(local('/badaction.json'), { readFile }), { instanceOf: InvalidArgumentError, message: /SCMP_ACT_NOPE/ });
});

test('masked and readonly paths: defaults, CRI lists, privileged none', async (t) => {
  const a = ctxFor({});
  await withMaskedPaths(a.spec, a.ctx);
  t.deepEqual(a.spec.linux.maskedPaths, [...DEFAULT_MASKED_PATHS]);
  t.deepEqual(a.spec.linux.readonlyPaths, [...DEFAULT_READONLY_PATHS]);
  const b = ctxFor({ masked_paths: ['/proc/x'], readonly_paths: ['/proc/y'] });
  await withMaskedPaths(b.spec, b.ctx);
  t.deepEqual(b.spec.linux.maskedPaths, ['/proc/x']);
  t.deepEqual(b.spec.linux.readonlyPaths, ['/proc/y']);
  const c = ctxFor({ privileged: true, masked_paths: ['/proc/x'] });
  await withMaskedPaths(c.spec, c.ctx);
  t.is(c.spec.linux.maskedPaths, undefined);
  t.is(c.spec.linux.readonlyPaths, undefined);
  // In a pod with its own user namespace, empty lists are the kubelet's ProcMount Unmasked.
  const base = specInput();
  const inUserns = (sc: SC) => specContext(specInput({
    config: containerConfig({ command: ['x'] }, sc),
    sandbox: { ...base.sandbox, namespaces: { ...base.sandbox.namespaces, user: '/run/corral/s1/ns/user' } },
  }), fakeDeps({}));
  const d = inUserns({});
  await withMaskedPaths(d.spec, d.ctx);
  t.is(d.spec.linux.maskedPaths, undefined);
  t.is(d.spec.linux.readonlyPaths, undefined);
  const e = inUserns({ masked_paths: [...DEFAULT_MASKED_PATHS], readonly_paths: [...DEFAULT_READONLY_PATHS] });
  await withMaskedPaths(e.spec, e.ctx);
  t.deepEqual(e.spec.linux.maskedPaths, [...DEFAULT_MASKED_PATHS]);
});

test('readonly rootfs', async (t) => {
  const a = ctxFor({ readonly_rootfs: true });
  await withRoot(a.spec, a.ctx);
  t.deepEqual(a.spec.root, { path: '/nonexistent-rootfs', readonly: true });
});

test('apparmor: disabled host ignores profiles (warning for Localhost)', async (t) => {
  const a = ctxFor({ apparmor: { profile_type: 'Localhost', localhost_ref: 'localhost/my' } });
  await withApparmor(a.spec, a.ctx);
  t.is(a.spec.process.apparmorProfile, undefined);
  t.regex(a.ctx.warnings.join(), /AppArmor profile my ignored/);
  const b = ctxFor({ apparmor_profile: 'runtime/default' });
  await withApparmor(b.spec, b.ctx);
  t.deepEqual(b.ctx.warnings, []);
});

test('apparmor: enabled host', async (t) => {
  const on = { apparmorEnabled: async () => true, apparmorProfiles: async () => ['my', APPARMOR_DEFAULT_PROFILE] };
  const a = ctxFor({ apparmor: { profile_type: 'Localhost', localhost_ref: 'my' } }, on);
  await withApparmor(a.spec, a.ctx);
  t.is(a.spec.process.apparmorProfile, 'my');
  const b = ctxFor({}, on);
  await withApparmor(b.spec, b.ctx);
  t.is(b.spec.process.apparmorProfile, APPARMOR_DEFAULT_PROFILE);
  const c = ctxFor({}, { apparmorEnabled: async () => true, apparmorProfiles: async () => [] });
  await withApparmor(c.spec, c.ctx);
  t.is(c.spec.process.apparmorProfile, undefined);
  t.regex(c.ctx.warnings.join(), /not loaded/);
  const d = ctxFor({ apparmor_profile: 'localhost/other' }, on);
  await t.throwsAsync(async () => withApparmor(d.spec, d.ctx), { instanceOf: InvalidArgumentError, message: /other is not loaded/ });
  const p = ctxFor({ privileged: true, apparmor: { profile_type: 'Localhost', localhost_ref: 'my' } }, on);
  await withApparmor(p.spec, p.ctx);
  t.is(p.spec.process.apparmorProfile, undefined);
  const e = ctxFor({ apparmor: { profile_type: 'Unconfined', localhost_ref: '' } }, on);
  await withApparmor(e.spec, e.ctx);
  t.is(e.spec.process.apparmorProfile, undefined);
});

test('selinux options are ignored with a warning', async (t) => {
  const a = ctxFor({ selinux_options: { user: '', role: '', type: 'spc_t', level: '' } });
  await withSelinux(a.spec, a.ctx);
  t.regex(a.ctx.warnings.join(), /selinux_options ignored/);
});
