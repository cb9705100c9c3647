/**
 * Stats bench (issue 8): ListContainerStats with N running containers (p50, p99), and whether
 * a storm of stats calls holds up other RPCs: Version latency measured on a connection of its
 * own while 4 clients call ListContainerStats back to back, against Version latency idle.
 */
import type { Harness } from '../harness/index.js';
import { busyboxRef, containerConfig } from './containers.js';
import { CriClient, interrupt, latencyRows, loop, newResult, p50, p99, podConfig, removePods, round, sleep, unimplemented, type BenchResult } from './lib.js';

export interface StatsOptions { containers: number; calls: number; stormMs: number }

const PER_POD = 10;

export async function benchStats(h: Harness, cri: CriClient, opts: StatsOptions): Promise<BenchResult> {
  const res = newResult('stats');
  const notes: string[] = [];
  res.raw.notes = notes;
  const image = busyboxRef(h);
  const pods: string[] = [];
  const probe = new CriClient(h.socket, true);
  try {
    try {
      await cri.call('ListContainerStats', { filter: {} });
    } catch (e) {
      const why = unimplemented(e);
      if (why) {
        res.skipped.push(`stats: ${why}`);
        return res;
      }
      throw e;
    }
    await cri.image('PullImage', { image: { image } });
    const nPods = Math.ceil(opts.containers / PER_POD);
    const cfgs: Array<Record<string, unknown>> = [];
    await loop(nPods, 3, 120_000, async (i) => {
      const cfg = podConfig(`bench-stats-${i}`, h.dir, false);
      const id = (await cri.call<{ pod_sandbox_id: string }>('RunPodSandbox', { config: cfg })).pod_sandbox_id;
      pods[i] = id;
      cfgs[i] = cfg;
    });
    const t0 = Date.now();
    const r = await loop(opts.containers, 5, 300_000, async (i) => {
      const p = Math.floor(i / PER_POD);
      const { container_id } = await cri.call<{ container_id: string }>('CreateContainer', { pod_sandbox_id: pods[p], sandbox_config: cfgs[p], config: containerConfig(`s${i}`, image) });
      await cri.call('StartContainer', { container_id });
    });
    notes.push(`${r.done} containers in ${nPods} pods started in ${round((Date.now() - t0) / 1000, 1)} s`);
    if (r.timedOut) res.skipped.push(`only ${r.done} of ${opts.containers} containers started in the time budget`);

    const list = async () => {
      const s = await cri.call<{ stats: unknown[] }>('ListContainerStats', { filter: {} });
      return s.stats.length;
    };
    for (let i = 0; i < 3; i++) await list(); // warm-up
    const lat: number[] = [];
    let seen = 0;
    await loop(opts.calls, 1, 120_000, async () => {
      const t = performance.now();
      seen = await list();
      lat.push(performance.now() - t);
    });
    if (seen < r.done) notes.push(`ListContainerStats returned ${seen} entries for ${r.done} running containers`);
    const rows = latencyRows(`ListContainerStats (${seen} containers)`, lat, undefined);
    rows[0]!.goal = '< 100 ms';
    rows[0]!.ok = rows[0]!.corral! < 100;
    res.rows.push(...rows);

    const version = async (until: number, out: number[]) => {
      for (let i = 0; i < 2000 && Date.now() < until && !interrupt.requested; i++) {
        const t = performance.now();
        await probe.call('Version', { version: 'v1' }, 10_000);
        out.push(performance.now() - t);
        await sleep(10);
      }
    };
    const idle: number[] = [];
    await version(Date.now() + opts.stormMs, idle);
    const storm: number[] = [];
    let stormCalls = 0;
    const until = Date.now() + opts.stormMs;
    await Promise.all([
      version(until, storm),
      ...Array.from({ length: 4 }, async () => {
        while (Date.now() < until && !interrupt.requested) {
          await list();
          stormCalls++;
        }
      }),
    ]);
    res.rows.push({ metric: 'Version p50 during stats storm', corral: round(p50(storm), 2), floor: round(p50(idle), 2), ratio: round(p50(storm) / p50(idle)), unit: 'ms', note: 'floor = Version idle' });
    res.rows.push({ metric: 'Version p99 during stats storm', corral: round(p99(storm), 2), floor: round(p99(idle), 2), ratio: round(p99(storm) / p99(idle)), unit: 'ms' });
    notes.push(`storm: 4 clients, ${stormCalls} ListContainerStats calls in ${opts.stormMs} ms; Version on its own connection every 10 ms`);
    res.raw.samples = { listContainerStats: lat, versionIdle: idle, versionStorm: storm, stormCalls };
  } finally {
    probe.close();
    await removePods(cri, pods.filter(Boolean));
  }
  return res;
}
