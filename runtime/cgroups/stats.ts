/**
 * Resource usage of one cgroup (a container's or a pod's), for ContainerStats,
 * PodSandboxStats and the cAdvisor-style metrics. One reader serves cgroup v2 and
 * v1/hybrid: the modes differ by a table of (controller, file, key, scale) per field, not
 * by two code paths, as crun does it. The hierarchy root is injectable, so tests point it
 * at fake trees.
 *
 * Definitions follow the kubelet's (and cAdvisor's): working set = usage - inactive_file
 * (the memory the kernel cannot reclaim without swapping, which is what the eviction
 * manager compares with limits); available = limit - working set, only when a limit is set.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { CgroupMode } from './detect.js';

/** One PSI line: some/full with their averages (percent) and the total stall time in µs. */
export interface PsiLine { avg10: number; avg60: number; avg300: number; totalUs: bigint }
export interface Psi { some: PsiLine; full?: PsiLine }

export interface IoDeviceStats { major: number; minor: number; readBytes: bigint; writeBytes: bigint; readIos: bigint; writeIos: bigint }

export interface CgroupStats {
  /** Wall clock of the read, unix nanoseconds (CRI's timestamp fields). */
  timestampNs: bigint;
  /** Monotonic clock of the read, for rates (usage_nano_cores). */
  monotonicNs: bigint;
  cpu?: {
    usageNs: bigint;
    userNs?: bigint;
    systemNs?: bigint;
    periods?: bigint;
    throttledPeriods?: bigint;
    throttledNs?: bigint;
  };
  memory?: {
    usageBytes: bigint;
    workingSetBytes: bigint;
    rssBytes?: bigint;
    cacheBytes?: bigint;
    pageFaults?: bigint;
    majorPageFaults?: bigint;
    /** Undefined when unlimited. */
    limitBytes?: bigint;
    /** limit - working set; undefined when unlimited. */
    availableBytes?: bigint;
    oomKills?: bigint;
  };
  swap?: { usageBytes: bigint; limitBytes?: bigint; availableBytes?: bigint };
  pids?: { current: bigint; limit?: bigint };
  io?: { devices: IoDeviceStats[]; readBytes: bigint; writeBytes: bigint; readIos: bigint; writeIos: bigint };
  /** Pressure stall information, where the kernel exposes it for this cgroup. */
  psi?: { cpu?: Psi; memory?: Psi; io?: Psi };
  /** Only with read(path, { detail: true }): what the cAdvisor metric set adds. */
  detail?: StatsDetail;
}

/** The extra numbers of ListPodSandboxMetrics (cAdvisor's container_spec_*, threads, fds, ...). */
export interface StatsDetail {
  memoryFailcnt?: bigint;
  kernelBytes?: bigint;
  mappedFileBytes?: bigint;
  maxUsageBytes?: bigint;
  /** Soft limit (v1) / memory.low (v2); undefined when unset. */
  reservationBytes?: bigint;
  /** cpu.shares, or cpu.weight converted to shares on v2. */
  cpuShares?: bigint;
  cpuPeriodUs?: bigint;
  /** Undefined when there is no quota. */
  cpuQuotaUs?: bigint;
  /** memsw limit (v1) / memory.swap.max (v2); undefined when unlimited. */
  swapLimitBytes?: bigint;
  threads?: bigint;
  /** pids.max; undefined when unlimited. */
  threadsMax?: bigint;
  /** Open file descriptors and sockets of the cgroup's processes (from /proc). */
  fds?: bigint;
  sockets?: bigint;
  /** memory.events "high" and "max" (v2); on v1 high is 0 and max is memory.failcnt. */
  memoryEventsHigh?: bigint;
  memoryEventsMax?: bigint;
  /** Soft RLIMIT_NOFILE of the cgroup's first process (from /proc/<pid>/limits). */
  nofileSoft?: bigint;
}

export interface ReadOptions {
  /** Also read StatsDetail (more files, and /proc of every process: metrics only). */
  detail?: boolean;
}

