/**
 * Cgroup placement and limits (linux.resources), oom_score_adj and sysctls.
 *
 * CPU shares are written as shares: on cgroup v2 the runtime (runc, crun) converts them to
 * cpu.weight itself, so the spec stays the same on every host. CRI v1's
 * LinuxContainerResources has no pids limit: the kubelet puts the pod's pids limit on the pod
 * cgroup (cgroup_parent), which every container sits under.
 */
import { InvalidArgumentError } from '../../errors.js';
import type { SpecContext, SpecOpt } from './context.js';
import { int64 } from './context.js';
import type { OciResources } from './types.js';
import { enforceableResources } from '../../cgroups/enforceable.js';
import type { LinuxContainerResources__Output } from '../../../proto/gen/runtime/v1/LinuxContainerResources.js';

export const withCgroupsPath: SpecOpt = (spec, ctx: SpecContext) => {
  spec.linux.cgroupsPath = ctx.input.cgroupsPath;
};

/**
 * CRI LinuxContainerResources -> OCI linux.resources (without devices). Pure apart from the
 * answer to "does the memory controller account swap", so UpdateContainerResources can
 * reuse it for `runtime update --resources`.
 */
export function ociResourcesFromCri(
  r: Partial<LinuxContainerResources__Output> | null | undefined,
  cgroupMode: 'v2' | 'hybrid' | 'v1',
  swapAccounting: boolean,
  warnings: string[],
): OciResources {
  const res: OciResources = {};
  if (!r) return res;

  const cpu: NonNullable<OciResources['cpu']> = {};
  const shares = int64(r.cpu_shares);
  const quota = int64(r.cpu_quota);
  const period = int64(r.cpu_period);
  if (shares > 0) cpu.shares = shares;
  if (quota !== 0) cpu.quota = quota;
  if (period > 0) cpu.period = period;
  if (r.cpuset_cpus) cpu.cpus = r.cpuset_cpus;
  if (r.cpuset_mems) cpu.mems = r.cpuset_mems;
  if (Object.keys(cpu).length) res.cpu = cpu;

  const memory: NonNullable<OciResources['memory']> = {};
  const limit = int64(r.memory_limit_in_bytes);
  const swap = int64(r.memory_swap_limit_in_bytes);
  if (limit > 0) memory.limit = limit;
  if (swap !== 0 || limit > 0) {
    if (swapAccounting) {
      // OCI swap is memory+swap, like the CRI field. Without a CRI value the container gets
      // no swap beyond its memory limit (as containerd): swap = limit.
      if (swap > 0 && limit > 0 && swap < limit) {
        throw new InvalidArgumentError(`memory_swap_limit_in_bytes ${swap} is lower than memory_limit_in_bytes ${limit}`);
      }
      memory.swap = swap !== 0 ? swap : limit;
    } else if (swap !== 0) {
      warnings.push('memory_swap_limit_in_bytes ignored: the memory cgroup does not account swap on this host');
    }
  }
  if (Object.keys(memory).length) res.memory = memory;

  const huge = (r.hugepage_limits ?? []).filter((h) => h.page_size).map((h) => ({ pageSize: h.page_size, limit: int64(h.limit) }));
  if (huge.length) res.hugepageLimits = huge;

  const unified = r.unified ?? {};
  if (Object.keys(unified).length) {
    if (cgroupMode === 'v2') {
      res.unified = { ...unified };
    } else {
      // containerd's behaviour: raw cgroup v2 files mean nothing to v1 controllers.
      warnings.push(`unified cgroup settings ignored on a ${cgroupMode} cgroup host: ${Object.keys(unified).join(', ')}`);
    }
  }
  return res;
}

export const withResources: SpecOpt = async (spec, ctx: SpecContext) => {
  const r = ctx.input.config.linux?.resources;
  const accounting = r ? await ctx.deps.swapAccounting(ctx.input.cgroupMode) : false;
  // Devices rules (withDevices) live in the same object: keep them.
  let res = ociResourcesFromCri(r, ctx.input.cgroupMode, accounting, ctx.warnings);
  if (ctx.input.limitPolicy) res = enforceableResources(res, ctx.input.limitPolicy, ctx.warnings);
  spec.linux.resources = { ...(spec.linux.resources ?? {}), ...res };
};

/**
 * Lowering oom_score_adj below the daemon's own value needs CAP_SYS_RESOURCE, and the
 * runtime fails the whole create when the kernel refuses it. The kubelet asks for -997 for
 * Guaranteed pods; on hosts where the daemon lacks that capability the container gets the
 * lowest value the daemon can give, with a warning.
 */
export const withOomScoreAdj: SpecOpt = async (spec, ctx: SpecContext) => {
  const requested = Math.max(-1000, Math.min(1000, int64(ctx.input.config.linux?.resources?.oom_score_adj)));
  const floor = await ctx.deps.currentOomScoreAdj();
  const host = ctx.input.hostCaps ?? (await ctx.deps.hostCapabilities());
  let value = requested;
  if (requested < floor && !host.map((c) => c.toUpperCase().replace(/^(CAP_)?/, 'CAP_')).includes('CAP_SYS_RESOURCE')) {
    value = floor;
    ctx.warnings.push(`oom_score_adj ${requested} raised to ${floor}: the daemon lacks CAP_SYS_RESOURCE, so the kernel refuses lower values`);
  }
  // Always written: otherwise the container inherits whatever the monitor process has.
  spec.process.oomScoreAdj = value;
};

/** Sysctls of namespaces the container shares with the host would change the host: refused. */
function sysctlNamespace(key: string): 'net' | 'ipc' | 'uts' | undefined {
  if (key.startsWith('net.')) return 'net';
  if (key.startsWith('kernel.shm') || key.startsWith('kernel.msg') || key === 'kernel.sem' || key.startsWith('fs.mqueue.')) return 'ipc';
  if (key === 'kernel.hostname' || key === 'kernel.domainname') return 'uts';
  return undefined;
}

export const withSysctls: SpecOpt = (spec, ctx: SpecContext) => {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(ctx.input.defaultSysctls ?? {})) {
    const ns = sysctlNamespace(k);
    if (!ns) {
      ctx.warnings.push(`sysctl ${k} is not namespaced; not set`);
      continue;
    }
    if (!ctx.input.sandbox.namespaces[ns]) continue; // the host's namespace: leave it alone
    out[k] = v;
  }
  if (Object.keys(out).length) spec.linux.sysctl = out;
};
