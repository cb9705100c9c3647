/**
 * Containers bench (issue 6): CreateContainer+StartContainer and StopContainer+RemoveContainer
 * of a busybox container through gRPC, 50 one after another and 50 with 10 in flight; against
 * floor-ctr.sh driving conmon and the same OCI runtime on the very spec corral wrote (taken from
 * a reference container's bundle, with its own overlay over the same image layers). Also the
 * daemon's RSS idle and with N running containers, and conmon's RSS per container.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Harness } from '../harness/index.js';
import { BENCH_DIR, cmdline, conmonPids, CriClient, interleaved, interrupt, latencyRows, loop, newResult, p50, podConfig, removePods, round, rssMiB, sh, sleep, unimplemented, type BenchResult } from './lib.js';

export interface ContainersOptions { sequential: number; parallel: number; concurrency: number; running: number }

const GOAL = 1.25;
/**
 * Untimed pause between start and stop: the shell in the container ignores SIGTERM (it is pid
 * 1) until its trap is set, and a stop that lands before would wait the whole stop timeout.
 */
const SETTLE_MS = 200;
/** Exits at once on SIGTERM (a shell as pid 1 would ignore it and wait for the stop timeout). */
export const IDLE_COMMAND = ['sh', '-c', "trap 'exit 0' TERM; sleep 3600 & wait"];

export function busyboxRef(h: Harness): string {
  if (!h.registry) throw new Error('the harness has no registry');
  return `${h.registry.host}/corral/busybox:latest`;
}

export function containerConfig(name: string, image: string, command = IDLE_COMMAND): Record<string, unknown> {
  return { metadata: { name }, image: { image }, command, log_path: `${name}.log`, labels: { bench: 'corral' }, linux: {} };
}

/** Everything floor-ctr.sh needs, derived from a running corral container. */
interface FloorTemplate {
  conmon: string[];
  spec: Record<string, any>;
  lower: string;
  runtime: string;
  runtimeRoot: string;
  refId: string;
}

function floorTemplate(ctrId: string): FloorTemplate {
  const pid = conmonPids(ctrId)[0];
  if (!pid) throw new Error(`no conmon for container ${ctrId}`);
  const conmon = cmdline(pid);
  const arg = (flag: string) => {
    const i = conmon.indexOf(flag);
    if (i < 0) throw new Error(`conmon of ${ctrId} has no ${flag}: ${conmon.join(' ')}`);
    return conmon[i + 1]!;
  };
  const bundle = arg('-b');
  const spec = JSON.parse(readFileSync(join(bundle, 'config.json'), 'utf8')) as Record<string, any>;
  const rootPath = String(spec.root.path).startsWith('/') ? String(spec.root.path) : join(bundle, spec.root.path);
  const mountinfo = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').find((l) => l.split(' ')[4] === rootPath);
  const lower = /lowerdir=([^,]+)/.exec(mountinfo ?? '')?.[1];
  if (!lower) throw new Error(`the rootfs of ${ctrId} (${rootPath}) is not an overlay mount`);
  const rootArg = conmon.find((a) => a.startsWith('--root='));
  return { conmon, spec, lower, runtime: arg('-r'), runtimeRoot: rootArg ? rootArg.slice('--root='.length) : '', refId: ctrId };
}

/** conmon's argv for a floor container: the reference's, with this container's id and paths. */
function floorConmonArgs(t: FloorTemplate, id: string, dir: string, shared: string): string[] {
  const paths: Record<string, string> = {
    '-c': id, '-u': id, '-n': `floor_${id}`, '-b': dir, '--exit-dir': join(shared, 'exits'), '--socket-dir-path': join(shared, 'attach'),
    '--persist-dir': dir, '-p': join(dir, 'pidfile'), '-P': join(dir, 'conmon.pid'), '-l': `k8s-file:${join(dir, 'ctr.log')}`,
  };
  const out = [...t.conmon];
  for (let i = 1; i < out.length - 1; i++) {
    const v = paths[out[i]!];
    if (v !== undefined) out[i + 1] = v;
  }
  return out;
}

