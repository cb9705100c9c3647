/**
 * Shared pieces of the reliability leg: one pod+container cycle through gRPC, the daemon's
 * footprint (RSS, open fds), what corral's own dirs still hold after everything was removed,
 * and the outcome shape run.ts counts and prints.
 */
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import type { Harness } from '../harness/index.js';
import { busyboxRef } from '../bench/containers.js';
import { CriClient, podConfig } from '../bench/lib.js';

export { CriClient, p50, p99, percentile, round, sleep } from '../bench/lib.js';

/** One scenario's result: run.ts prints `figures`, counts it passed when `problems` is empty. */
export interface Outcome {
  name: string;
  problems: string[];
  figures: Record<string, unknown>;
  /** Set when the scenario could not run here, with why (counted skipped). */
  skipped?: string;
}

export function outcome(name: string): Outcome {
  return { name, problems: [], figures: {} };
}

/** A seeded PRNG (mulberry32): a run is replayed by its printed seed. */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** The gRPC status name of an error, or 'OK'. */
export function codeOf(err: unknown): string {
  if (!err) return 'OK';
  const code = (err as { code?: number }).code;
  return typeof code === 'number' ? (GRPC_NAMES[code] ?? String(code)) : 'NO_STATUS';
}

const GRPC_NAMES = ['OK', 'CANCELLED', 'UNKNOWN', 'INVALID_ARGUMENT', 'DEADLINE_EXCEEDED', 'NOT_FOUND', 'ALREADY_EXISTS', 'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED', 'FAILED_PRECONDITION', 'ABORTED', 'OUT_OF_RANGE', 'UNIMPLEMENTED', 'INTERNAL', 'UNAVAILABLE', 'DATA_LOSS', 'UNAUTHENTICATED'];

export function detailsOf(err: unknown): string {
  return String((err as { details?: string; message?: string })?.details ?? (err as Error)?.message ?? err);
}

/** A command that exits at once: the cycle measures the runtime, not the workload. */
export const EXIT_COMMAND = ['true'];
/** Runs until told to stop (SIGTERM ends it at once). */
export const IDLE_COMMAND = ['sh', '-c', "trap 'exit 0' TERM; sleep 3600 & wait"];

export function containerConfig(name: string, image: string, command: string[], attempt = 0): Record<string, unknown> {
  return { metadata: { name, attempt }, image: { image }, command, log_path: `${name}_${attempt}.log`, labels: { reliability: 'corral' }, linux: {} };
}

export function reliabilityPod(h: Harness, name: string, uid: string, hostNetwork = false): Record<string, unknown> {
  const cfg = podConfig(name, h.dir, hostNetwork, uid) as { metadata: Record<string, unknown>; labels: Record<string, string> };
  cfg.metadata.namespace = 'corral-reliability';
  cfg.labels = { reliability: 'corral' };
  return cfg;
}

export async function pullBusybox(h: Harness, cri: CriClient): Promise<string> {
  const image = busyboxRef(h);
  await cri.image('PullImage', { image: { image } }, 300_000);
  return image;
}

