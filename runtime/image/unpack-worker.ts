/**
 * Worker thread side of the unpack pool (unpack-pool.ts): receives a layer's compressed bytes
 * as they arrive, verifies and decompresses them and writes the files, off the main thread
 * that serves every RPC. A worker interleaves several jobs (one per layer in flight).
 *
 * Messages in:  {t:'start', job, dir, blobDigest, diffId} {t:'data', job, chunk} {t:'end', job} {t:'abort', job}
 * Messages out: {t:'ack', job, bytes} {t:'done', job, stats} {t:'error', job, kind, message}
 */
import { parentPort } from 'node:worker_threads';
import { RuntimeError } from '../errors.js';
import { fsops } from '../linux/fsops.js';
import { syncIO } from '../snapshot/unpack.js';
import { unpackBlob } from './layer.js';

interface Job {
  id: number;
  queue: Buffer[];
  ended: boolean;
  aborted: boolean;
  wake: (() => void) | undefined;
}

const jobs = new Map<number, Job>();
const port = parentPort!;

async function* chunks(job: Job): AsyncGenerator<Buffer> {
  for (;;) {
    if (job.aborted) throw new RuntimeError('Cancelled', 'unpack cancelled');
    const c = job.queue.shift();
    if (c) {
      port.postMessage({ t: 'ack', job: job.id, bytes: c.length });
      yield c;
      continue;
    }
    if (job.ended) return;
    await new Promise<void>((r) => { job.wake = r; });
    job.wake = undefined;
  }
}

port.on('message', (m: { t: string; job: number; dir?: string; blobDigest?: string; diffId?: string; chunk?: Uint8Array }) => {
  if (m.t === 'start') {
    const job: Job = { id: m.job, queue: [], ended: false, aborted: false, wake: undefined };
    jobs.set(job.id, job);
    unpackBlob(m.dir!, chunks(job), m.blobDigest || undefined, m.diffId!, fsops, syncIO).finally(() => jobs.delete(job.id)).then(
      (stats) => port.postMessage({ t: 'done', job: job.id, stats }),
      (err: unknown) => port.postMessage({
        t: 'error', job: job.id,
        kind: err instanceof RuntimeError ? err.kind : 'Internal',
        message: err instanceof Error ? err.message : String(err),
      }),
    );
    return;
  }
  const job = jobs.get(m.job);
  if (!job) return;
  if (m.t === 'data') job.queue.push(Buffer.from(m.chunk!.buffer, m.chunk!.byteOffset, m.chunk!.byteLength));
  else if (m.t === 'end') job.ended = true;
  else if (m.t === 'abort') job.aborted = true;
  job.wake?.();
});

port.postMessage({ t: 'ready' });
