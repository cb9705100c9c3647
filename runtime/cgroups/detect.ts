/**
 * Cgroup mode and driver detection. The mode decides which files stats and limits use;
 * the driver decides how cgroup_parent paths are spelled (cgroupfs paths vs systemd slices).
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';

/** v2: unified only; hybrid: v1 controllers plus a cgroup2 mount at unified/; v1: legacy only. */
export type CgroupMode = 'v2' | 'hybrid' | 'v1';

export interface CgroupInfo {
  mode: CgroupMode;
  driver: 'cgroupfs' | 'systemd';
  /** Mount point of the hierarchy root (v2) or of the v1 controllers' parent dir. */
  root: string;
  /** Controllers usable for limits: v2 from cgroup.controllers, v1 from mounted hierarchies. */
  controllers: string[];
  /** On hybrid hosts, the controllers bound to the cgroup2 hierarchy (crun 1.8 refuses any). */
  unifiedControllers: string[];
}

const CGROUP2_SUPER_MAGIC = 0x63677270;

async function isCgroup2(path: string): Promise<boolean> {
  try {
    const st = await fs.statfs(path);
    return Number(st.type) === CGROUP2_SUPER_MAGIC;
  } catch {
    return false;
  }
}

async function readWords(path: string): Promise<string[]> {
  try {
    return (await fs.readFile(path, 'utf8')).split(/\s+/).filter(Boolean);
  } catch {
    return [];
  }
}

export async function detectCgroups(driver: 'auto' | 'cgroupfs' | 'systemd', root = '/sys/fs/cgroup'): Promise<CgroupInfo> {
  const systemdPid1 = await fs.readlink('/proc/1/exe').then((p) => p.endsWith('/systemd'), () => false);
  const chosen = driver === 'auto' ? (systemdPid1 ? 'systemd' : 'cgroupfs') : driver;
  if (await isCgroup2(root)) {
    return { mode: 'v2', driver: chosen, root, controllers: await readWords(join(root, 'cgroup.controllers')), unifiedControllers: [] };
  }
  const controllers: string[] = [];
  for (const name of ['cpu', 'cpuacct', 'cpuset', 'memory', 'devices', 'freezer', 'blkio', 'pids', 'hugetlb', 'net_cls', 'perf_event']) {
    try {
      await fs.access(join(root, name, 'cgroup.procs'));
      controllers.push(name);
    } catch { /* not mounted */ }
  }
  const unified = join(root, 'unified');
  if (await isCgroup2(unified)) {
    return { mode: 'hybrid', driver: chosen, root, controllers, unifiedControllers: await readWords(join(unified, 'cgroup.controllers')) };
  }
  return { mode: 'v1', driver: chosen, root, controllers, unifiedControllers: [] };
}
