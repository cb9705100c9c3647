/**
 * A client connection to a SOCK_SEQPACKET unix socket (conmon's attach socket). libuv cannot
 * poll such sockets, so a worker thread does blocking reads and posts each packet; writes go out
 * from the main thread without blocking, retried while the socket buffer is full.
 */
import { EventEmitter } from 'node:events';
import { Worker } from 'node:worker_threads';
import { SHUT_RDWR, SHUT_WR, closeFd, connectSeqpacket, sendPacket, shutdownSocket } from './socket.js';

export class SeqpacketConnection extends EventEmitter {
  private readonly fd: number;
  private readonly reader: Worker;
  private queue: Array<{ data: Buffer; cb: (err?: Error) => void }> = [];
  private retry: NodeJS.Timeout | undefined;
  private closed = false;
  private ended = false;

  /** Connects (synchronously: a unix socket connect does not wait on the network). */
  constructor(path: string) {
    super();
    this.fd = connectSeqpacket(path);
    this.reader = new Worker(new URL('./seqpacket-worker.js', import.meta.url), { workerData: { fd: this.fd } });
    this.reader.on('message', (m: Buffer | Uint8Array | null | { error: string }) => {
      if (m === null) {
        this.ended = true;
        this.emit('end');
      } else if (m instanceof Uint8Array) {
        this.emit('packet', Buffer.from(m.buffer, m.byteOffset, m.byteLength));
      } else {
        this.emit('error', new Error(m.error));
      }
    });
    this.reader.on('error', (err) => this.emit('error', err));
    this.reader.on('exit', () => {
      if (!this.ended) {
        this.ended = true;
        this.emit('end');
      }
      this.release();
    });
  }

  /** Sends one packet; cb runs once it is in the socket buffer. */
  send(data: Buffer, cb: (err?: Error) => void = () => {}): void {
    if (this.closed) return cb(new Error('attach connection is closed'));
    this.queue.push({ data, cb });
    this.flush();
  }

  private flush(): void {
    this.retry = undefined;
    while (this.queue.length > 0 && !this.closed) {
      const head = this.queue[0]!;
      let sent: boolean;
      try {
        sent = sendPacket(this.fd, head.data);
      } catch (err) {
        this.queue.shift();
        head.cb(err as Error);
        continue;
      }
      if (!sent) {
        this.retry = setTimeout(() => this.flush(), 5);
        return;
      }
      this.queue.shift();
      head.cb();
    }
  }

  /** Half-close: the peer reads EOF (conmon then closes the container's stdin when it should). */
  endWrite(): void {
    if (!this.closed) shutdownSocket(this.fd, SHUT_WR);
  }

  /** Closes both directions; the reader thread wakes up with EOF and exits, then the fd is closed. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.retry) clearTimeout(this.retry);
    for (const q of this.queue) q.cb(new Error('attach connection closed'));
    this.queue = [];
    shutdownSocket(this.fd, SHUT_RDWR);
  }

  private released = false;
  private release(): void {
    if (this.released) return;
    this.released = true;
    this.closed = true;
    closeFd(this.fd);
    this.emit('close');
  }
}
