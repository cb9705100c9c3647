/**
 * Pod cgroup paths from LinuxPodSandboxConfig.cgroup_parent. The kubelet spells the
 * parent in its cgroup driver's form: a cgroupfs path (/kubepods/burstable/pod<uid>) or a
 * systemd slice name (kubepods-burstable-pod<uid>.slice). A slice name encodes its own
 * ancestry: each '-' separated prefix is a parent slice, so it expands to
 * /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid>.slice.
 */
import { posix } from 'node:path';
import { InvalidArgumentError } from '../errors.js';

export type CgroupDriver = 'cgroupfs' | 'systemd';

export interface PodCgroupPath {
  /**
   * The parent as the OCI runtime's cgroupsPath wants it for this driver: a cgroupfs
   * path ("/kubepods/burstable/pod1") or a slice name ("kubepods-burstable-pod1.slice").
   */
  parent: string;
  /** Filesystem path below the hierarchy root, with a leading '/'. */
  path: string;
}

/** Expands a systemd slice name to its path below the cgroup root ("-.slice" is the root). */
export function expandSlice(slice: string): string {
  if (!slice.endsWith('.slice') || slice.includes('/')) {
    throw new InvalidArgumentError(`cgroup_parent "${slice}" is not a systemd slice name (want e.g. kubepods-burstable-pod<uid>.slice)`);
  }
  if (slice === '-.slice') return '/';
  const stem = slice.slice(0, -'.slice'.length);
  const parts = stem.split('-');
  if (parts.some((p) => p === '')) {
    throw new InvalidArgumentError(`cgroup_parent "${slice}": a slice name must not have empty '-' separated parts`);
  }
  let path = '';
  let prefix = '';
  for (const part of parts) {
    prefix = prefix ? `${prefix}-${part}` : part;
    path += `/${prefix}.slice`;
  }
  return path;
}

/** Normalises a cgroupfs path; '..' may not climb above the root. */
export function normalizeCgroupfsPath(p: string): string {
  if (p.split('/').includes('..')) {
    throw new InvalidArgumentError(`cgroup_parent "${p}" must not contain ".."`);
  }
  const norm = posix.normalize(`/${p}`);
  return norm.length > 1 && norm.endsWith('/') ? norm.slice(0, -1) : norm;
}

/**
 * The pod cgroup for a cgroup_parent under a driver; undefined when the kubelet gave none.
 * Either spelling is accepted under either driver: a bare slice name is expanded; under the
 * systemd driver a path whose last element is a slice is reduced to that slice, since
 * systemd only knows slices by name.
 */
export function podCgroupPath(cgroupParent: string, driver: CgroupDriver): PodCgroupPath | undefined {
  const raw = cgroupParent.trim();
  if (!raw) return undefined;
  if (/[\n\0]/.test(raw)) throw new InvalidArgumentError(`cgroup_parent ${JSON.stringify(raw)} contains invalid characters`);
  const isSliceName = raw.endsWith('.slice') && !raw.includes('/');
  if (driver === 'systemd') {
    const slice = isSliceName ? raw : posix.basename(raw);
    if (!slice.endsWith('.slice')) {
      throw new InvalidArgumentError(`cgroup_parent "${raw}" must be a systemd slice (name.slice) with the systemd cgroup driver`);
    }
    return { parent: slice, path: expandSlice(slice) };
  }
  if (isSliceName) {
    const path = expandSlice(raw);
    return { parent: path, path };
  }
  const path = normalizeCgroupfsPath(raw);
  return { parent: path, path };
}
