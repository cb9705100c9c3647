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

/** How long the client gets to open its streams (the kubelet's default too). */
export const STREAM_CREATION_TIMEOUT_MS = 30_000;

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
  timeoutMs = STREAM_CREATION_TIMEOUT_MS,
): SpdySession {
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