/** Polls ContainerStatus until the container has exited; returns its exit code. */
export async function waitExited(cri: CriClient, id: string, timeoutMs = 60_000): Promise<number> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const st = await cri.call<{ status: { state: string; exit_code: number } }>('ContainerStatus', { container_id: id }, 30_000);
    if (st.status.state === 'CONTAINER_EXITED') return st.status.exit_code;
    if (Date.now() > deadline) throw new Error(`container ${id} still ${st.status.state} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * The cycle of the soak: run pod, create, start, wait for the exit, remove the container, stop
 * and remove the pod. Returns the wall time in ms; throws on the first failing call.
 */
export async function podCycle(h: Harness, cri: CriClient, image: string, name: string): Promise<number> {
  const t0 = performance.now();
  const config = reliabilityPod(h, name, `${name}-uid`);
  const pod = (await cri.call<{ pod_sandbox_id: string }>('RunPodSandbox', { config }, 60_000)).pod_sandbox_id;
  try {
    const ctr = (await cri.call<{ container_id: string }>('CreateContainer', {
      pod_sandbox_id: pod, config: containerConfig('c', image, EXIT_COMMAND), sandbox_config: config,
    }, 60_000)).container_id;
    await cri.call('StartContainer', { container_id: ctr }, 60_000);
    const code = await waitExited(cri, ctr);
    if (code !== 0) throw new Error(`container ${ctr} exited ${code}`);
    await cri.call('RemoveContainer', { container_id: ctr }, 60_000);
  } finally {
    await cri.call('StopPodSandbox', { pod_sandbox_id: pod }, 60_000);
    await cri.call('RemovePodSandbox', { pod_sandbox_id: pod }, 60_000);
  }
  return performance.now() - t0;
}

/** The daemon's resident set (MiB) and open file descriptors. */
export function footprint(pid: number | undefined): { rssMiB: number; fds: number } {
  if (!pid) return { rssMiB: NaN, fds: NaN };
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return { rssMiB: m ? Number(m[1]) / 1024 : NaN, fds: readdirSync(`/proc/${pid}/fd`).length };
  } catch {
    return { rssMiB: NaN, fds: NaN };
  }
}

function entries(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

/**
 * What corral's dirs still hold that names a pod or container, once every pod was removed:
 * per-object dirs of the state and root dirs, container snapshots (image layers stay), IPAM
 * leases of the harness' network, CNI results, exit and attach files, runtime state.
 * The host side (mounts, netns, cgroups, processes, iptables) is the harness' leak check.
 */
export function leftoverFiles(h: Harness): string[] {
  const out: string[] = [];
  const perObject = [
    join(h.stateDir, 'sandboxes'), join(h.stateDir, 'exits'), join(h.stateDir, 'attach'), join(h.stateDir, 'exec'),
    join(h.stateDir, 'crun'), join(h.stateDir, 'runc'), join(h.rootDir, 'containers'), join(h.rootDir, 'cni', 'results'),
  ];
  for (const d of perObject) {
    for (const e of entries(d)) {
      if (/^[0-9a-f]{64}/.test(e) || e.includes('reliability')) out.push(join(d, e));
    }
  }
  // Container snapshots (upper, work, image-volume views): <root>/rw/<key>.
  const rw = join(h.rootDir, 'rw');
  for (const e of entries(rw)) out.push(join(rw, e));
  // host-local's leases: one file per address in use, named by the address.
  const ipam = join(h.dir, 'cni', 'ipam');
  for (const net of entries(ipam)) {
    for (const e of entries(join(ipam, net))) {
      if (/^\d+\.\d+\.\d+\.\d+$|:/.test(e)) out.push(join(ipam, net, e));
    }
  }
  return out;
}

/**
 * leftoverFiles once the daemon's background removals (a removed pod's run dir is deleted after
 * the call returns) had up to `ms` to finish.
 */
export async function settledLeftovers(h: Harness, ms = 5000): Promise<string[]> {
  const end = Date.now() + ms;
  for (;;) {
    const files = leftoverFiles(h);
    if (files.length === 0 || Date.now() > end) return files;
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** Files (not dirs) under dir, recursively, with their sizes; for "nothing half-written" checks. */
export function filesUnder(dir: string): Array<{ path: string; size: number }> {
  const out: Array<{ path: string; size: number }> = [];
  const walk = (d: string) => {
    for (const e of entries(d)) {
      const p = join(d, e);
      let st;
      try {
        st = statSync(p, { throwIfNoEntry: false });
      } catch {
        continue;
      }
      if (!st) continue;
      if (st.isDirectory()) walk(p);
      else out.push({ path: p, size: st.size });
    }
  };
  walk(dir);
  return out;
}

/** Every pod and container still listed by the daemon. */
export async function listed(cri: CriClient): Promise<{ pods: Array<Record<string, any>>; containers: Array<Record<string, any>> }> {
  const pods = (await cri.call<{ items: Array<Record<string, any>> }>('ListPodSandbox', {}, 30_000)).items;
  const containers = (await cri.call<{ containers: Array<Record<string, any>> }>('ListContainers', {}, 30_000)).containers;
  return { pods, containers };
}

/** Stops and removes every pod and container; returns the errors (none expected). */
export async function removeEverything(cri: CriClient): Promise<string[]> {
  const errs: string[] = [];
  const { pods, containers } = await listed(cri);
  for (const c of containers) {
    await cri.call('RemoveContainer', { container_id: c.id }, 60_000).catch((e) => errs.push(`RemoveContainer ${c.id}: ${codeOf(e)} ${detailsOf(e)}`));
  }
  for (const p of pods) {
    await cri.call('StopPodSandbox', { pod_sandbox_id: p.id }, 60_000).catch((e) => errs.push(`StopPodSandbox ${p.id}: ${codeOf(e)} ${detailsOf(e)}`));
    await cri.call('RemovePodSandbox', { pod_sandbox_id: p.id }, 60_000).catch((e) => errs.push(`RemovePodSandbox ${p.id}: ${codeOf(e)} ${detailsOf(e)}`));
  }
  return errs;
}
