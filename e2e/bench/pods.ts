/**
 * Pods bench (issue 5): RunPodSandbox + StopPodSandbox + RemovePodSandbox cycles through gRPC,
 * 50 one after another and 50 with 10 in flight, on the host network and on the harness'
 * bridge network; against the floor-pod.sh cycle (unshare pinning + the same CNI chain with the
 * same conflist, DEL, umount) run the same way in the same run.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Harness } from '../harness/index.js';
import { readMounts } from '../harness/leaks.js';
import { BENCH_DIR, CriClient, interleaved, interrupt, latencyRows, loop, newResult, p50, podConfig, removePods, round, sh, timed, unimplemented, type BenchResult } from './lib.js';

export interface PodsOptions { sequential: number; parallel: number; concurrency: number }

const GOAL = 1.3;

/** The harness' conflist split into the one-line plugin files floor-pod.sh reads. */
function prepareFloorNet(h: Harness, netDir: string): string[] {
  mkdirSync(netDir, { recursive: true });
  const file = readdirSync(h.cniConfDir).filter((f) => f.endsWith('.conflist')).sort()[0];
  if (!file) throw new Error(`no conflist in ${h.cniConfDir}`);
  const list = JSON.parse(readFileSync(join(h.cniConfDir, file), 'utf8')) as { cniVersion: string; name: string; plugins: Array<Record<string, unknown>> };
  writeFileSync(join(netDir, 'loopback.json'), JSON.stringify({ cniVersion: list.cniVersion, name: 'cni-loopback', type: 'loopback' }) + '\n');
  list.plugins.forEach((p, k) => {
    const { capabilities: _caps, ...rest } = p;
    const conf = JSON.stringify({ ...rest, cniVersion: list.cniVersion, name: list.name });
    writeFileSync(join(netDir, `plugin-${k}.json`), conf.slice(0, -1) + '\n');
  });
  return list.plugins.map((p) => String(p.type));
}

export async function benchPods(h: Harness, cri: CriClient, opts: PodsOptions): Promise<BenchResult> {
  const res = newResult('pods');
  // The floor pins its namespaces where corral does: on the state tmpfs.
  const floorDir = join(h.stateDir, 'floor-pods');
  const netDir = join(floorDir, 'net');
  const types = prepareFloorNet(h, netDir);
  let seq = 0;
  const created: string[] = [];
  // On an interrupt, floor-pod.sh runs in flight die with the process group: their pinned
  // namespaces (and with the netns, the veth) go when unmounted.
  const unmountFloors = () => {
    for (const m of readMounts().filter((x) => x.point.startsWith(floorDir + '/')).reverse()) {
      try {
        execFileSync('umount', ['-l', m.point], { timeout: 5000, stdio: 'ignore' });
      } catch {
        // best effort on the way out
      }
    }
  };
  interrupt.cleanups.add(unmountFloors);

  const corralCycle = async (host: boolean): Promise<number> => {
    const name = `bench-pod-${++seq}`;
    const t0 = performance.now();
    const r = await cri.call<{ pod_sandbox_id: string }>('RunPodSandbox', { config: podConfig(name, h.dir, host) }, 60_000);
    created.push(r.pod_sandbox_id);
    await cri.call('StopPodSandbox', { pod_sandbox_id: r.pod_sandbox_id }, 60_000);
    await cri.call('RemovePodSandbox', { pod_sandbox_id: r.pod_sandbox_id }, 60_000);
    created.splice(created.indexOf(r.pod_sandbox_id), 1);
    return performance.now() - t0;
  };
  const floorCycle = (host: boolean): Promise<number> =>
    timed(() => sh('sh', [join(BENCH_DIR, 'floor-pod.sh'), host ? 'host' : 'bridge', floorDir, `floor${++seq}`, netDir, ...types], 60_000));

  const measure = async (label: string, count: number, concurrency: number, host: boolean) => {
    const r = await interleaved(count, concurrency, 300_000, () => corralCycle(host), () => floorCycle(host));
    if (r.timedOut) res.skipped.push(`${label}: stopped after ${r.corral.length} of ${count} (time budget)`);
    return r;
  };

  try {
    for (const host of [true, false]) {
      const net = host ? 'host' : 'bridge';
      try {
        // Warm-up: the first bridge ADD creates the bridge and the shared portmap chains.
        for (let i = 0; i < 2; i++) { await corralCycle(host); await floorCycle(host); }
      } catch (e) {
        const why = unimplemented(e);
        if (why) { res.skipped.push(`pods ${net}: ${why}`); continue; }
        throw e;
      }
      const s = await measure(`${net} sequential`, opts.sequential, 1, host);
      const p = await measure(`${net} parallel`, opts.parallel, opts.concurrency, host);
      const [cs, fs, cp, fp] = [s.corral, s.floor, p.corral, p.floor];
      res.rows.push(...latencyRows(`${net} sequential`, cs, fs, GOAL));
      res.rows.push(...latencyRows(`${net} ${opts.concurrency} parallel`, cp, fp));
      res.raw[net] = { corralSequential: cs.map((x) => round(x, 2)), floorSequential: fs.map((x) => round(x, 2)), corralParallel: cp.map((x) => round(x, 2)), floorParallel: fp.map((x) => round(x, 2)) };
      res.raw[`${net}RatioP50`] = round(p50(cs) / p50(fs));
    }
    // Per-RPC split of one more sequential bridge series, to show where the time goes.
    const split: Record<string, number[]> = { RunPodSandbox: [], StopPodSandbox: [], RemovePodSandbox: [] };
    await loop(20, 1, 60_000, async () => {
      let t = performance.now();
      const r = await cri.call<{ pod_sandbox_id: string }>('RunPodSandbox', { config: podConfig(`bench-pod-${++seq}`, h.dir, false) });
      created.push(r.pod_sandbox_id);
      split.RunPodSandbox!.push(performance.now() - t);
      t = performance.now();
      await cri.call('StopPodSandbox', { pod_sandbox_id: r.pod_sandbox_id });
      split.StopPodSandbox!.push(performance.now() - t);
      t = performance.now();
      await cri.call('RemovePodSandbox', { pod_sandbox_id: r.pod_sandbox_id });
      split.RemovePodSandbox!.push(performance.now() - t);
      created.splice(created.indexOf(r.pod_sandbox_id), 1);
    }).catch((e) => res.skipped.push(`per-RPC split: ${(e as Error).message}`));
    for (const [k, xs] of Object.entries(split)) if (xs.length) res.rows.push({ metric: `bridge ${k} p50`, corral: round(p50(xs), 1), unit: 'ms' });
  } finally {
    interrupt.cleanups.delete(unmountFloors);
    await removePods(cri, created);
  }
  return res;
}
