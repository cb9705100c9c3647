import test from 'ava';
import { promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { CgroupStatsReader, CpuRateTracker, parsePsi, usageNanoCores, weightToShares } from './stats.js';

// Tests run from dist/; the fake trees stay in the source tree.
const TESTDATA = fileURLToPath(new URL('../../../runtime/cgroups/testdata/', import.meta.url));
const CG = '/kubepods/pod1/ctr1';
const now = () => ({ wall: 1_700_000_000_000_000_000n, mono: 5_000_000_000n });

const io = {
  devices: [
    { major: 8, minor: 0, readBytes: 1048576n, writeBytes: 20971520n, readIos: 16n, writeIos: 160n },
    { major: 253, minor: 1, readBytes: 4096n, writeBytes: 0n, readIos: 1n, writeIos: 0n },
  ],
  readBytes: 1052672n, writeBytes: 20971520n, readIos: 17n, writeIos: 160n,
};

test('v1: cpu, memory (working set, available), swap from memsw, pids, blkio; no PSI', async (t) => {
  const r = new CgroupStatsReader({ mode: 'v1', root: join(TESTDATA, 'v1'), now });
  const s = await r.read(CG);
  t.deepEqual(s, {
    timestampNs: 1_700_000_000_000_000_000n,
    monotonicNs: 5_000_000_000n,
    cpu: { usageNs: 69915994n, userNs: 64000000n, systemNs: 4000000n, periods: 120n, throttledPeriods: 7n, throttledNs: 351200000n },
    memory: {
      usageBytes: 21639168n,
      workingSetBytes: 21639168n - 20967424n,
      rssBytes: 114688n,
      cacheBytes: 20975616n,
      pageFaults: 525n,
      majorPageFaults: 0n,
      limitBytes: 104857600n,
      availableBytes: 104857600n - (21639168n - 20967424n),
      oomKills: 0n,
    },
    swap: { usageBytes: 4096n, limitBytes: 104857600n, availableBytes: 104857600n - 4096n },
    pids: { current: 2n, limit: 1024n },
    io,
  });
});

test('hybrid: the v1 files plus PSI from the unified mount', async (t) => {
  const r = new CgroupStatsReader({ mode: 'hybrid', root: join(TESTDATA, 'v1'), now });
  const s = (await r.read(CG))!;
  t.is(s.memory?.workingSetBytes, 671744n);
  t.deepEqual(s.psi?.cpu, {
    some: { avg10: 75.25, avg60: 41, avg300: 19.15, totalUs: 121492746n },
    full: { avg10: 0, avg60: 0, avg300: 0, totalUs: 0n },
  });
  t.is(s.psi?.io?.full?.totalUs, 2193761n);
  t.is(s.psi?.memory?.some.avg10, 0);
  t.truthy(s.psi?.memory);
});

test('v2: cpu.stat in µs, memory.stat anon/file, limits "max", memory.events, io.stat, PSI', async (t) => {
  const r = new CgroupStatsReader({ mode: 'v2', root: join(TESTDATA, 'v2'), now });
  const s = (await r.read(CG))!;
  t.deepEqual(s.cpu, { usageNs: 140000000n, userNs: 140000000n, systemNs: 0n, periods: 0n, throttledPeriods: 0n, throttledNs: 0n });
  t.deepEqual(s.memory, {
    usageBytes: 8859648n,
    workingSetBytes: 8859648n - 122880n,
    rssBytes: 110592n,
    cacheBytes: 8519680n,
    pageFaults: 954n,
    majorPageFaults: 2n,
    limitBytes: 67108864n,
    availableBytes: 67108864n - (8859648n - 122880n),
    oomKills: 1n,
  });
  t.deepEqual(s.swap, { usageBytes: 4096n });
  t.deepEqual(s.pids, { current: 2n });
  t.deepEqual(s.io, io);
  t.is(s.psi?.cpu?.some.totalUs, 121510908n);
  t.is(s.psi?.io?.full?.avg300, 0.06);
});

test('a cgroup that does not exist reads as undefined; missing controllers leave fields out', async (t) => {
  const r = new CgroupStatsReader({ mode: 'v2', root: join(TESTDATA, 'v2') });
  t.is(await r.read('/kubepods/nope'), undefined);

  const root = await fs.mkdtemp(join(tmpdir(), 'corral-stats-'));
  t.teardown(() => fs.rm(root, { recursive: true, force: true }));
  await fs.mkdir(join(root, 'memory', 'c'), { recursive: true });
  await fs.writeFile(join(root, 'memory', 'c', 'memory.usage_in_bytes'), '4096\n');
  await fs.writeFile(join(root, 'memory', 'c', 'memory.limit_in_bytes'), '9223372036854771712\n');
  const v1 = new CgroupStatsReader({ mode: 'v1', root });
  const s = (await v1.read('/c'))!;
  t.deepEqual(s.memory, { usageBytes: 4096n, workingSetBytes: 4096n });
  t.is(s.cpu, undefined);
  t.is(s.swap, undefined);
  t.is(s.pids, undefined);
  t.is(s.io, undefined);
  // An existing but empty cgroup still reads, with no fields.
  await fs.mkdir(join(root, 'memory', 'empty'));
  t.truthy(await v1.read('/empty'));
});

test('working set never goes negative', async (t) => {
  const root = await fs.mkdtemp(join(tmpdir(), 'corral-stats-'));
  t.teardown(() => fs.rm(root, { recursive: true, force: true }));
  await fs.mkdir(join(root, 'c'));
  await fs.writeFile(join(root, 'c', 'memory.current'), '100\n');
  await fs.writeFile(join(root, 'c', 'memory.stat'), 'inactive_file 4096\n');
  await fs.writeFile(join(root, 'c', 'memory.max'), '50\n');
  const s = (await new CgroupStatsReader({ mode: 'v2', root }).read('/c'))!;
  t.is(s.memory?.workingSetBytes, 0n);
  t.is(s.memory?.availableBytes, 50n);
});

test('usage_nano_cores from two samples', (t) => {
  t.is(usageNanoCores(undefined, { usageNs: 5n, monotonicNs: 10n }), undefined);
  // 0.5 s of cpu in 1 s: half a core.
  t.is(usageNanoCores({ usageNs: 1_000_000_000n, monotonicNs: 0n }, { usageNs: 1_500_000_000n, monotonicNs: 1_000_000_000n }), 500_000_000n);
  // Two cores busy for 2 s.
  t.is(usageNanoCores({ usageNs: 0n, monotonicNs: 0n }, { usageNs: 4_000_000_000n, monotonicNs: 2_000_000_000n }), 2_000_000_000n);
  t.is(usageNanoCores({ usageNs: 10n, monotonicNs: 0n }, { usageNs: 5n, monotonicNs: 1_000_000_000n }), undefined);
  t.is(usageNanoCores({ usageNs: 10n, monotonicNs: 7n }, { usageNs: 20n, monotonicNs: 7n }), undefined);
});

test('CpuRateTracker keeps a sample per key and ignores samples too close together', (t) => {
  const tr = new CpuRateTracker(100_000_000n);
  t.is(tr.update('a', 0n, 0n), undefined);
  t.is(tr.update('a', 250_000_000n, 1_000_000_000n), 250_000_000n);
  // 10 ms later: the previous rate stands.
  t.is(tr.update('a', 900_000_000n, 1_010_000_000n), 250_000_000n);
  t.is(tr.update('b', 1n, 1_010_000_000n), undefined);
  t.is(tr.update('a', 1_250_000_000n, 2_000_000_000n), 1_000_000_000n);
  tr.forget('a');
  t.is(tr.update('a', 2_000_000_000n, 3_000_000_000n), undefined);
});

test('parsePsi: cpu.pressure without a full line (older kernels)', (t) => {
  t.deepEqual(parsePsi('some avg10=1.50 avg60=0.25 avg300=0.00 total=42\n'), { some: { avg10: 1.5, avg60: 0.25, avg300: 0, totalUs: 42n } });
  t.is(parsePsi(''), undefined);
});

// Root on a real host: the table's file names against the running kernel.
const realHost = process.getuid?.() === 0;
(realHost ? test.serial : test.skip)('the host kernel: a fresh cgroup reads with every controller it has', async (t) => {
  const { detectCgroups } = await import('./detect.js');
  const info = await detectCgroups('cgroupfs');
  const name = `corral-stats-test-${process.pid}`;
  const dirs = info.mode === 'v2' ? [join(info.root, name)] : ['cpu', 'cpuacct', 'memory', 'pids', 'blkio'].filter((c) => info.controllers.includes(c)).map((c) => join(info.root, c, name));
  for (const d of dirs) await fs.mkdir(d);
  t.teardown(async () => { for (const d of dirs) await fs.rmdir(d).catch(() => {}); });
  const s = (await new CgroupStatsReader({ mode: info.mode, root: info.root }).read(`/${name}`))!;
  t.truthy(s);
  t.is(s.cpu?.usageNs, 0n);
  t.is(s.memory?.usageBytes, 0n);
  t.is(s.memory?.limitBytes, undefined);
  if (info.controllers.includes('pids') || info.mode === 'v2') t.is(s.pids?.current, 0n);
  const d = (await new CgroupStatsReader({ mode: info.mode, root: info.root }).read(`/${name}`, { detail: true }))!.detail!;
  t.is(d.threads, 0n);
  t.is(d.fds, 0n);
  t.truthy(d.cpuShares, 'cpu.shares / cpu.weight');
  t.truthy(d.cpuPeriodUs, 'cfs period / cpu.max');
});

const PROC = join(TESTDATA, 'proc');

test('detail (metrics) on v1: failcnt, kmem, mapped file, peak, cpu spec, threads, fds and sockets', async (t) => {
  const r = new CgroupStatsReader({ mode: 'v1', root: join(TESTDATA, 'v1'), now, procRoot: PROC });
  t.is((await r.read(CG))?.detail, undefined, 'only when asked');
  const d = (await r.read(CG, { detail: true }))!.detail;
  t.deepEqual(d, {
    memoryFailcnt: 0n,
    kernelBytes: 258048n,
    mappedFileBytes: 0n,
    maxUsageBytes: 21893120n,
    cpuShares: 1024n,
    cpuPeriodUs: 100000n,
    swapLimitBytes: 209715200n,
    threads: 3n,
    threadsMax: 1024n,
    fds: 4n,
    sockets: 2n,
    memoryEventsHigh: 0n,
    memoryEventsMax: 0n,
    nofileSoft: 1024n,
  });
});

test('detail on v2: memory.events max as failcnt, cpu.max, weight as shares, unlimited left out', async (t) => {
  const r = new CgroupStatsReader({ mode: 'v2', root: join(TESTDATA, 'v2'), now, procRoot: PROC });
  const d = (await r.read(CG, { detail: true }))!.detail;
  t.deepEqual(d, {
    memoryFailcnt: 3n,
    kernelBytes: 102400n,
    mappedFileBytes: 0n,
    maxUsageBytes: 9953280n,
    cpuShares: weightToShares(100n),
    cpuPeriodUs: 100000n,
    threads: 3n,
    fds: 4n,
    sockets: 2n,
    memoryEventsHigh: 0n,
    memoryEventsMax: 3n,
    nofileSoft: 1024n,
  });
  t.is(weightToShares(1n), 2n);
  t.is(weightToShares(10000n), 262144n);
});
