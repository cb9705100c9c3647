/**
 * Network interface counters of a pod, read inside its pinned network namespace. A pod
 * without a pause process has no process whose /proc/<pid>/net/dev could be read, so a
 * worker thread enters the namespace with setns(2) on the pinned nsfs file and reads its
 * own /proc/self/task/<tid>/net/dev (procfs resolves net/ per thread; /proc/self/net would
 * show the main thread's, i.e. the host's, namespace). The thread then returns to the host
 * namespace; one long-lived worker serves every read, since starting a worker costs ~70 ms.
 *
 * This file is both the API (main thread) and the worker body (when loaded as a worker).
 */
import { closeSync, openSync, readFileSync } from 'node:fs';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { LOADED, terminateWhenLoaded, whenLoaded } from '../linux/worker-loaded.js';
import { DeadlineExceededError, InternalError, NotFoundError } from '../errors.js';
import { CLONE_NEWNET, linux } from '../linux/syscalls.js';

export interface InterfaceStats {
  name: string;
  rxBytes: bigint;
  rxPackets: bigint;
  rxErrors: bigint;
  rxDropped: bigint;
  txBytes: bigint;
  txPackets: bigint;
  txErrors: bigint;
  txDropped: bigint;
}

/**
 * /proc/net/dev: two header lines, then "name: 8 receive counters 8 transmit counters"
 * (bytes packets errs drop fifo frame compressed multicast | bytes packets errs drop fifo
 * colls carrier compressed).
 */
export function parseProcNetDev(text: string): InterfaceStats[] {
  const out: InterfaceStats[] = [];
  for (const line of text.split('\n')) {
    const colon = line.indexOf(':');
    if (colon < 0) continue;
    const name = line.slice(0, colon).trim();
    const f = line.slice(colon + 1).trim().split(/\s+/);
    if (!name || f.length < 16 || !f.every((x) => /^\d+$/.test(x))) continue;
    const n = (i: number): bigint => BigInt(f[i]!);
    out.push({
      name,
      rxBytes: n(0), rxPackets: n(1), rxErrors: n(2), rxDropped: n(3),
      txBytes: n(8), txPackets: n(9), txErrors: n(10), txDropped: n(11),
    });
  }
  return out;
}

const WORKER_ROLE = 'corral-ifstats';

interface Req { id: number; path: string }
type Reply = { id: number; ok: true; text: string } | { id: number; ok: false; code?: string; message: string };

/** Reads interface counters inside pinned network namespaces, through one worker thread. */
export class NetnsStatsReader {
  private worker: Worker | undefined;
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (t: string) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private loaded: Promise<void> = Promise.resolve();

  constructor(private readonly timeoutMs = 5000) {}

  /** Every interface of the namespace at netnsPath (lo included; callers pick). */
  async read(netnsPath: string): Promise<InterfaceStats[]> {
    return parseProcNetDev(await this.request(netnsPath));
  }

  close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    this.failAll(new InternalError('interface stats reader closed'));
    return w ? terminateWhenLoaded(w, this.loaded) : Promise.resolve();
  }

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL(import.meta.url), { workerData: { role: WORKER_ROLE } });
    this.loaded = whenLoaded(w);
    // An idle reader must not keep the daemon alive.
    w.unref();
    w.on('message', (r: Reply) => {
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      clearTimeout(p.timer);
      if (r.ok) p.resolve(r.text);
      else if (r.code === 'ENOENT') p.reject(new NotFoundError(`network namespace: ${r.message}`));
      else p.reject(new InternalError(`reading interface stats: ${r.message}`));
      if (this.pending.size === 0) w.unref();
    });
    const gone = (err: Error): void => {
      if (this.worker === w) this.worker = undefined;
      this.failAll(err);
    };
    w.on('error', (err) => gone(new InternalError(`interface stats worker failed: ${err.message}`)));
    w.on('exit', (code) => gone(new InternalError(`interface stats worker exited (${code})`)));
    this.worker = w;
    return w;
  }

  private request(path: string): Promise<string> {
    const w = this.ensureWorker();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new DeadlineExceededError(`reading interface stats in ${path} took over ${this.timeoutMs} ms`));
        // A worker stuck in a namespace is of no further use.
        if (this.worker === w) this.worker = undefined;
        void w.terminate();
      }, this.timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      w.ref();
      w.postMessage({ id, path } satisfies Req);
    });
  }

  private failAll(err: Error): void {
    for (const [id, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(err);
      this.pending.delete(id);
    }
  }
}

/** Worker body: synchronous on purpose, so every file access runs on this (setns'd) thread, not on libuv's pool. */
function serve(): void {
  const tid = linux.gettid();
  const home = openSync(`/proc/self/task/${tid}/ns/net`, 'r');
  parentPort!.on('message', (req: Req) => {
    let reply: Reply;
    let fd: number | undefined;
    try {
      fd = openSync(req.path, 'r');
      linux.setns(fd, CLONE_NEWNET);
      reply = { id: req.id, ok: true, text: readFileSync(`/proc/self/task/${tid}/net/dev`, 'utf8') };
    } catch (err) {
      const e = err as { code?: string; message?: string };
      reply = { id: req.id, ok: false, ...(e.code ? { code: e.code } : {}), message: e.message ?? String(err) };
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    let back = true;
    try {
      linux.setns(home, CLONE_NEWNET);
    } catch {
      back = false;
    }
    parentPort!.postMessage(reply);
    // A thread that cannot return to the host namespace must not serve again.
    if (!back) process.exit(1);
  });
  parentPort!.postMessage(LOADED);
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === WORKER_ROLE) serve();
