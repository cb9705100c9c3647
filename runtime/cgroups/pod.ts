/**
 * The pod cgroup when corral has to create it (the kubelet normally creates it first;
 * crictl users and tests do not). v1, hybrid and v2 differ by where a controller's files
 * live and by a table of file names (crun's approach), not by two code paths.
 *
 * Limits: the kubelet sends `resources` (the sum of the containers' limits) and `overhead`
 * (the runtime class' overhead); the pod cgroup gets their sum, as the kubelet's own pod
 * cgroup manager computes it. A limit that is absent (0) in `resources` stays unlimited.
 */
import { promises as fs } from 'node:fs';
import { dirname, join } from 'node:path';
import { InvalidArgumentError, errnoCode } from '../errors.js';
import type { CgroupInfo } from './detect.js';

/** A LinuxContainerResources as proto-loader gives it (int64 as decimal strings). */
export interface CriResources {
  cpu_period?: string;
  cpu_quota?: string;
  cpu_shares?: string;
  memory_limit_in_bytes?: string;
  memory_swap_limit_in_bytes?: string;
  cpuset_cpus?: string;
  cpuset_mems?: string;
  hugepage_limits?: Array<{ page_size: string; limit: string }>;
  unified?: Record<string, string>;
}

/** The limits corral writes into a pod cgroup. */
export interface PodLimits {
  cpuShares?: bigint;
  cpuQuota?: bigint;
  cpuPeriod?: bigint;
  memoryLimit?: bigint;
  /** memory + swap, CRI's meaning. */
  memorySwapLimit?: bigint;
  cpusetCpus?: string;
  cpusetMems?: string;
  hugepages: Record<string, bigint>;
  /** v2 only: raw file -> value. */
  unified: Record<string, string>;
}

/** One file write: `controller` picks the v1 hierarchy (ignored on v2). */
export interface CgroupWrite {
  controller: string;
  file: string;
  value: string;
}

type Layout = 'v1' | 'v2';

/** File names per layout (v1 and hybrid share the v1 layout: crun drops the hybrid unified part). */
const FILES = {
  cpuShares: { controller: 'cpu', v1: 'cpu.shares', v2: 'cpu.weight' },
  cpuPeriod: { controller: 'cpu', v1: 'cpu.cfs_period_us', v2: 'cpu.max' },
  cpuQuota: { controller: 'cpu', v1: 'cpu.cfs_quota_us', v2: 'cpu.max' },
  memoryLimit: { controller: 'memory', v1: 'memory.limit_in_bytes', v2: 'memory.max' },
  memorySwap: { controller: 'memory', v1: 'memory.memsw.limit_in_bytes', v2: 'memory.swap.max' },
  cpusetCpus: { controller: 'cpuset', v1: 'cpuset.cpus', v2: 'cpuset.cpus' },
  cpusetMems: { controller: 'cpuset', v1: 'cpuset.mems', v2: 'cpuset.mems' },
  hugetlb: { controller: 'hugetlb', v1: (size: string) => `hugetlb.${size}.limit_in_bytes`, v2: (size: string) => `hugetlb.${size}.max` },
} as const;

/** v2 controllers corral enables on the way down to a pod cgroup it creates. */
const V2_CONTROLLERS = ['cpu', 'cpuset', 'memory', 'pids', 'hugetlb', 'io'];

function layout(info: Pick<CgroupInfo, 'mode'>): Layout {
  return info.mode === 'v2' ? 'v2' : 'v1';
}

function int(s: string | undefined): bigint {
  if (!s) return 0n;
  try {
    return BigInt(s);
  } catch {
    return 0n;
  }
}

/** resources + overhead, the kubelet's pod-level sum. */
export function sumPodLimits(resources: CriResources | null | undefined, overhead: CriResources | null | undefined): PodLimits {
  const r = resources ?? {};
  const o = overhead ?? {};
  const out: PodLimits = { hugepages: {}, unified: { ...(r.unified ?? {}) } };
  const shares = int(r.cpu_shares) + int(o.cpu_shares);
  if (shares > 0n) out.cpuShares = shares < 2n ? 2n : shares;
  const period = int(r.cpu_period) || int(o.cpu_period);
  if (int(r.cpu_quota) > 0n) {
    out.cpuQuota = int(r.cpu_quota) + (int(o.cpu_quota) > 0n ? int(o.cpu_quota) : 0n);
    out.cpuPeriod = period || 100000n;
  } else if (period > 0n) {
    out.cpuPeriod = period;
  }
  if (int(r.memory_limit_in_bytes) > 0n) {
    const extra = int(o.memory_limit_in_bytes) > 0n ? int(o.memory_limit_in_bytes) : 0n;
    out.memoryLimit = int(r.memory_limit_in_bytes) + extra;
    if (int(r.memory_swap_limit_in_bytes) > 0n) out.memorySwapLimit = int(r.memory_swap_limit_in_bytes) + extra;
  }
  if (r.cpuset_cpus) out.cpusetCpus = r.cpuset_cpus;
  if (r.cpuset_mems) out.cpusetMems = r.cpuset_mems;
  for (const h of r.hugepage_limits ?? []) {
    if (h.page_size && int(h.limit) > 0n) out.hugepages[h.page_size] = int(h.limit);
  }
  return out;
}

