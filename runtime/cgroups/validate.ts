/**
 * CRI LinuxContainerResources checked before anything is created or written: the values the
 * kernel would refuse (it answers EINVAL or ERANGE only after a cgroup exists), and the names
 * that become file names under a cgroup directory (unified keys, hugepage sizes) limited to
 * what a cgroup file can be called, so that no value can name a path outside it.
 *
 * Used by RunPodSandbox (resources and overhead), UpdatePodSandboxResources, CreateContainer
 * and UpdateContainerResources. Zero means "not set" in CRI everywhere.
 */
import { readFileSync } from 'node:fs';
import { InvalidArgumentError } from '../errors.js';

export interface CriResourcesIn {
  cpu_period?: string | number;
  cpu_quota?: string | number;
  cpu_shares?: string | number;
  memory_limit_in_bytes?: string | number;
  oom_score_adj?: string | number;
  cpuset_cpus?: string;
  cpuset_mems?: string;
  hugepage_limits?: Array<{ page_size?: string; limit?: string | number }>;
  unified?: Record<string, string>;
  memory_swap_limit_in_bytes?: string | number;
}

/** cfs_period_us: 1 ms to 1 s. */
const PERIOD = { min: 1000n, max: 1_000_000n };
/** cfs_quota_us: at least 1 ms; at most the kernel's max_cfs_runtime (2^44 - 1 us). */
const QUOTA = { min: 1000n, max: (1n << 44n) - 1n };
/** cpu.shares: the kubelet's MinShares and MaxShares. */
const SHARES = { min: 2n, max: 262_144n };
/** Far above any machine's memory, below every kernel and runtime overflow. */
const MAX_BYTES = 1n << 62n;
/** A cgroup interface file: "<controller>.<name>", as cgroup v2 names them. */
const UNIFIED_KEY = /^[a-z][a-z0-9_]*\.[a-z0-9_.]+$/;
/** The files a pod or container must not write: membership and the tree's own structure. */
const UNIFIED_DENIED = /^cgroup\./;
/** Hugepage sizes as the kubelet spells them: "2MB", "1GB", "64KB". */
const PAGE_SIZE = /^[1-9][0-9]{0,6}(KB|MB|GB)$/;
const CPU_LIST = /^\d{1,5}(-\d{1,5})?(,\d{1,5}(-\d{1,5})?)*$/;

function int(v: string | number | undefined | null, field: string): bigint {
  if (v === undefined || v === null || v === '') return 0n;
  try {
    return BigInt(typeof v === 'number' ? Math.trunc(v) : v.trim());
  } catch {
    throw new InvalidArgumentError(`${field} ${JSON.stringify(v)} is not an integer`);
  }
}

function range(v: bigint, field: string, min: bigint, max: bigint, also: bigint[] = []): void {
  if (v === 0n || also.includes(v)) return;
  if (v < min || v > max) {
    throw new InvalidArgumentError(`${field} ${v} is out of range (${also.length ? `${also.join(' or ')}, or ` : ''}${min}..${max}; 0 leaves it unset)`);
  }
}

/** The ids in a cpuset list ("0-3,8"), or InvalidArgument. */
export function parseCpuList(list: string, field: string): number[] {
  if (!CPU_LIST.test(list)) throw new InvalidArgumentError(`${field} ${JSON.stringify(list.slice(0, 100))} is not a list like "0-3,8"`);
  const out: number[] = [];
  for (const part of list.split(',')) {
    const [a, b] = part.split('-').map(Number) as [number, number | undefined];
    if (b !== undefined && b < a) throw new InvalidArgumentError(`${field} ${JSON.stringify(list)}: range ${part} runs backwards`);
    for (let i = a; i <= (b ?? a); i++) out.push(i);
  }
  return out;
}

function onlineSet(file: string): Set<number> | undefined {
  try {
    return new Set(parseCpuList(readFileSync(file, 'utf8').trim(), file));
  } catch {
    return undefined;
  }
}

/** The host's online cpus and memory nodes (undefined where sysfs does not say). */
export interface HostTopology { cpus?: Set<number>; mems?: Set<number> }

export function hostTopology(): HostTopology {
  return { cpus: onlineSet('/sys/devices/system/cpu/online'), mems: onlineSet('/sys/devices/system/node/online') };
}

let topology: HostTopology | undefined;

/**
 * Throws InvalidArgumentError naming the first field the kernel would refuse or that could
 * name a path; `what` prefixes the message ("container resources", "pod overhead").
 */
export function validateCriResources(r: CriResourcesIn | null | undefined, what: string, host: HostTopology = (topology ??= hostTopology())): void {
  if (!r) return;
  const f = (name: string) => `${what}: ${name}`;
  range(int(r.cpu_period, f('cpu_period')), f('cpu_period'), PERIOD.min, PERIOD.max);
  range(int(r.cpu_quota, f('cpu_quota')), f('cpu_quota'), QUOTA.min, QUOTA.max, [-1n]);
  range(int(r.cpu_shares, f('cpu_shares')), f('cpu_shares'), SHARES.min, SHARES.max, [1n]);
  const limit = int(r.memory_limit_in_bytes, f('memory_limit_in_bytes'));
  range(limit, f('memory_limit_in_bytes'), 1n, MAX_BYTES);
  const swap = int(r.memory_swap_limit_in_bytes, f('memory_swap_limit_in_bytes'));
  range(swap, f('memory_swap_limit_in_bytes'), 1n, MAX_BYTES, [-1n]);
  range(int(r.oom_score_adj, f('oom_score_adj')), f('oom_score_adj'), -1000n, 1000n);
  for (const [field, online] of [['cpuset_cpus', host.cpus], ['cpuset_mems', host.mems]] as const) {
    const list = r[field];
    if (!list) continue;
    const ids = parseCpuList(list, f(field));
    const missing = online ? ids.filter((i) => !online.has(i)) : [];
    if (missing.length) throw new InvalidArgumentError(`${f(field)} ${JSON.stringify(list)}: ${missing.slice(0, 5).join(',')} not online on this node`);
  }
  for (const h of r.hugepage_limits ?? []) {
    if (!h.page_size && int(h.limit, f('hugepage_limits.limit')) === 0n) continue;
    if (!PAGE_SIZE.test(h.page_size ?? '')) throw new InvalidArgumentError(`${f('hugepage_limits')}: page_size ${JSON.stringify((h.page_size ?? '').slice(0, 64))} is not a size like "2MB" or "1GB"`);
    const l = int(h.limit, f('hugepage_limits.limit'));
    if (l < 0n || l > MAX_BYTES) throw new InvalidArgumentError(`${f('hugepage_limits')}: limit ${l} for ${h.page_size} is out of range`);
  }
  for (const [key, value] of Object.entries(r.unified ?? {})) {
    if (!UNIFIED_KEY.test(key) || key.length > 64) throw new InvalidArgumentError(`${f('unified')}: ${JSON.stringify(key.slice(0, 64))} is not a cgroup file name like "memory.high"`);
    if (UNIFIED_DENIED.test(key)) throw new InvalidArgumentError(`${f('unified')}: ${key} is the cgroup tree's own file, not a limit`);
    if (/[\0\n]/.test(value) || value.length > 4096) throw new InvalidArgumentError(`${f('unified')}: the value of ${key} must be one line of at most 4096 bytes`);
  }
}