/** Where a value lives: a controller's hierarchy (v1; ignored on v2), a file, a key of a flat-keyed file, a scale to bytes/ns. */
interface Source { ctl: string; file: string; key?: string; scale?: bigint }
type Layout = 'v1' | 'v2';
type Field =
  | 'cpuUsage' | 'cpuUser' | 'cpuSystem' | 'cpuPeriods' | 'cpuThrottled' | 'cpuThrottledTime'
  | 'memUsage' | 'memLimit' | 'memInactiveFile' | 'memRss' | 'memCache' | 'memPgfault' | 'memPgmajfault' | 'memOomKill'
  | 'memswUsage' | 'memswLimit' | 'swapUsage' | 'swapLimit'
  | 'pidsCurrent' | 'pidsMax'
  | 'memFailcnt' | 'memKernel' | 'memMapped' | 'memMaxUsage' | 'memReservation' | 'memEventsHigh' | 'memEventsMax'
  | 'cpuSharesSpec' | 'cpuPeriodSpec' | 'cpuQuotaSpec';

const US = 1000n;

/**
 * The table. v1 keeps hierarchical totals under total_* in memory.stat (the container's
 * children included, as v2's memory.stat always is). v1 has no swap-only files: swap is
 * memsw - mem, computed below; v2 has no memsw.
 */
