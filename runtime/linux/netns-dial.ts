/**
 * TCP connections to 127.0.0.1:<port> inside a pinned network namespace, for port-forward. The
 * daemon's main thread never changes namespace: one long-lived worker thread enters the pod's
 * namespace per request (netns-dial-worker.ts), creates the connected socket there and hands
 * back the fd, which works from any thread of the process.
 */
import { Worker } from 'node:worker_threads';
import { terminateWhenLoaded, whenLoaded } from './worker-loaded.js';

/** @internal */
export interface DialRequest { id: number; netns: string; port: number }
/** @internal */
export type DialReply = { id: number; ok: true; fd: number } | { id: number; ok: false; error: { message: string; code?: string } };

export class NetnsDialer {
  private worker: Worker | undefined;
  private loaded: Promise<void> = Promise.resolve();
  private nextId = 1;
  private readonly pending = new Map<number, { resolve: (fd: number) => void; reject: (e: Error) => void }>();

  private ensure(): Worker {
    if (this.worker) return this.worker;
    const w = new Worker(new URL('./netns-dial-worker.js', import.meta.url));
    this.loaded = whenLoaded(w);
    w.unref();
    w.on('message', (r: DialReply) => {
      const p = this.pending.get(r.id);
      if (!p) return;
      this.pending.delete(r.id);
      if (r.ok) p.resolve(r.fd);
      else p.reject(Object.assign(new Error(r.error.message), { code: r.error.code }));
    });
    const dead = (err: Error) => {
      if (this.worker === w) this.worker = undefined;
      for (const p of this.pending.values()) p.reject(err);
      this.pending.clear();
    };
    w.on('error', dead);
    w.on('exit', (code) => dead(new Error(`netns dialer thread exited (${code})`)));
    this.worker = w;
    return w;
  }

  /** A connected socket's fd; the caller owns it (wrap it in net.Socket({ fd })). */
  dial(netnsPath: string, port: number): Promise<number> {
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      this.ensure().postMessage({ id, netns: netnsPath, port } satisfies DialRequest);
    });
  }

  async close(): Promise<void> {
    const w = this.worker;
    this.worker = undefined;
    if (w) await terminateWhenLoaded(w, this.loaded);
  }
}