/** cgroup v1 cpu.shares [2, 262144] onto v2 cpu.weight [1, 10000], the formula runc and crun use. */
export function sharesToWeight(shares: bigint): bigint {
  if (shares <= 0n) return 0n;
  const s = shares < 2n ? 2n : shares > 262144n ? 262144n : shares;
  return 1n + ((s - 2n) * 9999n) / 262142n;
}

/** The writes that apply `limits` in this cgroup mode, in a safe order. Pure. */
export function limitWrites(info: Pick<CgroupInfo, 'mode'>, limits: PodLimits): CgroupWrite[] {
  const l = layout(info);
  const w: CgroupWrite[] = [];
  const put = (f: { controller: string; v1: string; v2: string }, value: string) =>
    w.push({ controller: f.controller, file: f[l], value });
  if (limits.cpusetCpus) put(FILES.cpusetCpus, limits.cpusetCpus);
  if (limits.cpusetMems) put(FILES.cpusetMems, limits.cpusetMems);
  if (l === 'v1') {
    if (limits.cpuShares) put(FILES.cpuShares, String(limits.cpuShares));
    // The kernel checks quota against the current period: the period goes first.
    if (limits.cpuPeriod) put(FILES.cpuPeriod, String(limits.cpuPeriod));
    if (limits.cpuQuota) put(FILES.cpuQuota, String(limits.cpuQuota));
    if (limits.memoryLimit) put(FILES.memoryLimit, String(limits.memoryLimit));
    if (limits.memorySwapLimit) put(FILES.memorySwap, String(limits.memorySwapLimit));
  } else {
    if (limits.cpuShares) put(FILES.cpuShares, String(sharesToWeight(limits.cpuShares)));
    if (limits.cpuQuota || limits.cpuPeriod) {
      put(FILES.cpuQuota, `${limits.cpuQuota ? String(limits.cpuQuota) : 'max'} ${String(limits.cpuPeriod ?? 100000n)}`);
    }
    if (limits.memoryLimit) put(FILES.memoryLimit, String(limits.memoryLimit));
    // v2 swap is separate from memory; CRI's value is memory + swap.
    if (limits.memorySwapLimit && limits.memoryLimit) {
      const swap = limits.memorySwapLimit - limits.memoryLimit;
      put(FILES.memorySwap, String(swap > 0n ? swap : 0n));
    }
  }
  for (const [size, limit] of Object.entries(limits.hugepages)) {
    w.push({ controller: FILES.hugetlb.controller, file: FILES.hugetlb[l](size), value: String(limit) });
  }
  if (l === 'v2') {
    for (const [file, value] of Object.entries(limits.unified)) w.push({ controller: file.split('.')[0]!, file, value });
  }
  return w;
}

/** The directories that hold the pod cgroup, one per v1 hierarchy or the single v2 one. */
export function podCgroupDirs(info: CgroupInfo, path: string): Array<{ controller: string; dir: string }> {
  if (info.mode === 'v2') return [{ controller: '', dir: join(info.root, path) }];
  const dirs = info.controllers.map((c) => ({ controller: c, dir: join(info.root, c, path) }));
  // runc also places containers in the hybrid cgroup2 tree and creates the missing parents
  // there; a pod cgroup corral makes exists there too so that its removal takes them along.
  if (info.mode === 'hybrid') dirs.push({ controller: 'unified', dir: join(info.root, 'unified', path) });
  return dirs;
}

/**
 * Every directory a runtime may have made for a container's cgroups path: one per mounted
 * hierarchy, named ones (name=systemd) included, which runc and crun populate too.
 */
export async function allHierarchyDirs(info: CgroupInfo, path: string): Promise<string[]> {
  if (info.mode === 'v2') return [join(info.root, path)];
  const entries = await fs.readdir(info.root, { withFileTypes: true }).catch(() => []);
  // cpu and cpuacct are symlinks to cpu,cpuacct: the real directory once.
  return entries.filter((e) => e.isDirectory()).map((e) => join(info.root, e.name, path));
}

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(() => true, () => false);
}

/** True when the pod cgroup already exists (the kubelet made it): corral then leaves it alone. */
export async function podCgroupExists(info: CgroupInfo, path: string): Promise<boolean> {
  const dirs = podCgroupDirs(info, path);
  const probe = dirs.find((d) => d.controller === 'memory') ?? dirs[0];
  return probe ? exists(probe.dir) : false;
}

async function readTrim(p: string): Promise<string> {
  return (await fs.readFile(p, 'utf8').catch(() => '')).trim();
}

/**
 * Creates the pod cgroup (every missing level) and returns the directories it created,
 * outermost first, so that removal deletes exactly those.
 */
