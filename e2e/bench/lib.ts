/**
 * Shared pieces of the benchmarks: a CRI gRPC client (crictl's process start would dominate
 * the figures), latency statistics, bounded loops, shell floors and the result shape that
 * run.ts prints and writes as JSON.
 */
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { spawn } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { REPO } from '../harness/paths.js';

export const BENCH_DIR = join(REPO, 'e2e', 'bench');

/** One line of a bench's table. Latencies in ms, throughputs in MB/s, memory in MiB. */
export interface Row {
  metric: string;
  corral?: number;
  floor?: number;
  /** corral / floor for latencies (lower is better), corral / floor for throughputs (higher is better). */
  ratio?: number;
  unit: string;
  goal?: string;
  /** Whether the goal is met; absent when the row has no goal. */
  ok?: boolean;
  note?: string;
}

export interface BenchResult {
  name: string;
  rows: Row[];
  /** Parts that could not run, with why. */
  skipped: string[];
  /** Raw samples and details, for the JSON file. */
  raw: Record<string, unknown>;
}

export function newResult(name: string): BenchResult {
  return { name, rows: [], skipped: [], raw: {} };
}

export function percentile(xs: readonly number[], p: number): number {
  if (xs.length === 0) return NaN;
  const s = [...xs].sort((a, b) => a - b);
  // Nearest rank: with 50 samples p99 is the largest one, which is what a reader expects.
  const rank = Math.min(s.length, Math.max(1, Math.ceil((p / 100) * s.length)));
  return s[rank - 1]!;
}

export const p50 = (xs: readonly number[]) => percentile(xs, 50);
export const p99 = (xs: readonly number[]) => percentile(xs, 99);

export function round(x: number, digits = 2): number {
  if (!Number.isFinite(x)) return x;
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Set on SIGINT/SIGTERM: loops stop issuing work. The harness' own handler then stops the
 * daemons and exits, so what only the bench knows of (floor containers, floor namespaces) is
 * cleaned by the synchronous `cleanups` that run.ts calls first.
 */
export const interrupt = { requested: false, cleanups: new Set<() => void>() };

/**
 * Runs op(i) for i < count with `concurrency` workers, stopping early once `budgetMs` has
 * passed (a slow or hung daemon must not hold the run forever). Returns the samples of the
 * ops that finished; the first error stops every worker and is rethrown. An interrupt stops
 * it too, unless it is a `cleanup` loop.
 */
export async function loop(count: number, concurrency: number, budgetMs: number, op: (i: number) => Promise<void>, cleanup = false): Promise<{ done: number; timedOut: boolean }> {
  const deadline = Date.now() + budgetMs;
  let next = 0;
  let done = 0;
  let timedOut = false;
  let failure: unknown;
  const worker = async () => {
    while (failure === undefined) {
      if (Date.now() > deadline || (interrupt.requested && !cleanup)) {
        timedOut = true;
        return;
      }
      const i = next++;
      if (i >= count) return;
      try {
        await op(i);
        done++;
      } catch (e) {
        failure ??= e;
      }
    }
  };
  await Promise.all(Array.from({ length: Math.min(concurrency, count) }, worker));
  if (failure !== undefined) throw failure;
  return { done, timedOut };
}

/** Wall time of fn in ms. */
export async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

export interface ShResult { code: number | null; stdout: string; stderr: string }

/** Runs a command; rejects when it exits non-zero or runs past timeoutMs (then it is killed). */
export function sh(file: string, args: string[], timeoutMs = 60_000, env?: NodeJS.ProcessEnv): Promise<ShResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(file, args, { stdio: ['ignore', 'pipe', 'pipe'], env: env ?? process.env });
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => err.push(b));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      const r = { code, stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString() };
      if (code === 0) resolve(r);
      else reject(new Error(`${file} ${args.join(' ')}: ${signal ? `killed by ${signal}` : `exit ${code}`}\n${r.stderr.trim() || r.stdout.trim()}`.slice(0, 4000)));
    });
  });
}

/** VmRSS of a process in MiB, or NaN when it is gone. */
export function rssMiB(pid: number): number {
  try {
    const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) / 1024 : NaN;
  } catch {
    return NaN;
  }
}

/** argv of a live process. */
export function cmdline(pid: number): string[] {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter((_, i, a) => i < a.length - 1 || a[i] !== '');
  } catch {
    return [];
  }
}

/** Pids of conmon processes whose command line names `needle` (a container id, a dir). */
export function conmonPids(needle: string): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    const argv = cmdline(Number(d));
    if (argv[0] && /(^|\/)conmon$/.test(argv[0]) && argv.some((a) => a.includes(needle))) out.push(Number(d));
  }
  return out;
}

// ---- CRI client ------------------------------------------------------------------------------

type Callback = (err: grpc.ServiceError | null, res: unknown) => void;
type UnaryFn = (req: unknown, meta: grpc.Metadata, opts: grpc.CallOptions, cb: Callback) => grpc.ClientUnaryCall;

/** RuntimeService and ImageService over the daemon's socket, with the proto-loader shapes. */
export class CriClient {
  /** Every pod and container id the daemons handed out in this run: what a leak of ours names. */
  static readonly seenIds = new Set<string>();
  private readonly rt: grpc.Client;
  private readonly img: grpc.Client;

