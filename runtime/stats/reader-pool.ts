/**
 * Cgroup stats read on a worker thread. A ListContainerStats over 100 containers reads about
 * 2,000 small cgroup files; through fs.promises each costs four trips through libuv's
 * four-thread pool (open, fstat, read, close), which also delays every other RPC's file I/O.
 * On a worker, the same CgroupStatsReader reads them synchronously, off the main thread:
 * cgroupfs reads never wait for a disk, so a synchronous read is just a syscall.
 *
 * read() calls made in the same tick (a Promise.all over containers) go to the worker as one
 * batch. This file is both the API (main thread) and the worker body.
 */
import { closeSync, openSync, readSync, readdirSync, readlinkSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import type { CgroupMode } from '../cgroups/detect.js';
import { CgroupStatsReader, type CgroupStats, type CgroupStatsSource, type ReadOptions } from '../cgroups/stats.js';
import { InternalError } from '../errors.js';

const ROLE = 'corral-cgroup-stats';

interface Batch { id: number; paths: string[]; detail: boolean[] }
interface BatchReply { id: number; results: Array<CgroupStats | undefined | { error: string }> }

/** Below this many cgroups a batch is not split: a message round trip costs more than it saves. */
const MIN_SPLIT = 16;

export class PooledStatsReader implements CgroupStatsSource {
  /** Opening cgroupfs files is kernel time that scales with cores; one worker per core, at most two. */
  private readonly workers: Array<Worker | undefined>;
  private nextId = 1;
  private queue: Array<{ path: string; detail: boolean; resolve: (s: CgroupStats | undefined) => void; reject: (e: Error) => void }> = [];
  private scheduled = false;
  private readonly inflight = new Map<number, Array<{ resolve: (s: CgroupStats | undefined) => void; reject: (e: Error) => void }>>();

  constructor(private readonly opts: { mode: CgroupMode; root: string; workers?: number }) {
    this.workers = new Array(Math.max(1, opts.workers ?? Math.min(2, availableParallelism()))).fill(undefined);
  }

  read(cgroupPath: string, opts: ReadOptions = {}): Promise<CgroupStats | undefined> {
    return new Promise((resolve, reject) => {
      this.queue.push({ path: cgroupPath, detail: !!opts.detail, resolve, reject });
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(() => this.flush());
      }
    });
  }

  async close(): Promise<void> {
    const ws = this.workers.filter((w): w is Worker => w !== undefined);
    this.workers.fill(undefined);
    this.fail(new InternalError('cgroup stats reader closed'));
    await Promise.all(ws.map((w) => w.terminate()));
  }

  private flush(): void {
    this.scheduled = false;
    const batch = this.queue;
    this.queue = [];
    if (batch.length === 0) return;
    const parts = Math.min(this.workers.length, Math.ceil(batch.length / MIN_SPLIT));
    const size = Math.ceil(batch.length / parts);
    for (let i = 0; i < parts; i++) {
      const part = batch.slice(i * size, (i + 1) * size);
      const w = this.ensureWorker(i);
      const id = this.nextId++;
      this.inflight.set(id, part);
      w.ref();
      w.postMessage({ id, paths: part.map((b) => b.path), detail: part.map((b) => b.detail) } satisfies Batch);
    }
  }

  private ensureWorker(slot: number): Worker {
    const existing = this.workers[slot];
    if (existing) return existing;
    const w = new Worker(new URL(import.meta.url), { workerData: { role: ROLE, mode: this.opts.mode, root: this.opts.root } });
    w.unref();
    w.on('message', (r: BatchReply) => {
      const waiters = this.inflight.get(r.id);
      this.inflight.delete(r.id);
      waiters?.forEach((wt, i) => {
        const res = r.results[i];
        if (res && 'error' in res) wt.reject(new InternalError(`reading cgroup stats: ${res.error}`));
        else wt.resolve(res);
      });
      if (this.inflight.size === 0) for (const x of this.workers) x?.unref();
    });
    const gone = (err: Error): void => {
      if (this.workers[slot] === w) this.workers[slot] = undefined;
      this.fail(err);
    };
    w.on('error', (err) => gone(new InternalError(`cgroup stats worker failed: ${err.message}`)));
    w.on('exit', (code) => gone(new InternalError(`cgroup stats worker exited (${code})`)));
    this.workers[slot] = w;
    return w;
  }

  private fail(err: Error): void {
    for (const waiters of this.inflight.values()) waiters.forEach((w) => w.reject(err));
    this.inflight.clear();
  }
}

function serve(): void {
  const { mode, root } = workerData as { mode: CgroupMode; root: string };
  // cgroup files are small and report no size (st_size is 4096 or 0), so readFileSync's
  // fstat buys nothing: open, read into one reused buffer, close.
  let buf = Buffer.allocUnsafe(64 * 1024);
  const syncRead = (path: string): Promise<string | undefined> => {
    let fd: number;
    try {
      fd = openSync(path, 'r');
    } catch {
      return Promise.resolve(undefined);
    }
    try {
      let len = 0;
      for (;;) {
        if (len === buf.length) {
          const bigger = Buffer.allocUnsafe(buf.length * 2);
          buf.copy(bigger);
          buf = bigger;
        }
        const n = readSync(fd, buf, len, buf.length - len, null);
        if (n === 0) break;
        len += n;
      }
      return Promise.resolve(buf.toString('utf8', 0, len));
    } catch {
      return Promise.resolve(undefined);
    } finally {
      closeSync(fd);
    }
  };
  const readDir = (path: string): Promise<string[] | undefined> => {
    try {
      return Promise.resolve(readdirSync(path));
    } catch {
      return Promise.resolve(undefined);
    }
  };
  const readLink = (path: string): Promise<string | undefined> => {
    try {
      return Promise.resolve(readlinkSync(path));
    } catch {
      return Promise.resolve(undefined);
    }
  };
  const reader = new CgroupStatsReader({ mode, root, readFile: syncRead, readDir, readLink });
  parentPort!.on('message', async (b: Batch) => {
    const results = await Promise.all(b.paths.map((p, i) => reader.read(p, { detail: b.detail[i] }).catch((err: Error) => ({ error: err.message }))));
    parentPort!.postMessage({ id: b.id, results } satisfies BatchReply);
  });
}

if (!isMainThread && (workerData as { role?: string } | null)?.role === ROLE) serve();
