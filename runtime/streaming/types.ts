/**
 * The contract between the streaming server (server/streaming/, which speaks SPDY and WebSocket)
 * and the runtime side that runs processes in containers and dials into pods. The server turns
 * a client's streams into Node streams and calls these backends; the backends know nothing of
 * the wire protocols.
 */
import { EventEmitter } from 'node:events';
import type { Duplex, Readable, Writable } from 'node:stream';

export interface TerminalSize {
  width: number;
  height: number;
}

/**
 * Terminal size changes from the client. The first size often arrives before the process has a
 * terminal, so the latest one is kept in `current` for the backend to apply once it has one.
 */
export class ResizeEvents extends EventEmitter {
  current: TerminalSize | undefined;

  push(size: TerminalSize): void {
    if (!Number.isInteger(size.width) || !Number.isInteger(size.height) || size.width < 0 || size.height < 0) return;
    if (size.width > 0xffff || size.height > 0xffff) return;
    this.current = size;
    this.emit('resize', size);
  }

  onResize(fn: (size: TerminalSize) => void): () => void {
    this.on('resize', fn);
    return () => this.off('resize', fn);
  }
}

/** The client's side of one exec or attach session, as Node streams. */
export interface StreamIO {
  /** Client input; ends when the client closes stdin. Absent unless stdin was requested. */
  stdin?: Readable;
  /** Process output to the client. With a tty, stdout carries the terminal's output and stderr is absent. */
  stdout?: Writable;
  stderr?: Writable;
  tty: boolean;
  resize: ResizeEvents;
  /** Aborted when the client goes away: the exec'd process must be killed, an attach detached. */
  signal: AbortSignal;
}

export interface ExecRequest {
  containerId: string;
  cmd: string[];
}

export interface ExecBackend {
  /**
   * Runs cmd in the container and resolves with its exit code once it exited and all its output
   * was written to io.stdout/io.stderr (the backend does not end them). 126/127 for a command
   * that cannot run, 128+signal for a killed one.
   */
  exec(req: ExecRequest, io: StreamIO): Promise<number>;
}

export interface AttachBackend {
  /**
   * Joins the running container's stdio. Resolves when the container's output ends (it exited)
   * or when io.signal is aborted (the client detached); the container keeps running then.
   */
  attach(containerId: string, io: StreamIO): Promise<void>;
}

/**
 * Reads of the pod's socket into the caller's buffers (net.Socket's `onread`): no allocation
 * per read, and reads as large as the buffer. `buffer` is one buffer, reused for every read, or
 * a function called after each read for the buffer of the next one. The callback returns false
 * to pause.
 */
export interface PodReads {
  buffer: Buffer | (() => Buffer);
  callback: (bytes: number, buffer: Buffer) => boolean;
}

export interface PortForwardBackend {
  /** A TCP connection to 127.0.0.1:port inside the pod's network namespace; with `reads`, what arrives goes there, not to 'data'. */
  connect(podSandboxId: string, port: number, signal?: AbortSignal, reads?: PodReads): Promise<Duplex>;
}

/** Thrown by an exec backend when the command could not be started at all (reported as an error, not an exit code). */
export class ExecStartError extends Error {}
