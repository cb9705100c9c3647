/**
 * Confinement: seccomp (RuntimeDefault, Localhost, Unconfined and the deprecated path
 * strings), AppArmor (only where the host has it), SELinux (not supported: warned), masked
 * and read-only paths, the read-only rootfs.
 */
import { isAbsolute } from 'node:path';
import { errnoCode, errorMessage, InvalidArgumentError } from '../../errors.js';
import { RUNTIME_DEFAULT_PROFILE } from '../seccomp/default.js';
import { compileSeccompProfile, type SeccompProfile } from '../seccomp/profile.js';
import type { SpecContext, SpecOpt } from './context.js';
import { isPrivileged, securityContext } from './context.js';

/** Paths hidden from unprivileged containers (kernel internals, host hardware): containerd's list. */
export const DEFAULT_MASKED_PATHS: readonly string[] = [
  '/proc/acpi', '/proc/asound', '/proc/interrupts', '/proc/kcore', '/proc/keys', '/proc/latency_stats',
  '/proc/sched_debug', '/proc/scsi', '/proc/timer_list', '/proc/timer_stats', '/sys/devices/virtual/powercap',
  '/sys/firmware',
];

/** Paths that stay visible but read-only: containerd's list. */
export const DEFAULT_READONLY_PATHS: readonly string[] = [
  '/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger',
];

export type SeccompChoice =
  | { kind: 'unconfined' }
  | { kind: 'runtime-default' }
  | { kind: 'localhost'; path: string };

/**
 * Which seccomp profile the request asks for. The structured field wins over the deprecated
 * string; neither means unconfined (the CRI's documented default; a kubelet with
 * SeccompDefault sends RuntimeDefault explicitly). Privileged containers always run
 * unconfined (CRI: "seccomp restrictions are not applied"; critest checks that even a
 * Localhost profile is ignored), after the reference is still checked for errors.
 */
export function selectSeccomp(ctx: SpecContext): SeccompChoice {
  const sc = securityContext(ctx.input);
  let choice: SeccompChoice;
  if (sc.seccomp) {
    const t = sc.seccomp.profile_type as unknown;
    if (t === 'Unconfined' || t === 1) choice = { kind: 'unconfined' };
    else if (t === 'Localhost' || t === 2) {
      const ref = sc.seccomp.localhost_ref;
      if (!ref || !isAbsolute(ref) || ref.split('/').includes('..') || ref.includes('\0')) {
        throw new InvalidArgumentError(`seccomp Localhost profile ${JSON.stringify((ref ?? '').slice(0, 200))} is not an absolute path without ".."`);
      }
      choice = { kind: 'localhost', path: ref };
    } else choice = { kind: 'runtime-default' };
  } else {
    const p = sc.seccomp_profile_path ?? '';
    if (p === '' || p === 'unconfined') choice = { kind: 'unconfined' };
    else if (p === 'runtime/default' || p === 'docker/default') choice = { kind: 'runtime-default' };
    else if (p.startsWith('localhost/')) {
      const path = p.slice('localhost/'.length);
      if (!isAbsolute(path)) throw new InvalidArgumentError(`seccomp profile ${JSON.stringify(p)}: the path after localhost/ must be absolute`);
      choice = { kind: 'localhost', path };
    } else {
      throw new InvalidArgumentError(`seccomp_profile_path ${JSON.stringify(p)} is not one of runtime/default, docker/default, unconfined, localhost/<path>`);
    }
  }
  if (isPrivileged(ctx.input)) return { kind: 'unconfined' };
  return choice;
}

