/**
 * Process capabilities: the default set containerd grants, CRI add/drop (with "ALL"),
 * ambient capabilities, and privileged containers (every capability the daemon has).
 */
import type { SpecContext, SpecOpt } from './context.js';
import { isPrivileged, securityContext } from './context.js';

/** Linux capabilities by number (include/uapi/linux/capability.h). */
export const ALL_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_DAC_READ_SEARCH', 'CAP_FOWNER', 'CAP_FSETID', 'CAP_KILL',
  'CAP_SETGID', 'CAP_SETUID', 'CAP_SETPCAP', 'CAP_LINUX_IMMUTABLE', 'CAP_NET_BIND_SERVICE',
  'CAP_NET_BROADCAST', 'CAP_NET_ADMIN', 'CAP_NET_RAW', 'CAP_IPC_LOCK', 'CAP_IPC_OWNER', 'CAP_SYS_MODULE',
  'CAP_SYS_RAWIO', 'CAP_SYS_CHROOT', 'CAP_SYS_PTRACE', 'CAP_SYS_PACCT', 'CAP_SYS_ADMIN', 'CAP_SYS_BOOT',
  'CAP_SYS_NICE', 'CAP_SYS_RESOURCE', 'CAP_SYS_TIME', 'CAP_SYS_TTY_CONFIG', 'CAP_MKNOD', 'CAP_LEASE',
  'CAP_AUDIT_WRITE', 'CAP_AUDIT_CONTROL', 'CAP_SETFCAP', 'CAP_MAC_OVERRIDE', 'CAP_MAC_ADMIN', 'CAP_SYSLOG',
  'CAP_WAKE_ALARM', 'CAP_BLOCK_SUSPEND', 'CAP_AUDIT_READ', 'CAP_PERFMON', 'CAP_BPF', 'CAP_CHECKPOINT_RESTORE',
];

/** What an unprivileged container gets without add/drop: the set containerd and Docker grant. */
export const DEFAULT_CAPABILITIES: readonly string[] = [
  'CAP_CHOWN', 'CAP_DAC_OVERRIDE', 'CAP_FSETID', 'CAP_FOWNER', 'CAP_MKNOD', 'CAP_NET_RAW', 'CAP_SETGID',
  'CAP_SETUID', 'CAP_SETFCAP', 'CAP_SETPCAP', 'CAP_NET_BIND_SERVICE', 'CAP_SYS_CHROOT', 'CAP_KILL',
  'CAP_AUDIT_WRITE',
];

export function capabilityNamesFromMask(mask: bigint): string[] {
  return ALL_CAPABILITIES.filter((_, i) => (mask >> BigInt(i)) & 1n);
}

/** "net_admin", "NET_ADMIN" and "CAP_NET_ADMIN" all name CAP_NET_ADMIN; "ALL" stays "ALL". */
export function normalizeCapability(name: string): string {
  const up = name.trim().toUpperCase();
  if (up === 'ALL') return 'ALL';
  return up.startsWith('CAP_') ? up : `CAP_${up}`;
}

function known(cap: string, warnings: string[]): boolean {
  if (ALL_CAPABILITIES.includes(cap)) return true;
  warnings.push(`unknown capability ${cap} ignored`);
  return false;
}

/** Applies CRI add/drop to a base set. Order as containerd: ALL first, then the named adds, then the named drops. */
export function computeCapabilities(
  base: readonly string[], add: readonly string[], drop: readonly string[], warnings: string[],
): string[] {
  const adds = add.map(normalizeCapability);
  const drops = drop.map(normalizeCapability);
  let caps = new Set<string>(base);
  if (adds.includes('ALL')) caps = new Set(ALL_CAPABILITIES);
  if (drops.includes('ALL')) caps = new Set();
  for (const c of adds) if (c !== 'ALL' && known(c, warnings)) caps.add(c);
  for (const c of drops) if (c !== 'ALL') caps.delete(c);
  return ALL_CAPABILITIES.filter((c) => caps.has(c));
}

export const withCapabilities: SpecOpt = async (spec, ctx: SpecContext) => {
  const sc = securityContext(ctx.input);
  const host = new Set(ctx.input.hostCaps?.map(normalizeCapability) ?? (await ctx.deps.hostCapabilities()));
  let caps: string[];
  if (isPrivileged(ctx.input)) {
    // Privileged means every capability the daemon itself holds; add/drop have no effect (CRI doc).
    caps = ALL_CAPABILITIES.filter((c) => host.has(c));
  } else {
    caps = computeCapabilities(DEFAULT_CAPABILITIES, sc.capabilities?.add_capabilities ?? [], sc.capabilities?.drop_capabilities ?? [], ctx.warnings);
    // The runtime's capset(2) fails for a capability outside the daemon's own bounding set
    // (this host, for one, lacks CAP_SYS_RESOURCE): leave it out and say so.
    const missing = caps.filter((c) => !host.has(c));
    if (missing.length) {
      const explicit = new Set((sc.capabilities?.add_capabilities ?? []).map(normalizeCapability));
      const named = missing.filter((c) => explicit.has(c) || DEFAULT_CAPABILITIES.includes(c));
      if (named.length) ctx.warnings.push(`capabilities not held by the daemon, left out: ${named.join(', ')}`);
      caps = caps.filter((c) => host.has(c));
    }
  }
  // A capability can only be ambient if it is also permitted and inheritable (capabilities(7)).
  const ambient: string[] = [];
  for (const c of (sc.capabilities?.add_ambient_capabilities ?? []).map(normalizeCapability)) {
    if (c === 'ALL' || !known(c, ctx.warnings)) continue;
    if (!caps.includes(c)) {
      ctx.warnings.push(`ambient capability ${c} is not in the container's capability set, ignored`);
      continue;
    }
    if (!ambient.includes(c)) ambient.push(c);
  }
  // Inheritable stays empty otherwise: a non-empty inheritable set lets file capabilities
  // of an image's binaries grant more than the process has (CVE-2022-24769).
  spec.process.capabilities = {
    bounding: [...caps],
    effective: [...caps],
    permitted: [...caps],
    inheritable: [...ambient],
    ambient,
  };
};
