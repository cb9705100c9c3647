/**
 * Attach: joins a running container's stdio through conmon's attach socket (SOCK_SEQPACKET).
 * conmon sends each chunk of output as one packet whose first byte names the stream (2 stdout,
 * 3 stderr) and copies every packet it receives, as is, to the container's stdin. Resizes go to
 * conmon's control fifo as "1 <height> <width>\n". Several clients may attach at once; each gets
 * all output. Detaching closes only our connection: the container keeps running (conmon closes
 * its stdin only when it was created stdin-once).
 */
import { constants, promises as fs } from 'node:fs';
import { FailedPreconditionError } from '../errors.js';
import { SeqpacketConnection } from '../linux/seqpacket.js';
import type { Logger } from '../util/log.js';
import type { ContainerLookup } from './ports.js';
import type { AttachBackend, StreamIO, TerminalSize } from './types.js';

export const ATTACH_PIPE_STDOUT = 2;
export const ATTACH_PIPE_STDERR = 3;
/** conmon reads at most this much per packet; larger writes would be cut. */
const STDIN_PACKET = 4096;

export interface AttachBackendDeps {
  containers: ContainerLookup;
  logger: Logger;
  /** For tests: how to reach the attach socket. */
  connect?: (path: string) => SeqpacketConnection;
}

/** Writes one resize line to conmon's control fifo (non-blocking: no reader means no conmon). */
export async function writeResize(ctlFifoPath: string, size: TerminalSize): Promise<void> {
  const fh = await fs.open(ctlFifoPath, constants.O_WRONLY | constants.O_NONBLOCK);
  try {
    await fh.write(`1 ${size.height} ${size.width}\n`);
  } finally {
    await fh.close();
  }
}

export class ConmonAttachBackend implements AttachBackend {
  constructor(private readonly deps: AttachBackendDeps) {}

  async attach(containerId: string, io: StreamIO): Promise<void> {
    const c = this.deps.containers.get(containerId);
    if (c.state !== 'RUNNING') throw new FailedPreconditionError(`container ${c.id} is ${c.state}, not running`);
    const conn = (this.deps.connect ?? ((p) => new SeqpacketConnection(p)))(c.attachSocketPath);
    const log = this.deps.logger;
    const resize = (s: TerminalSize) => {
      writeResize(c.ctlFifoPath, s).catch((err: Error) => log.debug(`attach ${c.id}: resize: ${err.message}`));
    };
    if (c.tty && io.resize.current) resize(io.resize.current);
    const offResize = c.tty ? io.resize.onResize(resize) : () => {};
    // Without stdin at create, conmon has nowhere to put input: it is dropped, as by CRI-O.
    const stdin = c.stdin ? io.stdin : undefined;
    if (io.stdin && !c.stdin) io.stdin.resume();
    const onStdin = (b: Buffer) => {
      for (let off = 0; off < b.length; off += STDIN_PACKET) conn.send(Buffer.from(b.subarray(off, off + STDIN_PACKET)));
    };
    const onStdinEnd = () => conn.endWrite();
    if (stdin) {
      stdin.on('data', onStdin);
      stdin.once('end', onStdinEnd);
    }
    try {
      await new Promise<void>((resolve) => {
        conn.on('packet', (p: Buffer) => {
          if (p.length < 2) return;
          const data = p.subarray(1);
          if (p[0] === ATTACH_PIPE_STDOUT) io.stdout?.write(data);
          else if (p[0] === ATTACH_PIPE_STDERR) (io.stderr ?? (c.tty ? io.stdout : undefined))?.write(data);
        });
        conn.once('end', () => resolve());
        conn.on('error', (err: Error) => {
          log.debug(`attach ${c.id}: ${err.message}`);
          resolve();
        });
        if (io.signal.aborted) resolve();
        else io.signal.addEventListener('abort', () => resolve(), { once: true });
      });
    } finally {
      offResize();
      if (stdin) {
        stdin.off('data', onStdin);
        stdin.off('end', onStdinEnd);
      }
      conn.close();
    }
  }
}