/** Needs the final capability set (withCapabilities first): some rules depend on it. */
export const withSeccomp: SpecOpt = async (spec, ctx: SpecContext) => {
  const choice = selectSeccomp(ctx);
  const opts = { arch: ctx.deps.arch, capabilities: spec.process.capabilities?.bounding ?? [] };
  if (choice.kind === 'unconfined') {
    delete spec.linux.seccomp;
    return;
  }
  if (choice.kind === 'runtime-default') {
    spec.linux.seccomp = compileSeccompProfile(RUNTIME_DEFAULT_PROFILE, opts, 'RuntimeDefault seccomp profile');
    return;
  }
  let text: string;
  try {
    text = await ctx.deps.readFile(choice.path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT') throw new InvalidArgumentError(`seccomp Localhost profile ${choice.path} does not exist`);
    throw new InvalidArgumentError(`seccomp Localhost profile ${choice.path} cannot be read: ${errorMessage(err)}`);
  }
  let profile: SeccompProfile;
  try {
    profile = JSON.parse(text) as SeccompProfile;
  } catch (err) {
    throw new InvalidArgumentError(`seccomp Localhost profile ${choice.path} is not valid JSON: ${errorMessage(err)}`);
  }
  spec.linux.seccomp = compileSeccompProfile(profile, opts, `seccomp Localhost profile ${choice.path}`);
};

/** The name corral would load for RuntimeDefault; corral does not ship one, so it is used only if an admin loaded it. */
export const APPARMOR_DEFAULT_PROFILE = 'corral-default';

export const withApparmor: SpecOpt = async (spec, ctx: SpecContext) => {
  const sc = securityContext(ctx.input);
  let want: { kind: 'default' } | { kind: 'unconfined' } | { kind: 'localhost'; name: string } = { kind: 'default' };
  if (sc.apparmor) {
    const t = sc.apparmor.profile_type as unknown;
    if (t === 'Unconfined' || t === 1) want = { kind: 'unconfined' };
    else if (t === 'Localhost' || t === 2) want = { kind: 'localhost', name: sc.apparmor.localhost_ref.replace(/^localhost\//, '') };
  } else if (sc.apparmor_profile) {
    const p = sc.apparmor_profile;
    if (p === 'unconfined') want = { kind: 'unconfined' };
    else if (p.startsWith('localhost/')) want = { kind: 'localhost', name: p.slice('localhost/'.length) };
    else if (p !== 'runtime/default') throw new InvalidArgumentError(`apparmor_profile ${JSON.stringify(p)} is not one of runtime/default, unconfined, localhost/<name>`);
  }
  if (!(await ctx.deps.apparmorEnabled())) {
    if (want.kind === 'localhost') ctx.warnings.push(`AppArmor profile ${want.name} ignored: AppArmor is not enabled on this host`);
    return;
  }
  // CRI: "AppArmor confinement is not applied" to privileged containers.
  if (want.kind === 'unconfined' || isPrivileged(ctx.input)) return;
  const loaded = await ctx.deps.apparmorProfiles();
  if (want.kind === 'localhost') {
    if (!want.name) throw new InvalidArgumentError('AppArmor Localhost profile without a name');
    if (!loaded.includes(want.name)) throw new InvalidArgumentError(`AppArmor profile ${want.name} is not loaded on this host`);
    spec.process.apparmorProfile = want.name;
    return;
  }
  if (loaded.includes(APPARMOR_DEFAULT_PROFILE)) spec.process.apparmorProfile = APPARMOR_DEFAULT_PROFILE;
  else ctx.warnings.push(`AppArmor profile ${APPARMOR_DEFAULT_PROFILE} is not loaded; the container runs without AppArmor confinement`);
};

export const withSelinux: SpecOpt = async (_spec, ctx: SpecContext) => {
  const o = securityContext(ctx.input).selinux_options;
  if (!o || !(o.user || o.role || o.type || o.level)) return;
  ctx.warnings.push(await ctx.deps.selinuxEnabled()
    ? 'selinux_options ignored: corral does not label containers'
    : 'selinux_options ignored: SELinux is not enabled on this host');
};

/**
 * The CRI lists replace the defaults when they are non-empty. An explicitly empty list cannot
 * be told from an absent one on the wire (proto3 repeated fields have no presence), so both
 * mean the defaults, except in a pod with its own user namespace: there the kubelet sends
 * empty lists only for ProcMount Unmasked (which the API allows only with hostUsers: false)
 * and the default lists otherwise, so empty means unmasked, as the node suite expects.
 */
export const withMaskedPaths: SpecOpt = (spec, ctx: SpecContext) => {
  const sc = securityContext(ctx.input);
  const unmasked = !!ctx.input.sandbox.namespaces.user && !sc.masked_paths?.length && !sc.readonly_paths?.length;
  if (isPrivileged(ctx.input) || unmasked) {
    delete spec.linux.maskedPaths;
    delete spec.linux.readonlyPaths;
    return;
  }
  spec.linux.maskedPaths = sc.masked_paths?.length ? [...sc.masked_paths] : [...DEFAULT_MASKED_PATHS];
  spec.linux.readonlyPaths = sc.readonly_paths?.length ? [...sc.readonly_paths] : [...DEFAULT_READONLY_PATHS];
};

export const withRoot: SpecOpt = (spec, ctx: SpecContext) => {
  spec.root = { path: ctx.input.rootfs };
  if (securityContext(ctx.input).readonly_rootfs) spec.root.readonly = true;
};