  /** ownConnection: a connection of its own (grpc-js shares one between identical channels). */
  constructor(socket: string, ownConnection = false) {
    const def = protoLoader.loadSync(join(REPO, 'proto', 'api.proto'), { keepCase: true, longs: String, enums: String, defaults: true, oneofs: true });
    const pkg = grpc.loadPackageDefinition(def) as unknown as {
      runtime: { v1: { RuntimeService: grpc.ServiceClientConstructor; ImageService: grpc.ServiceClientConstructor } };
    };
    const opts: grpc.ChannelOptions = { 'grpc.max_receive_message_length': 16 * 1024 * 1024 };
    if (ownConnection) opts['grpc.use_local_subchannel_pool'] = 1;
    this.rt = new pkg.runtime.v1.RuntimeService(`unix://${socket}`, grpc.credentials.createInsecure(), opts);
    // A second channel for images: a long pull must not queue behind runtime calls (nor the reverse).
    this.img = new pkg.runtime.v1.ImageService(`unix://${socket}`, grpc.credentials.createInsecure(), opts);
  }

  /** A RuntimeService RPC; rejects with the gRPC error (its code is in .code). */
  call<T = any>(method: string, req: unknown = {}, timeoutMs = 120_000): Promise<T> {
    return this.invoke(this.rt, method, req, timeoutMs);
  }

  image<T = any>(method: string, req: unknown = {}, timeoutMs = 600_000): Promise<T> {
    return this.invoke(this.img, method, req, timeoutMs);
  }

  private invoke<T>(client: grpc.Client, method: string, req: unknown, timeoutMs: number): Promise<T> {
    const fn = (client as unknown as Record<string, UnaryFn>)[method];
    if (typeof fn !== 'function') return Promise.reject(new Error(`no RPC ${method}`));
    return new Promise<T>((resolve, reject) => {
      fn.call(client, req, new grpc.Metadata(), { deadline: Date.now() + timeoutMs }, (err, res) => {
        if (err) return reject(err);
        const r = res as { pod_sandbox_id?: string; container_id?: string };
        if (r?.pod_sandbox_id) CriClient.seenIds.add(r.pod_sandbox_id);
        if (r?.container_id) CriClient.seenIds.add(r.container_id);
        resolve(res as T);
      });
    });
  }

  close(): void {
    this.rt.close();
    this.img.close();
  }
}

/** The reason to print when an RPC is not there yet, else undefined. */
export function unimplemented(err: unknown): string | undefined {
  const e = err as { code?: number; details?: string };
  return e?.code === grpc.status.UNIMPLEMENTED ? e.details || 'UNIMPLEMENTED' : undefined;
}

/** A pod config in the proto-loader shape. */
export function podConfig(name: string, dir: string, hostNetwork: boolean, uid = `${name}-${process.pid}-${Date.now()}`): Record<string, unknown> {
  return {
    metadata: { name, namespace: 'corral-bench', uid, attempt: 0 },
    hostname: name,
    log_directory: join(dir, 'logs', name),
    labels: { bench: 'corral' },
    linux: { security_context: { namespace_options: { network: hostNetwork ? 'NODE' : 'POD', pid: 'CONTAINER', ipc: 'POD' } } },
  };
}

/** Stops and removes pods (their containers go with them), 5 at a time, ignoring the already gone. */
export async function removePods(cri: CriClient, ids: string[]): Promise<void> {
  await loop(ids.length, 5, 300_000, async (i) => {
    await cri.call('StopPodSandbox', { pod_sandbox_id: ids[i] }).catch(() => {});
    await cri.call('RemovePodSandbox', { pod_sandbox_id: ids[i] }).catch(() => {});
  }, true);
}

/** Latency rows p50/p99 of corral against a floor. */
export function latencyRows(label: string, corral: number[], floor: number[] | undefined, goalRatio?: number): Row[] {
  const rows: Row[] = [];
  for (const [p, f] of [['p50', p50], ['p99', p99]] as const) {
    const c = f(corral);
    const fl = floor && floor.length ? f(floor) : undefined;
    const ratio = fl ? c / fl : undefined;
    const row: Row = { metric: `${label} ${p}`, corral: round(c, 1), floor: fl === undefined ? undefined : round(fl, 1), ratio: ratio === undefined ? undefined : round(ratio), unit: 'ms' };
    if (p === 'p50' && goalRatio !== undefined && ratio !== undefined) {
      row.goal = `<= ${goalRatio}x`;
      row.ok = ratio <= goalRatio;
    }
    rows.push(row);
  }
  return rows;
}

/**
 * Runs `count` ops of corral and `count` of its floor in alternating rounds of `concurrency`
 * ops each (all in flight together), so that both see the same host load even when other work
 * on the machine comes and goes. Stops early after budgetMs; returns the samples of each side.
 */
export async function interleaved<T>(count: number, concurrency: number, budgetMs: number, corral: () => Promise<T>, floor: () => Promise<T>): Promise<{ corral: T[]; floor: T[]; timedOut: boolean }> {
  const out = { corral: [] as T[], floor: [] as T[], timedOut: false };
  const deadline = Date.now() + budgetMs;
  for (let done = 0; done < count; done += concurrency) {
    if (Date.now() > deadline || interrupt.requested) {
      out.timedOut = true;
      break;
    }
    const n = Math.min(concurrency, count - done);
    out.corral.push(...(await Promise.all(Array.from({ length: n }, corral))));
    out.floor.push(...(await Promise.all(Array.from({ length: n }, floor))));
  }
  return out;
}
