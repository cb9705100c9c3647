/**
 * Runs layer unpacking (digest checks, decompression, tar extraction, file writes) on worker
 * threads. The main thread only reads the network and forwards bytes, so parallel layers use
 * every core instead of queueing behind each other and behind RPC handling on one thread.
 *
 * Bytes travel in batches of up to BATCH bytes copied into a buffer of their own, whose memory
 * is transferred to the worker (not cloned): network reads are 16-64 KiB, and posting each one
 * costs a structured clone and leaves garbage on the thread that serves every RPC.
 *
 * Flow control: at most MAX_INFLIGHT bytes per layer are sent ahead of what the worker has
 * consumed. One worker per core, each interleaving the layers it is given; started at creation
 * (loading the modules costs ~60 ms of CPU per worker, better paid before the first pull) and
 * stopped after IDLE_MS without work, to be started again on demand.
 */
import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import { terminateWhenLoaded } from '../linux/worker-loaded.js';
import { CancelledError, RuntimeError, type ErrorKind } from '../errors.js';
import type { UnpackStats } from '../snapshot/unpack.js';

const MAX_INFLIGHT = 8 << 20;
const BATCH = 1 << 20;
const IDLE_MS = 30_000;

interface Slot {
  worker: Worker;
  /** Settles when the worker has loaded its modules (or died). */
  loaded: Promise<void>;
  jobs: number;
  dead: boolean;
  idleTimer?: NodeJS.Timeout;
}

export class UnpackPool {
  private readonly slots: Slot[] = [];
  private nextJob = 1;
  private closed = false;

  constructor(private readonly size = Math.max(1, availableParallelism())) {
    for (let i = 0; i < size; i++) this.spawn();
  }

  private spawn(): Slot {
    const worker = new Worker(new URL('./unpack-worker.js', import.meta.url));
    worker.unref();
    const loaded = new Promise<void>((resolve) => {
      const onMessage = (m: { t?: string }) => { if (m?.t === 'ready') done(); };
      const done = () => { worker.off('message', onMessage); worker.off('exit', done); resolve(); };
      worker.on('message', onMessage);
      worker.once('exit', done);
    });
    const slot: Slot = { worker, loaded, jobs: 0, dead: false };
    const gone = () => {
      slot.dead = true;
      const i = this.slots.indexOf(slot);
      if (i !== -1) this.slots.splice(i, 1);
    };
    worker.on('error', gone);
    worker.on('exit', gone);
    this.slots.push(slot);
    this.idle(slot);
    return slot;
  }

  private idle(slot: Slot): void {
    if (slot.idleTimer) clearTimeout(slot.idleTimer);
    slot.idleTimer = setTimeout(() => {
      if (slot.jobs === 0) void slot.worker.terminate();
    }, IDLE_MS);
    slot.idleTimer.unref();
  }

  private acquire(): Slot {
    let slot = [...this.slots].sort((a, b) => a.jobs - b.jobs)[0];
    if (!slot || (slot.jobs > 0 && this.slots.length < this.size)) slot = this.spawn();
    if (slot.idleTimer) clearTimeout(slot.idleTimer);
    slot.jobs++;
    return slot;
  }

  private release(slot: Slot): void {
    slot.jobs--;
    if (slot.jobs === 0 && !slot.dead) this.idle(slot);
  }

  /** Resolves once the workers started so far have loaded their modules. */
  async ready(): Promise<void> {
    await Promise.all(this.slots.map((s) => s.loaded));
  }

  /** Unpacks the compressed stream src into dir on a worker; rejects with the worker's error kind. */
  async unpack(dir: string, src: AsyncIterable<Buffer>, blobDigest: string | undefined, diffId: string, signal: AbortSignal): Promise<UnpackStats> {
    if (this.closed) throw new CancelledError('image service closing');
    const slot = this.acquire();
    const job = this.nextJob++;
    const w = slot.worker;
    let inflight = 0;
    let wake: (() => void) | undefined;
    let finished = false;
    let crashed: Error | undefined;
    const result = new Promise<UnpackStats>((resolve, reject) => {
      const onMessage = (m: { t: string; job: number; bytes?: number; stats?: UnpackStats; kind?: ErrorKind; message?: string }) => {
        if (m.job !== job) return;
        if (m.t === 'ack') {
          inflight -= m.bytes!;
          if (inflight < MAX_INFLIGHT) wake?.();
          return;
        }
        cleanup();
        if (m.t === 'done') resolve(m.stats!);
        else reject(new RuntimeError(m.kind ?? 'Internal', m.message ?? 'unpack failed'));
      };
      const onExit = () => {
        cleanup();
        crashed = new RuntimeError('Internal', 'unpack worker exited unexpectedly');
        reject(crashed);
      };
      const cleanup = () => {
        finished = true;
        w.off('message', onMessage);
        w.off('exit', onExit);
        wake?.();
      };
      w.on('message', onMessage);
      w.on('exit', onExit);
    });
    result.catch(() => undefined);
    w.postMessage({ t: 'start', job, dir, blobDigest: blobDigest ?? '', diffId });
    let batch: Buffer | undefined;
    let used = 0;
    const flush = async () => {
      if (!batch || used === 0) return;
      const chunk = batch.subarray(0, used);
      batch = undefined;
      w.postMessage({ t: 'data', job, chunk }, [chunk.buffer as ArrayBuffer]);
      inflight += used;
      used = 0;
      while (inflight >= MAX_INFLIGHT && !finished) await new Promise<void>((r) => { wake = r; });
      wake = undefined;
    };
    try {
      for await (const chunk of src) {
        if (finished) break;
        let off = 0;
        while (off < chunk.length) {
          // allocUnsafeSlow: a buffer that owns its ArrayBuffer (never a pool slice), so it can be transferred.
          batch ??= Buffer.allocUnsafeSlow(BATCH);
          const n = chunk.copy(batch, used, off);
          used += n;
          off += n;
          if (used === BATCH) await flush();
        }
      }
      await flush();
      if (!finished) w.postMessage({ t: 'end', job });
    } catch (err) {
      // The source failed (network, cancel): stop the worker's job, then report the source error.
      if (!finished) w.postMessage({ t: 'abort', job });
      await result.catch(() => undefined);
      this.release(slot);
      if (signal.aborted && signal.reason instanceof RuntimeError) throw signal.reason;
      throw err;
    }
    try {
      return await result;
    } finally {
      this.release(slot);
    }
  }

  async close(): Promise<void> {
    this.closed = true;
    // Never while a worker still loads its native addon (linux/worker-loaded.ts).
    await Promise.all(this.slots.filter((s) => s.jobs === 0).map((s) => terminateWhenLoaded(s.worker, s.loaded)));
  }
}
