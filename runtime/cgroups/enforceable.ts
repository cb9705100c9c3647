/**
 * Limits the host cannot enforce are dropped, with a warning, instead of failing the create.
 *
 * The kubelet asks for hugepage limits on every pod (0 when the pod wants none), whatever the
 * host has. On a hybrid host the only hugetlb controller may sit on the cgroup2 mount, which
 * crun and runc do not write to (they use the v1 hierarchies), and a v2 host or guest may not
 * offer hugetlb or cpuset at all: handing such a limit to the OCI runtime fails every
 * container of every pod. containerd drops hugepage limits it cannot apply (its
 * `disable_hugetlb_controller`); corral does the same for every controller, and
 * `[cgroups] unenforceable_limits = "fail"` turns the drop into a refused create.
 */
import { FailedPreconditionError } from '../errors.js';
import type { OciResources } from '../oci/spec/types.js';
import type { CgroupInfo } from './detect.js';

export interface LimitPolicy {
  /** Controllers the OCI runtime writes limits into (see limitControllers). */
  controllers: readonly string[];
  /** containerd's key: hugepage limits are never passed on, even where hugetlb exists. */
  disableHugetlb: boolean;
  /** "drop": leave the limit out and warn; "fail": refuse the request. */
  unenforceable: 'drop' | 'fail';
}

/**
 * The controllers a runtime can write limits into. v2: the root's cgroup.controllers. v1 and
 * hybrid: the mounted v1 hierarchies; on hybrid the cgroup2 mount's controllers do not count,
 * because runc and crun (corral's wrapper hides that mount from crun) write v1 files only.
 */
export function limitControllers(info: Pick<CgroupInfo, 'controllers'>): string[] {
  return [...info.controllers];
}

/** The limits of `res` the policy allows, with one warning per dropped controller. Pure. */
export function enforceableResources(res: OciResources, policy: LimitPolicy, warnings: string[]): OciResources {
  // No controller found at all means detection could not read the host (an injected root in
  // tests, a container without /sys/fs/cgroup): nothing is known to be missing, so nothing is dropped.
  const has = (c: string) => policy.controllers.length === 0 || policy.controllers.includes(c);
  const out: OciResources = { ...res };
  const dropped: string[] = [];
  const refuse = (what: string, controller: string) => {
    if (policy.unenforceable === 'fail') {
      throw new FailedPreconditionError(`${what} cannot be enforced on this host: the ${controller} cgroup controller is not available where the OCI runtime writes limits`);
    }
    dropped.push(`${what} (no ${controller} controller)`);
  };

  if (out.hugepageLimits?.length) {
    if (policy.disableHugetlb) {
      // Dropped on purpose, not for want of a controller: no warning for every container.
      delete out.hugepageLimits;
    } else if (!has('hugetlb')) {
      // The kubelet sends limit 0 for every page size a pod does not use: nothing is lost then.
      if (out.hugepageLimits.some((h) => h.limit > 0)) refuse('hugepage limits', 'hugetlb');
      delete out.hugepageLimits;
    }
  }
  if (out.cpu) {
    const cpu = { ...out.cpu };
    if ((cpu.cpus || cpu.mems) && !has('cpuset')) {
      refuse(`cpuset ${[cpu.cpus && `cpus=${cpu.cpus}`, cpu.mems && `mems=${cpu.mems}`].filter(Boolean).join(' ')}`, 'cpuset');
      delete cpu.cpus;
      delete cpu.mems;
    }
    if ((cpu.shares !== undefined || cpu.quota !== undefined || cpu.period !== undefined) && !has('cpu')) {
      refuse('cpu shares/quota', 'cpu');
      delete cpu.shares;
      delete cpu.quota;
      delete cpu.period;
    }
    if (Object.keys(cpu).length) out.cpu = cpu;
    else delete out.cpu;
  }
  if (out.memory && !has('memory')) {
    refuse('memory limits', 'memory');
    delete out.memory;
  }
  if (out.pids && !has('pids')) {
    refuse(`pids limit ${out.pids.limit}`, 'pids');
    delete out.pids;
  }
  if (dropped.length) warnings.push(`limits dropped: ${dropped.join(', ')}`);
  return out;
}
