/**
 * Pinned namespaces (CRI-O's pinns idea, without a helper binary): a pod's net, ipc and
 * uts namespaces are created on a worker thread and kept alive by bind-mounting the
 * thread's nsfs files onto plain files, so containers join them by path and no process
 * has to hold them. The daemon's main thread never changes namespace.
 *
 * The worker also sets the hostname and writes the namespaced sysctls while it sits in
 * the new namespaces: /proc/sys resolves net, ipc and uts entries against the namespaces
 * of the thread that opens them.
 */
import { promises as fs } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { terminateWhenLoaded, whenLoaded } from './worker-loaded.js';
import { MNT_DETACH, type Syscalls } from './syscalls.js';

export type PinnableNamespace = 'net' | 'ipc' | 'uts';

export interface PinRequest {
  /** Existing directory; the pins are created as <dir>/net, <dir>/ipc, <dir>/uts. */
  dir: string;
  namespaces: PinnableNamespace[];
  /** Set inside the new uts namespace (requires 'uts'). */
  hostname?: string;
  /** [path under /proc/sys (slash-separated), value] written inside the new namespaces, in order. */
  sysctls?: Array<[string, string]>;
  /**
   * Namespaces pinned already (a pod's own user namespace made them, ./userns.ts): the worker
   * joins these instead of making new ones, sets the hostname and sysctls, and pins nothing.
   */
  join?: PinnedNamespaces;
}

export type PinnedNamespaces = Partial<Record<PinnableNamespace, string>>;

/** What the sandbox service needs; FakePinner-like doubles implement it in tests. */
export interface NamespacePinner {
  pin(req: PinRequest): Promise<PinnedNamespaces>;
  /** Unmounts and deletes one pin file; a missing or unmounted file succeeds. */
  unpin(path: string): Promise<void>;
  /** True when path is a live pinned namespace (an nsfs mount), false after a reboot. */
  isPinned(path: string): Promise<boolean>;
  close(): Promise<void>;
}

/** A sysctl the kernel refused inside the new namespaces. */
export class SysctlWriteError extends Error {
  constructor(readonly sysctl: string, readonly code: string | undefined, message: string) {
    super(message);
    this.name = 'SysctlWriteError';
  }
}

/** @internal message shapes shared with netns-worker.ts */
export interface PinWorkerRequest {
  id: number;
  dir: string;
  namespaces: PinnableNamespace[];
  hostname?: string;
  sysctls: Array<[string, string]>;
  join?: PinnedNamespaces;
}
/** @internal */
export type PinWorkerReply =
  | { id: number; ok: true; paths: PinnedNamespaces }
  | { id: number; ok: false; error: { message: string; code?: string; sysctl?: string } };

const NSFS_MAGIC = 0x6e736673;

interface Pending {
  resolve: (p: PinnedNamespaces) => void;
  reject: (e: Error) => void;
}

/** The real pinner: one long-lived worker thread, replaced if it dies. */
export class WorkerPinner implements NamespacePinner {
  private worker: Worker | undefined;
  private loaded: Promise<void> = Promise.resolve();
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(private readonly sys: Syscalls, private readonly timeoutMs = 30_000) {}

  private ensureWorker(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL('./netns-worker.js', import.meta.url));
    this.loaded = whenLoaded(w);
    // The daemon must be able to exit while the worker idles.
    w.unref();
    w.on('message', (reply: PinWorkerReply) => {
      const p = this.pending.get(reply.id);
      if (!p) return;
      this.pending.delete(reply.id);
      if (this.pending.size === 0) w.unref();
      if (reply.ok) p.resolve(reply.paths);
      else if (reply.error.sysctl) {
        p.reject(new SysctlWriteError(reply.error.sysctl, reply.error.code,
          `sysctl ${reply.error.sysctl.replace(/\//g, '.')}: ${reply.error.message}`));
      } else {
        const e = new Error(`pinning namespaces: ${reply.error.message}`) as Error & { code?: string };
        e.code = reply.error.code;
        p.reject(e);
      }
    });
    const fail = (err: Error) => {
      if (this.worker === w) this.worker = undefined;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    w.on('error', (err) => fail(err));
    w.on('exit', (code) => fail(new Error(`namespace worker exited with code ${code}`)));
    this.worker = w;
    return w;
  }

  /** Starts the worker ahead of the first pod, so that pod does not pay its ~30 ms start. */
  warm(): void {
    this.ensureWorker();
  }

  pin(req: PinRequest): Promise<PinnedNamespaces> {
    if (req.hostname !== undefined && !req.namespaces.includes('uts')) {
      return Promise.reject(new Error('a hostname needs a uts namespace of its own'));
    }
    const w = this.ensureWorker();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      // A worker stuck in a syscall would hang every later pod: replace it instead.
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new Error(`pinning namespaces in ${req.dir}: no answer from the worker within ${this.timeoutMs} ms`));
        if (this.worker === w) this.worker = undefined;
        void w.terminate();
      }, this.timeoutMs);
      this.pending.set(id, {
        resolve: (p) => { clearTimeout(timer); resolve(p); },
        reject: (e) => { clearTimeout(timer); reject(e); },
      });
      w.ref();
      const msg: PinWorkerRequest = { id, dir: req.dir, namespaces: req.namespaces, hostname: req.hostname, sysctls: req.sysctls ?? [], ...(req.join ? { join: req.join } : {}) };
      w.postMessage(msg);
    });
  }

  async unpin(path: string): Promise<void> {
    try {
      await this.sys.umount2Async(path, MNT_DETACH);
    } catch (err) {
      // EINVAL: not a mount point (already unmounted); ENOENT: already gone.
      const code = (err as { code?: string }).code;
      if (code !== 'EINVAL' && code !== 'ENOENT') throw err;
    }
    await fs.rm(path, { force: true });
  }

  async isPinned(path: string): Promise<boolean> {
    try {
      return Number((await fs.statfs(path)).type) === NSFS_MAGIC;
    } catch {
      return false;
    }
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await terminateWhenLoaded(w, this.loaded);
  }
}
