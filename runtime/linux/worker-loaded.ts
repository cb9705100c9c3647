/**
 * Terminating a worker thread while it is still loading a native addon (koffi, for every
 * worker that makes syscalls) aborts the whole process: the addon's registration throws into
 * an environment that is being torn down, and Node answers with a FATAL ERROR (napi_throw).
 * A daemon stopped right after start, or a service closed right after it warmed its worker
 * (seen in a loaded CI run of the sandbox tests), hits that window. So every such worker posts
 * LOADED once its modules are in, and its client waits for that before terminate().
 */
import type { Worker } from 'node:worker_threads';

/** What a worker posts when its imports are done (id 0 is never a request's). */
export const LOADED = { id: 0, loaded: true } as const;

/** Resolves once `w` posted LOADED, or exited, or failed: from then on terminate() is safe. */
export function whenLoaded(w: Worker): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      w.off('message', onMessage);
      resolve();
    };
    const onMessage = (m: unknown) => {
      if ((m as { loaded?: unknown } | null)?.loaded === true) done();
    };
    w.on('message', onMessage);
    w.once('exit', done);
    w.once('error', done);
  });
}

/** terminate(), after the worker has loaded (at most maxWaitMs: a worker stuck loading is terminated anyway). */
export async function terminateWhenLoaded(w: Worker, loaded: Promise<void>, maxWaitMs = 10_000): Promise<void> {
  // Workers idle unref'd so that they never keep the daemon alive; while this waits for one,
  // it must keep the event loop (and so its own wait) alive.
  w.ref();
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([loaded, new Promise<void>((r) => { timer = setTimeout(r, maxWaitMs); })]);
  clearTimeout(timer);
  await w.terminate();
}
