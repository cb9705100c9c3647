/**
 * exec/attach over WebSocket (the channel.k8s.io family). Every message starts with its channel:
 * 0 stdin, 1 stdout, 2 stderr, 3 error, 4 resize. The base64 variants send text messages whose
 * first character is the channel as an ASCII digit. v5 adds a close signal: the message
 * [255, channel] half-closes that channel, which is how a client ends stdin.
 */
import { PassThrough, Writable } from 'node:stream';
import type { WebSocket } from 'ws';
import type { Logger } from '../../runtime/index.js';
import { runRemoteCommand, type Backends, type PreparedRequest } from './remotecommand.js';

export const CH_STDIN = 0;
export const CH_STDOUT = 1;
export const CH_STDERR = 2;
export const CH_ERROR = 3;
export const CH_RESIZE = 4;
export const CH_CLOSE = 255;

export function wsCodec(protocol: string): { base64: boolean; closeSignal: boolean; version: number } {
  const base64 = protocol.includes('base64');
  const m = /^v(\d+)\./.exec(protocol);
  const version = m ? Number(m[1]) : 1;
  return { base64, closeSignal: version >= 5, version };
}

/** A Writable whose chunks become messages on one channel; the callback waits for the socket. */
export class WsChannelWriter extends Writable {
  constructor(private readonly ws: WebSocket, private readonly channel: number, private readonly base64: boolean) {
    super({ highWaterMark: 256 * 1024 });
  }

  send(data: Buffer, cb: (err?: Error) => void): void {
    if (this.ws.readyState !== this.ws.OPEN) return cb(new Error('websocket is closed'));
    if (this.base64) {
      this.ws.send(String.fromCharCode(48 + this.channel) + data.toString('base64'), { binary: false }, cb);
    } else {
      const msg = Buffer.allocUnsafe(data.length + 1);
      msg[0] = this.channel;
      data.copy(msg, 1);
      this.ws.send(msg, { binary: true }, cb);
    }
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.send(chunk, (err) => cb(err ?? null));
  }
}

export function serveWsRemoteCommand(
  ws: WebSocket,
  protocol: string,
  req: Extract<PreparedRequest, { kind: 'exec' | 'attach' }>,
  backends: Backends,
  logger: Logger,
): void {
  const codec = wsCodec(protocol);
  const gone = new AbortController();
  const { opts } = req;
  const stdin = opts.stdin ? new PassThrough() : undefined;
  const resize = opts.tty ? new PassThrough() : undefined;
  const stdout = opts.stdout ? new WsChannelWriter(ws, CH_STDOUT, codec.base64) : undefined;
  const stderr = opts.stderr && !opts.tty ? new WsChannelWriter(ws, CH_STDERR, codec.base64) : undefined;
  const error = new WsChannelWriter(ws, CH_ERROR, codec.base64);
  let finished = false;

  ws.on('close', () => {
    gone.abort();
    stdin?.end();
    resize?.end();
  });
  ws.on('error', (err) => logger.debug(`streaming: websocket: ${err.message}`));
  ws.on('message', (raw: Buffer | ArrayBuffer | Buffer[], isBinary: boolean) => {
    let data = Buffer.isBuffer(raw) ? raw : Array.isArray(raw) ? Buffer.concat(raw) : Buffer.from(raw);
    if (data.length === 0) return;
    if (codec.closeSignal && data[0] === CH_CLOSE) {
      if (data.length === 2 && data[1] === CH_STDIN) stdin?.end();
      else if (data.length === 2 && data[1] === CH_RESIZE) resize?.end();
      return;
    }
    let channel = data[0]!;
    if (codec.base64 || !isBinary) {
      channel -= 48;
      data = Buffer.from(data.subarray(1).toString('latin1'), 'base64');
    } else {
      data = data.subarray(1);
    }
    const target = channel === CH_STDIN ? stdin : channel === CH_RESIZE ? resize : undefined;
    if (!target || target.writableEnded || data.length === 0) return;
    if (!target.write(data)) {
      ws.pause();
      target.once('drain', () => ws.resume());
    }
  });

  // Like the kubelet: an empty message on the first writable channel tells the client we are up.
  const hello = stdout ?? stderr ?? error;
  hello.send(Buffer.alloc(0), () => {});

  void runRemoteCommand(
    req,
    {
      stdin,
      stdout,
      stderr,
      resize,
      gone: gone.signal,
      writeError: (data) => new Promise<void>((resolve) => {
        if (!data || data.length === 0) return resolve();
        error.send(data, () => resolve());
      }),
      finish: () => {
        if (finished) return;
        finished = true;
        if (ws.readyState === ws.OPEN) ws.close(1000);
        const t = setTimeout(() => ws.terminate(), 5000);
        t.unref();
        ws.once('close', () => clearTimeout(t));
      },
    },
    codec.version,
    backends,
    logger,
  ).catch((err: Error) => {
    logger.warn(`streaming: ${req.kind} websocket session failed: ${err.message}`);
    ws.terminate();
  });
}