export const STATS_FILES: Record<Field, Record<Layout, Source | null>> = {
  cpuUsage: { v1: { ctl: 'cpuacct', file: 'cpuacct.usage' }, v2: { ctl: 'cpu', file: 'cpu.stat', key: 'usage_usec', scale: US } },
  cpuUser: { v1: { ctl: 'cpuacct', file: 'cpuacct.usage_user' }, v2: { ctl: 'cpu', file: 'cpu.stat', key: 'user_usec', scale: US } },
  cpuSystem: { v1: { ctl: 'cpuacct', file: 'cpuacct.usage_sys' }, v2: { ctl: 'cpu', file: 'cpu.stat', key: 'system_usec', scale: US } },
  cpuPeriods: { v1: { ctl: 'cpu', file: 'cpu.stat', key: 'nr_periods' }, v2: { ctl: 'cpu', file: 'cpu.stat', key: 'nr_periods' } },
  cpuThrottled: { v1: { ctl: 'cpu', file: 'cpu.stat', key: 'nr_throttled' }, v2: { ctl: 'cpu', file: 'cpu.stat', key: 'nr_throttled' } },
  cpuThrottledTime: { v1: { ctl: 'cpu', file: 'cpu.stat', key: 'throttled_time' }, v2: { ctl: 'cpu', file: 'cpu.stat', key: 'throttled_usec', scale: US } },
  memUsage: { v1: { ctl: 'memory', file: 'memory.usage_in_bytes' }, v2: { ctl: 'memory', file: 'memory.current' } },
  memLimit: { v1: { ctl: 'memory', file: 'memory.limit_in_bytes' }, v2: { ctl: 'memory', file: 'memory.max' } },
  memInactiveFile: { v1: { ctl: 'memory', file: 'memory.stat', key: 'total_inactive_file' }, v2: { ctl: 'memory', file: 'memory.stat', key: 'inactive_file' } },
  memRss: { v1: { ctl: 'memory', file: 'memory.stat', key: 'total_rss' }, v2: { ctl: 'memory', file: 'memory.stat', key: 'anon' } },
  memCache: { v1: { ctl: 'memory', file: 'memory.stat', key: 'total_cache' }, v2: { ctl: 'memory', file: 'memory.stat', key: 'file' } },
  memPgfault: { v1: { ctl: 'memory', file: 'memory.stat', key: 'total_pgfault' }, v2: { ctl: 'memory', file: 'memory.stat', key: 'pgfault' } },
  memPgmajfault: { v1: { ctl: 'memory', file: 'memory.stat', key: 'total_pgmajfault' }, v2: { ctl: 'memory', file: 'memory.stat', key: 'pgmajfault' } },
  memOomKill: { v1: { ctl: 'memory', file: 'memory.oom_control', key: 'oom_kill' }, v2: { ctl: 'memory', file: 'memory.events', key: 'oom_kill' } },
  memswUsage: { v1: { ctl: 'memory', file: 'memory.memsw.usage_in_bytes' }, v2: null },
  memswLimit: { v1: { ctl: 'memory', file: 'memory.memsw.limit_in_bytes' }, v2: null },
  swapUsage: { v1: null, v2: { ctl: 'memory', file: 'memory.swap.current' } },
  swapLimit: { v1: null, v2: { ctl: 'memory', file: 'memory.swap.max' } },
  pidsCurrent: { v1: { ctl: 'pids', file: 'pids.current' }, v2: { ctl: 'pids', file: 'pids.current' } },
  pidsMax: { v1: { ctl: 'pids', file: 'pids.max' }, v2: { ctl: 'pids', file: 'pids.max' } },
  // Detail (metrics) fields. v2 has no failcnt: cAdvisor counts memory.events' "max" hits.
  memFailcnt: { v1: { ctl: 'memory', file: 'memory.failcnt' }, v2: { ctl: 'memory', file: 'memory.events', key: 'max' } },
  memKernel: { v1: { ctl: 'memory', file: 'memory.kmem.usage_in_bytes' }, v2: { ctl: 'memory', file: 'memory.stat', key: 'kernel' } },
  memMapped: { v1: { ctl: 'memory', file: 'memory.stat', key: 'total_mapped_file' }, v2: { ctl: 'memory', file: 'memory.stat', key: 'file_mapped' } },
  memMaxUsage: { v1: { ctl: 'memory', file: 'memory.max_usage_in_bytes' }, v2: { ctl: 'memory', file: 'memory.peak' } },
  memReservation: { v1: { ctl: 'memory', file: 'memory.soft_limit_in_bytes' }, v2: { ctl: 'memory', file: 'memory.low' } },
  // v1 has no memory.events: no memory.high boundary exists to be crossed, and the hits of the
  // limit are memory.failcnt.
  memEventsHigh: { v1: null, v2: { ctl: 'memory', file: 'memory.events', key: 'high' } },
  memEventsMax: { v1: { ctl: 'memory', file: 'memory.failcnt' }, v2: { ctl: 'memory', file: 'memory.events', key: 'max' } },
  cpuSharesSpec: { v1: { ctl: 'cpu', file: 'cpu.shares' }, v2: { ctl: 'cpu', file: 'cpu.weight' } },
  // v2 keeps quota and period in one file (cpu.max: "<quota|max> <period>"), parsed below.
  cpuPeriodSpec: { v1: { ctl: 'cpu', file: 'cpu.cfs_period_us' }, v2: null },
  cpuQuotaSpec: { v1: { ctl: 'cpu', file: 'cpu.cfs_quota_us' }, v2: null },
};

/** v1 io files, in order of preference: the throttle layer sees every bio; bfq only its own queues. */
const V1_IO_FILES = [
  { bytes: 'blkio.throttle.io_service_bytes_recursive', ios: 'blkio.throttle.io_serviced_recursive' },
  { bytes: 'blkio.bfq.io_service_bytes_recursive', ios: 'blkio.bfq.io_serviced_recursive' },
];

/**
 * v1 "unlimited" is PAGE_COUNTER_MAX pages: 9223372036854771712 with 4 KiB pages, larger
 * on 64 KiB-page kernels but always above 2^62.
 */
const V1_UNLIMITED = 1n << 62n;

/** "max" or an absurd v1 value means no limit. */
function parseLimit(text: string | undefined): bigint | undefined {
  if (text === undefined) return undefined;
  const t = text.trim();
  if (t === 'max' || t === '') return undefined;
  const n = toBig(t);
  return n === undefined || n >= V1_UNLIMITED ? undefined : n;
}