export async function createPodCgroup(info: CgroupInfo, path: string): Promise<string[]> {
  const created: string[] = [];
  const seen = new Set<string>();
  const parts = path.split('/').filter(Boolean);
  try {
    for (const { controller } of podCgroupDirs(info, path)) {
      const base = info.mode === 'v2' ? info.root : join(info.root, controller);
      if (!(await exists(base))) continue; // hierarchy not mounted here
      const real = await fs.realpath(base).catch(() => base);
      // cpu and cpuacct may be one hierarchy under two names.
      if (seen.has(real)) continue;
      seen.add(real);
      let cur = base;
      for (const part of parts) {
        const parent = cur;
        cur = join(cur, part);
        if (info.mode === 'v2') await enableV2Controllers(parent);
        try {
          await fs.mkdir(cur);
          created.push(cur);
        } catch (err) {
          if (errnoCode(err) !== 'EEXIST') throw err;
          continue;
        }
        // A new v1 cpuset cgroup starts with no cpus or mems: nothing could run in it.
        if (controller === 'cpuset') {
          for (const f of ['cpuset.cpus', 'cpuset.mems']) {
            if (!(await readTrim(join(cur, f)))) {
              const v = await readTrim(join(parent, f));
              if (v) await fs.writeFile(join(cur, f), v);
            }
          }
        }
      }
    }
  } catch (err) {
    await removeCgroupDirs(created, 1).catch(() => undefined);
    throw err;
  }
  return created;
}

/** Turns on, in a v2 parent, the controllers it offers that pods use. */
async function enableV2Controllers(parent: string): Promise<void> {
  const offered = (await readTrim(join(parent, 'cgroup.controllers'))).split(/\s+/).filter(Boolean);
  const enabled = new Set((await readTrim(join(parent, 'cgroup.subtree_control'))).split(/\s+/).filter(Boolean));
  const want = V2_CONTROLLERS.filter((c) => offered.includes(c) && !enabled.has(c));
  if (want.length === 0) return;
  // Best effort: a parent with processes of its own refuses (EBUSY); limits then fail visibly later.
  await fs.writeFile(join(parent, 'cgroup.subtree_control'), want.map((c) => `+${c}`).join(' ')).catch(() => undefined);
}

/** Writes the limits into the pod cgroup; the first refused write throws naming the file and value. */
export async function applyPodLimits(info: CgroupInfo, path: string, limits: PodLimits): Promise<void> {
  const dirs = podCgroupDirs(info, path);
  for (const w of limitWrites(info, limits)) {
    // A controller this host lacks (hugetlb in a v2 guest, on hybrid only on the cgroup2 mount)
    // cannot be limited; containers get the same treatment (enforceable.ts).
    if (w.controller !== 'cgroup' && !info.controllers.includes(w.controller)) continue;
    const target = info.mode === 'v2' ? dirs[0] : dirs.find((d) => d.controller === w.controller);
    if (!target) continue; // controller not mounted on this host
    const file = join(target.dir, w.file);
    // Names come from requests (unified keys, hugepage sizes): validate.ts checks them; this
    // makes sure no name can ever lead out of the cgroup.
    if (dirname(file) !== target.dir) throw new InvalidArgumentError(`cgroup file ${JSON.stringify(w.file)} is not a file of ${target.dir}`);
    try {
      await fs.writeFile(file, w.value);
    } catch (err) {
      // v1 refuses a memory limit above memsw (or memsw below memory): retry the pair in the other order.
      if (w.file === 'memory.limit_in_bytes' && errnoCode(err) === 'EINVAL' && limits.memorySwapLimit) {
        await fs.writeFile(join(target.dir, 'memory.memsw.limit_in_bytes'), String(limits.memorySwapLimit));
        await fs.writeFile(file, w.value);
        continue;
      }
      if (w.file === 'memory.memsw.limit_in_bytes' && errnoCode(err) === 'ENOENT') continue; // no swap accounting
      throw new Error(`cgroup ${file}: writing ${w.value}: ${(err as Error).message}`, { cause: err });
    }
  }
}

const CGROUP_SUPER_MAGIC = 0x27e0eb;
const CGROUP2_SUPER_MAGIC = 0x63677270;

async function onCgroupFs(dir: string): Promise<boolean> {
  const t = await fs.statfs(dir).then((s) => Number(s.type), () => 0);
  return t === CGROUP_SUPER_MAGIC || t === CGROUP2_SUPER_MAGIC;
}

/**
 * Removes cgroup directories (innermost first). A cgroup whose last processes are still
 * exiting answers EBUSY for a moment: retried for up to `attempts` x 50 ms.
 */
export async function removeCgroupDirs(dirs: string[], attempts = 40): Promise<void> {
  for (const dir of [...dirs].reverse()) {
    for (let i = 0; ; i++) {
      try {
        await fs.rmdir(dir);
        break;
      } catch (err) {
        const code = errnoCode(err);
        if (code === 'ENOENT') break;
        if (code === 'ENOTEMPTY' && !(await onCgroupFs(dir))) {
          // A plain directory standing in for a cgroup (tests with an injected root).
          await fs.rm(dir, { recursive: true, force: true });
          break;
        }
        if ((code === 'EBUSY' || code === 'ENOTEMPTY') && i + 1 < attempts) {
          await new Promise((r) => setTimeout(r, 50));
          continue;
        }
        throw err;
      }
    }
  }
}
