/**
 * One exec or attach session, independent of the transport: the SPDY and WebSocket front ends
 * turn their streams/channels into RemoteCommandChannels and hand them here.
 */
import type { Readable, Writable } from 'node:stream';
import { ResizeEvents, type AttachBackend, type ExecBackend, type StreamIO } from '../../runtime/index.js';
import type { Logger } from '../../runtime/index.js';
import { encodeStatus, exitCodeStatus, internalErrorStatus, successStatus, type Status } from './status.js';

export interface StreamOptions {
  stdin: boolean;
  stdout: boolean;
  stderr: boolean;
  tty: boolean;
}

export type PreparedRequest =
  | { kind: 'exec'; containerId: string; cmd: string[]; opts: StreamOptions }
  | { kind: 'attach'; containerId: string; opts: StreamOptions }
  | { kind: 'portforward'; podSandboxId: string; ports: number[] };

export interface RemoteCommandChannels {
  stdin?: Readable;
  stdout?: Writable;
  stderr?: Writable;
  /** JSON terminal sizes, one object after another. */
  resize?: Readable;
  /** Writes the final message (if any) and closes the error channel. */
  writeError(data: Buffer | undefined): Promise<void>;
  /** Aborted when the client goes away. */
  gone: AbortSignal;
  /** Ends the transport after everything was written. */
  finish(): void;
}

/**
 * Decodes a stream of concatenated JSON objects ({"Width":80,"Height":24}, as Go's json.Encoder
 * writes them) and feeds them to the resize queue. Brace counting finds object boundaries, so
 * neither newlines nor message boundaries are needed.
 */
export function decodeResizes(src: Readable, out: ResizeEvents, logger?: Logger): void {
  let text = '';
  src.on('data', (chunk: Buffer) => {
    text += chunk.toString('utf8');
    for (;;) {
      const start = text.indexOf('{');
      if (start < 0) {
        text = '';
        return;
      }
      let depth = 0;
      let end = -1;
      let inStr = false;
      for (let i = start; i < text.length; i++) {
        const c = text[i];
        if (inStr) {
          if (c === '\\') i++;
          else if (c === '"') inStr = false;
        } else if (c === '"') inStr = true;
        else if (c === '{') depth++;
        else if (c === '}' && --depth === 0) {
          end = i;
          break;
        }
      }
      if (end < 0) {
        text = text.slice(start);
        if (text.length > 4096) text = '';
        return;
      }
      const obj = text.slice(start, end + 1);
      text = text.slice(end + 1);
      try {
        const v = JSON.parse(obj) as { Width?: unknown; Height?: unknown; width?: unknown; height?: unknown };
        const width = Number(v.Width ?? v.width);
        const height = Number(v.Height ?? v.height);
        out.push({ width, height });
      } catch {
        logger?.debug(`streaming: bad resize message ${JSON.stringify(obj)}`);
      }
    }
  });
  src.on('error', () => {});
}

function waitFinish(w: Writable | undefined, gone: AbortSignal): Promise<void> {
  if (!w || w.writableFinished || w.destroyed) return Promise.resolve();
  return new Promise((resolve) => {
    const done = () => {
      w.off('finish', done);
      w.off('close', done);
      w.off('error', done);
      gone.removeEventListener('abort', done);
      resolve();
    };
    w.once('finish', done);
    w.once('close', done);
    w.once('error', done);
    gone.addEventListener('abort', done, { once: true });
    if (!w.writableEnded) w.end();
  });
}

export interface Backends {
  exec: ExecBackend;
  attach: AttachBackend;
}

/** Runs the request against the backend and reports the outcome on the error channel. */
export async function runRemoteCommand(
  req: Extract<PreparedRequest, { kind: 'exec' | 'attach' }>,
  ch: RemoteCommandChannels,
  version: number,
  backends: Backends,
  logger: Logger,
): Promise<void> {
  const resize = new ResizeEvents();
  if (ch.resize) decodeResizes(ch.resize, resize, logger);
  for (const w of [ch.stdout, ch.stderr]) w?.on('error', (err: Error) => logger.debug(`streaming: client stream: ${err.message}`));
  ch.stdin?.on('error', () => {});
  const io: StreamIO = { stdin: ch.stdin, stdout: ch.stdout, stderr: ch.stderr, tty: req.opts.tty, resize, signal: ch.gone };
  let status: Status;
  try {
    if (req.kind === 'exec') {
      const code = await backends.exec.exec({ containerId: req.containerId, cmd: req.cmd }, io);
      status = code === 0 ? successStatus() : exitCodeStatus(code);
    } else {
      await backends.attach.attach(req.containerId, io);
      status = successStatus();
    }
  } catch (err) {
    const what = req.kind === 'exec' ? 'error executing command in container' : 'error attaching to container';
    const msg = `${what}: ${(err as Error).message}`;
    if (!ch.gone.aborted) logger.warn(`streaming: ${msg}`, { container: req.containerId });
    status = internalErrorStatus(msg);
  }
  if (ch.gone.aborted) {
    ch.finish();
    return;
  }
  await Promise.all([waitFinish(ch.stdout, ch.gone), waitFinish(ch.stderr, ch.gone)]);
  try {
    await ch.writeError(encodeStatus(status, version));
  } catch (err) {
    logger.debug(`streaming: writing status: ${(err as Error).message}`);
  }
  ch.finish();
}