export async function benchContainers(h: Harness, cri: CriClient, opts: ContainersOptions): Promise<BenchResult> {
  const res = newResult('containers');
  const notes: string[] = [];
  res.raw.notes = notes;
  const image = busyboxRef(h);
  const pods: string[] = [];
  const cleanups: Array<() => void> = [];
  try {
    const idleRss = rssMiB(h.daemonPid!); // fresh: started, answered Version, nothing else
    await cri.image('PullImage', { image: { image } });
    const pcfg = podConfig('bench-ctr', h.dir, false);
    const pod = (await cri.call<{ pod_sandbox_id: string }>('RunPodSandbox', { config: pcfg })).pod_sandbox_id;
    pods.push(pod);
    let seq = 0;
    const corralCycle = async (): Promise<[number, number]> => {
      const name = `c${++seq}`;
      const t0 = performance.now();
      const { container_id } = await cri.call<{ container_id: string }>('CreateContainer', { pod_sandbox_id: pod, sandbox_config: pcfg, config: containerConfig(name, image) });
      await cri.call('StartContainer', { container_id });
      const up = performance.now() - t0;
      await sleep(SETTLE_MS);
      const t1 = performance.now();
      await cri.call('StopContainer', { container_id, timeout: 10 });
      await cri.call('RemoveContainer', { container_id });
      return [up, performance.now() - t1];
    };

    try {
      await corralCycle();
    } catch (e) {
      const why = unimplemented(e);
      if (why) {
        res.skipped.push(`containers: ${why}`);
        return res;
      }
      throw e;
    }

    // The reference container whose spec and conmon command line the floor reuses.
    const ref = (await cri.call<{ container_id: string }>('CreateContainer', { pod_sandbox_id: pod, sandbox_config: pcfg, config: containerConfig('reference', image) })).container_id;
    await cri.call('StartContainer', { container_id: ref });
    const tpl = floorTemplate(ref);
    // Bundles (overlay upper/work, config.json) where corral keeps its own, below the harness
    // dir; exit files and attach sockets on the state tmpfs, beside corral's.
    const shared = join(h.dir, 'floor-ctr');
    const runShared = join(h.stateDir, 'floor-ctr');
    mkdirSync(shared, { recursive: true });
    mkdirSync(join(runShared, 'exits'), { recursive: true });
    mkdirSync(join(runShared, 'attach'), { recursive: true });
    const script = join(BENCH_DIR, 'floor-ctr.sh');
    const live = new Map<string, string[]>();
    const cleanLive = () => {
      for (const common of live.values()) {
        try {
          execFileSync('bash', [script, 'clean', ...common], { timeout: 15_000, stdio: 'ignore' });
        } catch {
          // best effort on the way out
        }
      }
    };
    interrupt.cleanups.add(cleanLive);
    cleanups.push(() => interrupt.cleanups.delete(cleanLive));
    const floorCycle = async (): Promise<[number, number]> => {
      const id = `floor${String(++seq).padStart(4, '0')}${tpl.refId.slice(0, 8)}`;
      const dir = join(shared, id);
      mkdirSync(dir, { recursive: true });
      const spec = structuredClone(tpl.spec);
      spec.root.path = join(dir, 'rootfs');
      if (typeof spec.linux?.cgroupsPath === 'string') spec.linux.cgroupsPath = spec.linux.cgroupsPath.replaceAll(tpl.refId, id);
      writeFileSync(join(dir, 'config.json'), JSON.stringify(spec));
      const common = [dir, id, tpl.lower, tpl.runtime, tpl.runtimeRoot, join(runShared, 'exits')];
      live.set(id, common);
      let t0 = performance.now();
      try {
        await sh('bash', [script, 'start', ...common, '--', ...floorConmonArgs(tpl, id, dir, runShared)], 60_000);
      } catch (e) {
        await sh('bash', [script, 'clean', ...common], 30_000).catch(() => {});
        throw e;
      }
      const a = performance.now() - t0;
      await sleep(SETTLE_MS);
      t0 = performance.now();
      try {
        await sh('bash', [script, 'stop', ...common], 60_000);
      } catch (e) {
        await sh('bash', [script, 'clean', ...common], 30_000).catch(() => {});
        throw e;
      } finally {
        live.delete(id);
      }
      return [a, performance.now() - t0];
    };
    await floorCycle(); // warm-up

    const series = async (label: string, count: number, conc: number) => {
      const r = await interleaved(count, conc, 300_000, corralCycle, floorCycle);
      if (r.timedOut) res.skipped.push(`${label}: stopped after ${r.corral.length} of ${count} (time budget)`);
      const split = (xs: Array<[number, number]>) => ({ up: xs.map((x) => x[0]), down: xs.map((x) => x[1]) });
      return [split(r.corral), split(r.floor)] as const;
    };
    const [cs, fs] = await series('sequential', opts.sequential, 1);
    const [cp, fp] = await series('parallel', opts.parallel, opts.concurrency);
    res.rows.push(...latencyRows('create+start sequential', cs.up, fs.up, GOAL));
    res.rows.push(...latencyRows('stop+remove sequential', cs.down, fs.down, GOAL));
    res.rows.push(...latencyRows(`create+start ${opts.concurrency} parallel`, cp.up, fp.up));
    res.rows.push(...latencyRows(`stop+remove ${opts.concurrency} parallel`, cp.down, fp.down));
    const both = (s: { up: number[]; down: number[] }) => s.up.map((x, i) => x + s.down[i]!);
    res.rows.push(...latencyRows('whole cycle sequential', both(cs), both(fs), GOAL).slice(0, 1));
    res.raw.samples = { corralSequential: cs, floorSequential: fs, corralParallel: cp, floorParallel: fp };

    // Memory: the daemon idle (image pulled, nothing running) and with N running containers.
    await cri.call('StopContainer', { container_id: ref, timeout: 10 });
    await cri.call('RemoveContainer', { container_id: ref });
    const running: string[] = [];
    await loop(opts.running, 5, 240_000, async () => {
      const { container_id } = await cri.call<{ container_id: string }>('CreateContainer', { pod_sandbox_id: pod, sandbox_config: pcfg, config: containerConfig(`r${++seq}`, image) });
      await cri.call('StartContainer', { container_id });
      running.push(container_id);
    });
    await sleep(1000); // let allocations from the burst settle before reading RSS
    const busyRss = rssMiB(h.daemonPid!);
    const conmons = conmonPids(h.dir).map(rssMiB).filter((x) => !Number.isNaN(x));
    res.rows.push({ metric: 'daemon RSS idle (fresh)', corral: round(idleRss, 1), unit: 'MiB', note: 'containerd 1.6: 49-55 MiB' });
    res.rows.push({ metric: `daemon RSS with ${running.length} running`, corral: round(busyRss, 1), unit: 'MiB' });
    if (conmons.length) res.rows.push({ metric: 'conmon RSS per container (mean)', corral: round(conmons.reduce((a, b) => a + b, 0) / conmons.length, 2), unit: 'MiB', note: 'containerd-shim: 13.9 MiB' });
    res.raw.memory = { idleRss, busyRss, running: running.length, conmonRss: conmons };
    notes.push(`floor = conmon + ${tpl.runtime.split('/').pop()} on corral's config.json, own overlay over the same layers (floor-ctr.sh)`);
    notes.push(`p50 ratio of the whole cycle: ${round(p50(both(cs)) / p50(both(fs)))}x`);
    await loop(running.length, 5, 240_000, async (i) => {
      await cri.call('StopContainer', { container_id: running[i], timeout: 10 });
      await cri.call('RemoveContainer', { container_id: running[i] });
    }, true);
  } finally {
    for (const c of cleanups) c();
    await removePods(cri, pods);
  }
  return res;
}