function toBig(s: string | undefined): bigint | undefined {
  if (s === undefined) return undefined;
  const t = s.trim();
  if (!/^-?\d+$/.test(t)) return undefined;
  return BigInt(t);
}

/** "key value" lines (memory.stat, cpu.stat, memory.events, oom_control). */
export function parseFlatKeyed(text: string): Map<string, string> {
  const m = new Map<string, string>();
  for (const line of text.split('\n')) {
    const i = line.indexOf(' ');
    if (i > 0) m.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return m;
}

/** A cpu/memory/io.pressure file. */
export function parsePsi(text: string): Psi | undefined {
  const lines: Record<string, PsiLine> = {};
  for (const line of text.split('\n')) {
    const [kind, ...fields] = line.trim().split(/\s+/);
    if (kind !== 'some' && kind !== 'full') continue;
    const kv = Object.fromEntries(fields.map((f) => f.split('=') as [string, string]));
    lines[kind] = { avg10: Number(kv.avg10 ?? 0), avg60: Number(kv.avg60 ?? 0), avg300: Number(kv.avg300 ?? 0), totalUs: toBig(kv.total) ?? 0n };
  }
  if (!lines.some) return undefined;
  return { some: lines.some, ...(lines.full ? { full: lines.full } : {}) };
}

/** v2 io.stat: "maj:min rbytes=.. wbytes=.. rios=.. wios=.. dbytes=.. dios=..". */
export function parseIoStatV2(text: string): IoDeviceStats[] {
  const out: IoDeviceStats[] = [];
  for (const line of text.split('\n')) {
    const [dev, ...fields] = line.trim().split(/\s+/);
    const m = /^(\d+):(\d+)$/.exec(dev ?? '');
    if (!m) continue;
    const kv = Object.fromEntries(fields.map((f) => f.split('=') as [string, string]));
    out.push({
      major: Number(m[1]), minor: Number(m[2]),
      readBytes: toBig(kv.rbytes) ?? 0n, writeBytes: toBig(kv.wbytes) ?? 0n,
      readIos: toBig(kv.rios) ?? 0n, writeIos: toBig(kv.wios) ?? 0n,
    });
  }
  return out;
}

/** v1 blkio "maj:min Op value" files; returns per device {Read, Write} of one file. */
function parseBlkio(text: string): Map<string, { read: bigint; write: bigint }> {
  const out = new Map<string, { read: bigint; write: bigint }>();
  for (const line of text.split('\n')) {
    const [dev, op, value] = line.trim().split(/\s+/);
    if (!dev || !/^\d+:\d+$/.test(dev) || value === undefined) continue;
    const e = out.get(dev) ?? { read: 0n, write: 0n };
    if (op === 'Read') e.read = toBig(value) ?? 0n;
    else if (op === 'Write') e.write = toBig(value) ?? 0n;
    out.set(dev, e);
  }
  return out;
}

export function parseIoV1(bytesText: string, iosText: string): IoDeviceStats[] {
  const bytes = parseBlkio(bytesText);
  const ios = parseBlkio(iosText);
  const devs = new Set([...bytes.keys(), ...ios.keys()]);
  return [...devs].map((dev) => {
    const [major, minor] = dev.split(':').map(Number) as [number, number];
    const b = bytes.get(dev) ?? { read: 0n, write: 0n };
    const i = ios.get(dev) ?? { read: 0n, write: 0n };
    return { major, minor, readBytes: b.read, writeBytes: b.write, readIos: i.read, writeIos: i.write };
  });
}

/** Reads a whole file; undefined when it cannot be read (missing controller, no PSI). */
export type StatsFileReader = (path: string) => Promise<string | undefined>;

export interface StatsReaderOptions {
  mode: CgroupMode;
  /** The hierarchy root: /sys/fs/cgroup, or a fake tree in tests. */
  root: string;
  /** Wall and monotonic clocks (ns), injectable for tests. */
  now?: () => { wall: bigint; mono: bigint };
  /**
   * How files are read. Default: fs.promises (libuv's pool). runtime/stats/reader-pool.ts
   * passes synchronous reads on a worker thread, which costs a fraction of the pool's
   * four round trips per file when a list call reads thousands of small files.
   */
  readFile?: StatsFileReader;
  /** Directory listing and readlink for the /proc scan of detail reads (same idea as readFile). */
  readDir?: (path: string) => Promise<string[] | undefined>;
  readLink?: (path: string) => Promise<string | undefined>;
  /** /proc, or a fake in tests. */
  procRoot?: string;
}

const asyncReadFile: StatsFileReader = (path) => fs.readFile(path, 'utf8').catch(() => undefined);

/** What callers of read() need; CgroupStatsReader and the worker-backed pool both have it. */
export interface CgroupStatsSource {
  read(cgroupPath: string, opts?: ReadOptions): Promise<CgroupStats | undefined>;
}

const asyncReadDir = (path: string): Promise<string[] | undefined> => fs.readdir(path).catch(() => undefined);
const asyncReadLink = (path: string): Promise<string | undefined> => fs.readlink(path).catch(() => undefined);

/** cgroup v2 cpu.weight (1..10000) back to v1 shares (2..262144), the kernel's own mapping. */
export function weightToShares(weight: bigint): bigint {
  return 2n + ((weight - 1n) * 262142n) / 9999n;
}

const defaultNow = (): { wall: bigint; mono: bigint } => ({ wall: BigInt(Date.now()) * 1_000_000n, mono: process.hrtime.bigint() });

/**
 * Reads cgroup stats. `cgroupPath` is the path below the hierarchy root ("/kubepods/pod1/c1").
 * Missing files (a controller not mounted, a kernel without PSI) leave their fields out;
 * a cgroup that does not exist at all reads as undefined.
 */
export class CgroupStatsReader implements CgroupStatsSource {
  private readonly layout: Layout;
  private readonly now: () => { wall: bigint; mono: bigint };
  private readonly readFile: StatsFileReader;

  constructor(private readonly opts: StatsReaderOptions) {
    this.layout = opts.mode === 'v2' ? 'v2' : 'v1';
    this.now = opts.now ?? defaultNow;
    this.readFile = opts.readFile ?? asyncReadFile;
  }

  private get readDir() { return this.opts.readDir ?? asyncReadDir; }
  private get readLink() { return this.opts.readLink ?? asyncReadLink; }

  /** The directory of a controller's cgroup: one tree on v2, one per controller on v1. */
  dir(ctl: string, cgroupPath: string): string {
    return this.layout === 'v2' ? join(this.opts.root, cgroupPath) : join(this.opts.root, ctl, cgroupPath);
  }

  async read(cgroupPath: string, ropts: ReadOptions = {}): Promise<CgroupStats | undefined> {
    const clock = this.now();
    // One read per file, however many fields come from it.
    const files = new Map<string, Promise<string | undefined>>();
    const file = (path: string): Promise<string | undefined> => {
      let p = files.get(path);
      if (!p) {
        p = this.readFile(path);
        files.set(path, p);
      }
      return p;
    };
    const keyed = new Map<string, Promise<Map<string, string> | undefined>>();
    const get = async (field: Field): Promise<string | undefined> => {
      const src = STATS_FILES[field][this.layout];
      if (!src) return undefined;
      const path = join(this.dir(src.ctl, cgroupPath), src.file);
      if (!src.key) return file(path);
      let k = keyed.get(path);
      if (!k) {
        k = file(path).then((t) => (t === undefined ? undefined : parseFlatKeyed(t)));
        keyed.set(path, k);
      }
      return (await k)?.get(src.key);
    };
    const num = async (field: Field): Promise<bigint | undefined> => {
      const v = toBig(await get(field));
      const scale = STATS_FILES[field][this.layout]?.scale;
      return v === undefined ? undefined : scale ? v * scale : v;
    };

    const [cpuUsage, cpuUser, cpuSystem, periods, throttled, throttledNs] = await Promise.all(
      (['cpuUsage', 'cpuUser', 'cpuSystem', 'cpuPeriods', 'cpuThrottled', 'cpuThrottledTime'] as const).map(num));
    const [memUsage, inactiveFile, rss, cache, pgfault, pgmajfault, oomKill, memswUsage, swapUsage, pidsCurrent] = await Promise.all(
      (['memUsage', 'memInactiveFile', 'memRss', 'memCache', 'memPgfault', 'memPgmajfault', 'memOomKill', 'memswUsage', 'swapUsage', 'pidsCurrent'] as const).map(num));
    const [memLimitText, memswLimitText, swapLimitText, pidsMaxText] = await Promise.all(
      (['memLimit', 'memswLimit', 'swapLimit', 'pidsMax'] as const).map(get));

    const stats: CgroupStats = { timestampNs: clock.wall, monotonicNs: clock.mono };
    if (cpuUsage !== undefined) {
      stats.cpu = {
        usageNs: cpuUsage,
        ...opt('userNs', cpuUser), ...opt('systemNs', cpuSystem),
        ...opt('periods', periods), ...opt('throttledPeriods', throttled), ...opt('throttledNs', throttledNs),
      };
    }
    if (memUsage !== undefined) {
      const inactive = inactiveFile ?? 0n;
      const workingSet = memUsage > inactive ? memUsage - inactive : 0n;
      const limit = parseLimit(memLimitText);
      stats.memory = {
        usageBytes: memUsage,
        workingSetBytes: workingSet,
        ...opt('rssBytes', rss), ...opt('cacheBytes', cache),
        ...opt('pageFaults', pgfault), ...opt('majorPageFaults', pgmajfault),
        ...opt('limitBytes', limit),
        ...opt('availableBytes', limit === undefined ? undefined : limit > workingSet ? limit - workingSet : 0n),
        ...opt('oomKills', oomKill),
      };
      // v1 accounts memory+swap together; swap alone is the difference.
      const swap = this.layout === 'v2' ? swapUsage : memswUsage !== undefined ? (memswUsage > memUsage ? memswUsage - memUsage : 0n) : undefined;
      if (swap !== undefined) {
        let swapLimit: bigint | undefined;
        if (this.layout === 'v2') swapLimit = parseLimit(swapLimitText);
        else {
          const memsw = parseLimit(memswLimitText);
          swapLimit = memsw !== undefined && limit !== undefined && memsw >= limit ? memsw - limit : undefined;
        }
        stats.swap = {
          usageBytes: swap,
          ...opt('limitBytes', swapLimit),
          ...opt('availableBytes', swapLimit === undefined ? undefined : swapLimit > swap ? swapLimit - swap : 0n),
        };
      }
    }
    if (pidsCurrent !== undefined) stats.pids = { current: pidsCurrent, ...opt('limit', parseLimit(pidsMaxText)) };

    const [io, psi] = await Promise.all([this.readIo(cgroupPath, file), this.readPsi(cgroupPath, file)]);
    if (io) stats.io = io;
    if (psi) stats.psi = psi;
    if (ropts.detail) stats.detail = await this.readDetail(cgroupPath, file, get, num, pidsMaxText);

    if (!stats.cpu && !stats.memory && !stats.pids && !stats.io) {
      return (await this.exists(cgroupPath)) ? stats : undefined;
    }
    return stats;
  }

  private async readDetail(
    cgroupPath: string,
    file: (p: string) => Promise<string | undefined>,
    get: (f: Field) => Promise<string | undefined>,
    num: (f: Field) => Promise<bigint | undefined>,
    pidsMaxText: string | undefined,
  ): Promise<StatsDetail> {
    const [failcnt, kernel, mapped, maxUsage, reservationText, sharesRaw, swapLimitText, memswLimitText, eventsHigh, eventsMax] = await Promise.all([
      num('memFailcnt'), num('memKernel'), num('memMapped'), num('memMaxUsage'), get('memReservation'), num('cpuSharesSpec'),
      get('swapLimit'), get('memswLimit'), num('memEventsHigh'), num('memEventsMax'),
    ]);
    let period: bigint | undefined;
    let quota: bigint | undefined;
    if (this.layout === 'v2') {
      const [q, p] = ((await file(join(this.dir('cpu', cgroupPath), 'cpu.max'))) ?? '').trim().split(/\s+/);
      period = toBig(p);
      quota = q === 'max' ? undefined : toBig(q);
    } else {
      period = await num('cpuPeriodSpec');
      const q = await num('cpuQuotaSpec');
      quota = q !== undefined && q > 0n ? q : undefined;
    }
    // Threads and processes: v1 lists them in every hierarchy; memory is always mounted.
    const procDir = this.dir('memory', cgroupPath);
    const [threadsText, procsText] = await Promise.all([
      file(join(procDir, this.layout === 'v2' ? 'cgroup.threads' : 'tasks')),
      file(join(procDir, 'cgroup.procs')),
    ]);
    const count = (t: string | undefined): bigint | undefined => (t === undefined ? undefined : BigInt(t.split('\n').filter(Boolean).length));
    let fds: bigint | undefined;
    let sockets: bigint | undefined;
    let nofileSoft: bigint | undefined;
    if (procsText !== undefined) {
      fds = 0n;
      sockets = 0n;
      const procRoot = this.opts.procRoot ?? '/proc';
      const first = procsText.split('\n').find(Boolean);
      if (first) {
        const limits = await file(join(procRoot, first, 'limits'));
        const m = /^Max open files\s+(\d+|unlimited)/m.exec(limits ?? '');
        if (m && m[1] !== 'unlimited') nofileSoft = BigInt(m[1]!);
      }
      for (const pid of procsText.split('\n').filter(Boolean)) {
        const dir = join(procRoot, pid, 'fd');
        const names = await this.readDir(dir);
        if (!names) continue; // exited meanwhile
        fds += BigInt(names.length);
        for (const n of names) {
          if ((await this.readLink(join(dir, n)))?.startsWith('socket:')) sockets++;
        }
      }
    }
    const swapLimit = parseLimit(this.layout === 'v2' ? swapLimitText : memswLimitText);
    const reservation = parseLimit(reservationText);
    const d: StatsDetail = {};
    const set = <K extends keyof StatsDetail>(k: K, v: StatsDetail[K] | undefined): void => { if (v !== undefined) d[k] = v; };
    set('memoryFailcnt', failcnt);
    set('kernelBytes', kernel);
    set('mappedFileBytes', mapped);
    set('maxUsageBytes', maxUsage);
    set('reservationBytes', reservation !== undefined && reservation > 0n ? reservation : undefined);
    set('cpuShares', sharesRaw === undefined ? undefined : this.layout === 'v2' ? weightToShares(sharesRaw) : sharesRaw);
    set('cpuPeriodUs', period);
    set('cpuQuotaUs', quota);
    set('swapLimitBytes', swapLimit);
    set('threads', count(threadsText));
    set('threadsMax', parseLimit(pidsMaxText));
    set('fds', fds);
    set('sockets', sockets);
    set('memoryEventsHigh', eventsHigh ?? (this.layout === 'v2' ? undefined : 0n));
    set('memoryEventsMax', eventsMax);
    set('nofileSoft', nofileSoft);
    return d;
  }

  private async exists(cgroupPath: string): Promise<boolean> {
    const probe = this.dir(this.layout === 'v2' ? '' : 'memory', cgroupPath);
    return fs.access(probe).then(() => true, () => false);
  }

  private async readIo(cgroupPath: string, file: (p: string) => Promise<string | undefined>): Promise<CgroupStats['io']> {
    let devices: IoDeviceStats[] | undefined;
    if (this.layout === 'v2') {
      const t = await file(join(this.dir('io', cgroupPath), 'io.stat'));
      if (t !== undefined) devices = parseIoStatV2(t);
    } else {
      for (const f of V1_IO_FILES) {
        const dir = this.dir('blkio', cgroupPath);
        const [b, i] = await Promise.all([file(join(dir, f.bytes)), file(join(dir, f.ios))]);
        if (b === undefined) continue;
        devices = parseIoV1(b, i ?? '');
        if (devices.length) break;
      }
    }
    if (!devices) return undefined;
    const sum = (k: 'readBytes' | 'writeBytes' | 'readIos' | 'writeIos'): bigint => devices!.reduce((a, d) => a + d[k], 0n);
    return { devices, readBytes: sum('readBytes'), writeBytes: sum('writeBytes'), readIos: sum('readIos'), writeIos: sum('writeIos') };
  }

  /** PSI lives in cgroup2 directories: the tree on v2, the unified/ mount on hybrid hosts. */
  private async readPsi(cgroupPath: string, file: (p: string) => Promise<string | undefined>): Promise<CgroupStats['psi']> {
    let dir: string;
    if (this.opts.mode === 'v2') dir = join(this.opts.root, cgroupPath);
    else if (this.opts.mode === 'hybrid') dir = join(this.opts.root, 'unified', cgroupPath);
    else return undefined;
    // cpu.pressure first: without it (no PSI, or no cgroup2 directory on a hybrid host) the
    // other two are missing too, and the two failed opens per cgroup add up in list calls.
    const cpuText = await file(join(dir, 'cpu.pressure'));
    if (cpuText === undefined) return undefined;
    const [memory, io] = await Promise.all(['memory', 'io'].map(async (r) => {
      const t = await file(join(dir, `${r}.pressure`));
      return t === undefined ? undefined : parsePsi(t);
    }));
    const cpu = parsePsi(cpuText);
    if (!cpu && !memory && !io) return undefined;
    return { ...opt('cpu', cpu), ...opt('memory', memory), ...opt('io', io) };
  }
}

function opt<K extends string, V>(key: K, v: V | undefined): { [P in K]?: V } {
  return (v === undefined ? {} : { [key]: v }) as { [P in K]?: V };
}

/**
 * CPU usage rate in nanocores between two samples of the same cgroup (1e9 = one core busy).
 * Undefined when there is no usable earlier sample (first read, counter reset, no time passed).
 */
export function usageNanoCores(prev: { usageNs: bigint; monotonicNs: bigint } | undefined, cur: { usageNs: bigint; monotonicNs: bigint }): bigint | undefined {
  if (!prev) return undefined;
  const dt = cur.monotonicNs - prev.monotonicNs;
  const du = cur.usageNs - prev.usageNs;
  if (dt <= 0n || du < 0n) return undefined;
  return (du * 1_000_000_000n) / dt;
}

/**
 * Keeps the last cpu sample per key (container or pod id) so that every stats call can
 * report usage_nano_cores, as the kubelet expects from a runtime that serves CRI stats.
 * Samples closer than minIntervalNs to the kept one do not replace it: two stats calls in
 * quick succession would otherwise produce a noisy rate.
 */
export class CpuRateTracker {
  private readonly last = new Map<string, { usageNs: bigint; monotonicNs: bigint; rate: bigint | undefined }>();
  constructor(private readonly minIntervalNs = 100_000_000n) {}

  update(key: string, usageNs: bigint, monotonicNs: bigint): bigint | undefined {
    const prev = this.last.get(key);
    if (prev && monotonicNs - prev.monotonicNs < this.minIntervalNs && usageNs >= prev.usageNs) return prev.rate;
    const rate = usageNanoCores(prev, { usageNs, monotonicNs });
    this.last.set(key, { usageNs, monotonicNs, rate });
    return rate;
  }

  forget(key: string): void {
    this.last.delete(key);
  }

  /** Drops every key for which keep() is false (objects that are gone). */
  retain(keep: (key: string) => boolean): void {
    for (const k of [...this.last.keys()]) if (!keep(k)) this.last.delete(k);
  }
}
