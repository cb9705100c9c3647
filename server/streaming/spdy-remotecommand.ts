/**
 * exec/attach over SPDY: the client opens one stream per channel, named by its streamType
 * header (error, stdin, stdout, stderr, resize) and waits for our SYN_REPLY to each. The session
 * starts once every stream the request asked for exists.
 */
import type { Duplex } from 'node:stream';
import type { Logger } from '../../runtime/index.js';
import { headerValue } from './spdy/headers.js';
import { SpdySession, type SpdyStream } from './spdy/session.js';
import { runRemoteCommand, type Backends, type PreparedRequest, type StreamOptions } from './remotecommand.js';
import { encodeStatus, type Status } from './status.js';

/** How long the client gets to open its streams (the kubelet's default too). */
export const STREAM_CREATION_TIMEOUT_MS = 30_000;

/** A GOAWAY that the client does not answer by closing is followed by a cut after this long. */
const CLOSE_GRACE_MS = 5000;

export interface SpdyRemoteCommandOptions {
  /** How long the client gets to open its streams. */
  streamCreationTimeoutMs?: number;
  /**
   * Aborted (with a message as its reason) when the server ends the session for being idle:
   * the message goes on the error stream, then GOAWAY. Without it, client-go reads the closed
   * error stream as success and crictl would exit 0 for a process we killed.
   */
  idle?: AbortSignal;
}

export function expectedStreams(opts: StreamOptions, version: number): string[] {
  const want = ['error'];
  if (opts.stdin) want.push('stdin');
  if (opts.stdout) want.push('stdout');
  if (opts.stderr && !opts.tty) want.push('stderr');
  if (opts.tty && version >= 3) want.push('resize');
  return want;
}

export function serveSpdyRemoteCommand(
  socket: Duplex,
  req: Extract<PreparedRequest, { kind: 'exec' | 'attach' }>,
  version: number,
  backends: Backends,
  logger: Logger,
  opts: SpdyRemoteCommandOptions = {},
): SpdySession {
  const timeoutMs = opts.streamCreationTimeoutMs ?? STREAM_CREATION_TIMEOUT_MS;
  const session = new SpdySession(socket, { isServer: true, onDebug: (m) => logger.debug(`streaming: ${m}`) });
  const gone = new AbortController();
  const want = expectedStreams(req.opts, version);
  const streams = new Map<string, SpdyStream>();
  let started = false;
  const timer = setTimeout(() => {
    logger.warn(`streaming: ${req.kind} ${req.containerId}: client opened [${[...streams.keys()].join(', ')}] of [${want.join(', ')}] within ${timeoutMs} ms`);
    session.close(0);
  }, timeoutMs);
  timer.unref();

  session.on('close', () => {
    clearTimeout(timer);
    gone.abort();
  });
  opts.idle?.addEventListener('abort', () => {
    const error = started ? streams.get('error') : undefined;
    if (!error || error.writableEnded || error.destroyed) return session.close(CLOSE_GRACE_MS);
    const status: Status = { metadata: {}, status: 'Failure', message: String(opts.idle!.reason), reason: 'Timeout', code: 504 };
    const bye = setTimeout(() => session.close(CLOSE_GRACE_MS), 1000);
    bye.unref();
    error.end(encodeStatus(status, version) ?? Buffer.alloc(0), () => {
      clearTimeout(bye);
      session.close(CLOSE_GRACE_MS);
    });
  }, { once: true });
  session.on('stream', (s: SpdyStream) => {
    const type = headerValue(s.headers, 'streamtype') ?? '';
    s.on('error', () => {});
    if (started || !want.includes(type) || streams.has(type)) {
      s.reset();
      return;
    }
    s.reply();
    streams.set(type, s);
    if (streams.size < want.length) return;
    started = true;
    clearTimeout(timer);
    const error = streams.get('error')!;
    void runRemoteCommand(
      req,
      {
        stdin: streams.get('stdin'),
        stdout: streams.get('stdout'),
        stderr: streams.get('stderr'),
        resize: streams.get('resize'),
        gone: gone.signal,
        writeError: (data) => new Promise<void>((resolve) => {
          if (error.destroyed) return resolve();
          error.once('close', () => resolve());
          error.end(data ?? Buffer.alloc(0), () => resolve());
        }),
        finish: () => session.close(),
      },
      version,
      backends,
      logger,
    ).catch((err: Error) => {
      logger.warn(`streaming: ${req.kind} session failed: ${err.message}`);
      session.destroy();
    });
  });
  return session;
}
