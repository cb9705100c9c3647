/**
 * A SPDY/3.1 session over any byte stream (a TCP/TLS socket after the HTTP upgrade, or a
 * WebSocket tunnel for port-forward). Streams are Node Duplexes: their readable side carries the
 * peer's DATA, their writable side becomes our DATA frames, and end() sends FIN.
 *
 * Flow control: we keep per-stream and session receive windows and send WINDOW_UPDATE as the
 * consumer drains data, so a peer that honours windows is slowed by a slow consumer. The send
 * side is trickier: moby/spdystream, which the kubelet, kubectl, crictl and critest all use,
 * ignores SETTINGS and WINDOW_UPDATE and never grants window; a server that waited for its
 * grants would stall after 64 KiB. In the default 'auto' mode the send windows are therefore
 * honoured only once the peer shows it does flow control (it sent SETTINGS with an initial
 * window or any WINDOW_UPDATE); before that, TCP backpressure on the socket is what paces us.
 */
import { EventEmitter } from 'node:events';
import { Duplex } from 'node:stream';
import {
  FLAG_FIN, FLAG_UNIDIRECTIONAL, FrameParser, GoAwayStatus, HeaderCompressor, HeaderDecompressor, RstStatus, Setting,
  SpdyProtocolError, dataFrameHeader, encodeFrame, type Frame,
} from './frames.js';
import type { HeaderMap } from './headers.js';
import { SpdyHeaderError } from './headers.js';

export const DEFAULT_WINDOW = 64 * 1024;
const MAX_WINDOW = 0x7fffffff;
/**
 * Largest DATA frame we send (the format allows 16 MiB). One port-forward read (256 KiB) goes
 * out as one frame: measured, the first 100 MB through a new tunnel ran 1.25x faster than with
 * 64 KiB frames (fewer trips through code the JIT has not optimized yet); later ones the same.
 */
const MAX_DATA_CHUNK = 256 * 1024;
/**
 * How much may wait in the socket's buffer before a writer waits for 'drain'. Node's default
 * (16 KiB) is below one data frame, which would make every frame wait for the kernel.
 */
const SOCKET_BUFFER_LIMIT = 1024 * 1024;
/** Buffered in a stream's writable side before its writer (a pipe from the pod's socket) pauses. */
const STREAM_WRITE_BUFFER = 512 * 1024;

export type FlowControlMode = 'auto' | 'strict' | 'off';

export interface SpdySessionOptions {
  /** A server accepts odd (client) stream ids and opens none; a client opens odd ids. */
  isServer: boolean;
  flowControl?: FlowControlMode;
  /** Our receive window per stream; advertised with SETTINGS when it is not the default. */
  receiveWindow?: number;
  /** Called for protocol problems worth a debug line. */
  onDebug?: (msg: string) => void;
}

export class SpdyStream extends Duplex {
  readonly id: number;
  /** Headers of the SYN_STREAM (peer-opened) or that we sent (locally opened). */
  readonly headers: HeaderMap;
  replyHeaders: HeaderMap | undefined;
  /** RST_STREAM status when the stream was reset (by either side). */
  resetStatus: number | undefined;

  /** @internal */ sendWindow: number;
  /** @internal */ recvWindow: number;
  /** @internal */ recvUnacked = 0;
  /** @internal */ replied: boolean;
  /** @internal */ localClosed = false;
  /** @internal */ remoteClosed = false;
  /** @internal */ windowWaiter: (() => void) | undefined;
  /** @internal */ paused = false;

  private readonly session: SpdySession;

  /** @internal */
  constructor(session: SpdySession, id: number, headers: HeaderMap, sendWindow: number, recvWindow: number, replied: boolean) {
    super({ allowHalfOpen: true, readableHighWaterMark: recvWindow, writableHighWaterMark: STREAM_WRITE_BUFFER });
    this.session = session;
    this.id = id;
    this.headers = headers;
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
    this.replied = replied;
  }

  /** Sends SYN_REPLY (once). Writing data replies implicitly with no headers. */
  reply(headers: HeaderMap = {}, fin = false): void {
    if (this.replied) return;
    this.replied = true;
    this.session.sendFrame({ type: 'SYN_REPLY', streamId: this.id, flags: fin ? FLAG_FIN : 0, headers });
    if (fin) this.markLocalClosed();
  }

  /** Aborts the stream with RST_STREAM. */
  reset(status: number = RstStatus.CANCEL): void {
    if (this.resetStatus !== undefined) return;
    this.resetStatus = status;
    if (!(this.localClosed && this.remoteClosed)) this.session.sendFrame({ type: 'RST_STREAM', streamId: this.id, status });
    this.localClosed = true;
    this.remoteClosed = true;
    this.session.forget(this);
    this.destroy();
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.session.writeData(this, chunk).then(() => cb(), (err: Error) => cb(err));
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.resetStatus !== undefined || this.localClosed) return cb();
    if (!this.replied) this.reply({}, true);
    else {
      this.session.sendFrame({ type: 'DATA', streamId: this.id, flags: FLAG_FIN, data: Buffer.alloc(0) });
      this.markLocalClosed();
    }
    cb();
  }

  override _read(): void {
    this.session.consumed(this);
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (this.resetStatus === undefined && !(this.localClosed && this.remoteClosed)) {
      // Destroyed by its user before both sides finished: tell the peer.
      this.resetStatus = RstStatus.CANCEL;
      this.session.sendFrame({ type: 'RST_STREAM', streamId: this.id, status: RstStatus.CANCEL });
      this.localClosed = true;
      this.remoteClosed = true;
    }
    this.session.forget(this);
    this.windowWaiter?.();
    cb(err);
  }

  /** @internal */
  markLocalClosed(): void {
    this.localClosed = true;
    if (this.remoteClosed) this.session.forget(this);
  }
}

export class SpdySession extends EventEmitter {
  private readonly socket: Duplex;
  private readonly parser: FrameParser;
  private readonly compressor = new HeaderCompressor();
  private readonly streams = new Map<number, SpdyStream>();
  private readonly mode: FlowControlMode;
  private readonly recvWindowSize: number;
  private readonly isServer: boolean;
  private peerFlowControl = false;
  private peerInitialWindow = DEFAULT_WINDOW;
  private sessionSendWindow = DEFAULT_WINDOW;
  private sessionRecvUnacked = 0;
  private sessionWaiters: Array<() => void> = [];
  private lastPeerStreamId = 0;
  private nextLocalStreamId: number;
  private nextPingId: number;
  private readonly pings = new Map<number, (rtt: number) => void>();
  private goAwaySent = false;
  private goAwayReceived = false;
  private closed = false;
  private drainWaiters: Array<() => void> = [];
  private readonly debug: (msg: string) => void;

  constructor(socket: Duplex, opts: SpdySessionOptions) {
    super();
    this.socket = socket;
    this.isServer = opts.isServer;
    this.mode = opts.flowControl ?? 'auto';
    this.recvWindowSize = opts.receiveWindow ?? DEFAULT_WINDOW;
    this.nextLocalStreamId = opts.isServer ? 2 : 1;
    this.nextPingId = opts.isServer ? 2 : 1;
    this.debug = opts.onDebug ?? (() => {});
    this.parser = new FrameParser(new HeaderDecompressor());
    // WINDOW_UPDATE and PING are tiny frames a peer waits for: Nagle would hold them for an ACK.
    const nd = (socket as Duplex & { setNoDelay?: (v: boolean) => void }).setNoDelay;
    if (typeof nd === 'function') nd.call(socket, true);
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.wakeDrain());
    socket.on('error', (err) => this.debug(`spdy socket error: ${err.message}`));
    socket.on('close', () => this.teardown());
    socket.on('end', () => {
      // The peer is gone (upgraded sockets are half-open capable, so nothing closes ours for us).
      this.teardown();
      socket.end();
      setTimeout(() => socket.destroy(), 1000).unref();
    });
    if (this.recvWindowSize !== DEFAULT_WINDOW) {
      this.sendFrame({ type: 'SETTINGS', flags: 0, entries: [{ flags: 0, id: Setting.INITIAL_WINDOW_SIZE, value: this.recvWindowSize }] });
    }
  }

  get isClosed(): boolean { return this.closed; }
  get streamCount(): number { return this.streams.size; }

  /** Opens a stream (client role, and tests). Resolves when the peer's SYN_REPLY arrives. */
  openStream(headers: HeaderMap, fin = false): SpdyStream {
    if (this.closed || this.goAwayReceived) throw new Error('spdy session is closing');
    const id = this.nextLocalStreamId;
    this.nextLocalStreamId += 2;
    const s = new SpdyStream(this, id, headers, this.peerInitialWindow, this.recvWindowSize, true);
    s.replied = true;
    this.streams.set(id, s);
    this.sendFrame({ type: 'SYN_STREAM', streamId: id, associatedId: 0, priority: 0, slot: 0, flags: fin ? FLAG_FIN : 0, headers });
    if (fin) s.localClosed = true;
    return s;
  }

  ping(): Promise<number> {
    const id = this.nextPingId;
    this.nextPingId += 2;
    const start = process.hrtime.bigint();
    return new Promise((resolve) => {
      this.pings.set(id, () => resolve(Number(process.hrtime.bigint() - start) / 1e6));
      this.sendFrame({ type: 'PING', id });
    });
  }

  /** Graceful close: GOAWAY, then end the byte stream; a peer that never closes is cut after `graceMs`. */
  close(graceMs = 5000): void {
    if (this.closed) return;
    if (!this.goAwaySent) {
      this.goAwaySent = true;
      this.sendFrame({ type: 'GOAWAY', lastGoodStreamId: this.lastPeerStreamId, status: GoAwayStatus.OK });
    }
    this.socket.end();
    const t = setTimeout(() => this.socket.destroy(), graceMs);
    t.unref();
    this.socket.once('close', () => clearTimeout(t));
  }

  destroy(err?: Error): void {
    if (err) this.debug(`spdy session destroyed: ${err.message}`);
    this.socket.destroy();
    this.teardown();
  }

  /** @internal */
  sendFrame(frame: Frame): boolean {
    if (this.closed || this.socket.destroyed || this.socket.writableEnded) return false;
    return this.socket.write(encodeFrame(frame, this.compressor));
  }

  private enforcing(): boolean {
    return this.mode === 'strict' || (this.mode === 'auto' && this.peerFlowControl);
  }

  /**
   * @internal Sends DATA frames for one write, honouring windows and socket backpressure.
   * Resolves once the socket has handed the last byte of `chunk` to the kernel, so a stream's
   * write callback means its buffer may be reused (port-forward recycles its read buffers).
   */
  async writeData(s: SpdyStream, chunk: Buffer): Promise<void> {
    if (!s.replied) s.reply();
    let off = 0;
    let flushed: Promise<void> | undefined;
    while (off < chunk.length) {
      if (this.closed || this.socket.destroyed) throw new Error('spdy session closed');
      if (s.resetStatus !== undefined) throw new Error(`spdy stream ${s.id} was reset`);
      if (s.localClosed) throw new Error(`spdy stream ${s.id} is closed for writing`);
      let n = Math.min(chunk.length - off, MAX_DATA_CHUNK);
      if (this.enforcing()) {
        const avail = Math.min(s.sendWindow, this.sessionSendWindow);
        if (avail <= 0) {
          await this.waitWindow(s);
          continue;
        }
        n = Math.min(n, avail);
      }
      s.sendWindow -= n;
      this.sessionSendWindow -= n;
      const part = chunk.subarray(off, off + n);
      off += n;
      this.socket.cork();
      this.socket.write(dataFrameHeader(s.id, 0, n));
      // Writes complete in order: the last part's callback covers the whole chunk. A failed
      // write resolves too; the socket's 'close' tears the session down.
      if (off >= chunk.length) flushed = new Promise<void>((resolve) => this.socket.write(part, () => resolve()));
      else this.socket.write(part);
      process.nextTick(() => this.socket.uncork());
      if (this.socket.writableLength > SOCKET_BUFFER_LIMIT) await new Promise<void>((resolve) => this.drainWaiters.push(resolve));
    }
    if (flushed) await flushed;
  }

  private waitWindow(s: SpdyStream): Promise<void> {
    return new Promise((resolve) => {
      let done = false;
      const wake = () => {
        if (done) return;
        done = true;
        s.windowWaiter = undefined;
        resolve();
      };
      s.windowWaiter = wake;
      this.sessionWaiters.push(wake);
    });
  }

  private wakeDrain(): void {
    const w = this.drainWaiters;
    this.drainWaiters = [];
    for (const f of w) f();
  }

  private wakeWindows(): void {
    const w = this.sessionWaiters;
    this.sessionWaiters = [];
    for (const f of w) f();
  }

  /** @internal Called when a stream's consumer wants more data: grant window and resume reading. */
  consumed(s: SpdyStream): void {
    if (s.recvUnacked > 0 && !s.remoteClosed) {
      this.sendFrame({ type: 'WINDOW_UPDATE', streamId: s.id, delta: s.recvUnacked });
    }
    s.recvUnacked = 0;
    if (s.paused) {
      s.paused = false;
      if (![...this.streams.values()].some((o) => o.paused)) this.socket.resume();
    }
  }

  /** @internal */
  forget(s: SpdyStream): void {
    if (this.streams.get(s.id) === s) this.streams.delete(s.id);
    if (this.streams.size === 0) this.emit('idle');
  }

  private onData(chunk: Buffer): void {
    let frames: Frame[];
    try {
      frames = this.parser.push(chunk);
    } catch (err) {
      this.protocolError(err as Error);
      return;
    }
    for (const f of frames) {
      if (this.closed) return;
      this.handle(f);
    }
  }

  private protocolError(err: Error): void {
    this.debug(`spdy protocol error: ${err.message}`);
    if (!this.goAwaySent) {
      this.goAwaySent = true;
      this.sendFrame({ type: 'GOAWAY', lastGoodStreamId: this.lastPeerStreamId, status: GoAwayStatus.PROTOCOL_ERROR });
    }
    this.socket.end();
    this.emit('protocolError', err);
    setTimeout(() => this.destroy(), 1000).unref();
  }

  private handle(f: Frame): void {
    switch (f.type) {
      case 'SYN_STREAM': return this.onSynStream(f);
      case 'SYN_REPLY': {
        const s = this.streams.get(f.streamId);
        if (!s) return;
        s.replyHeaders = f.headers;
        s.emit('reply', f.headers);
        if (f.flags & FLAG_FIN) this.remoteFin(s);
        return;
      }
      case 'HEADERS': {
        const s = this.streams.get(f.streamId);
        if (!s) return;
        s.emit('headers', f.headers);
        if (f.flags & FLAG_FIN) this.remoteFin(s);
        return;
      }
      case 'DATA': return this.onDataFrame(f.streamId, f.flags, f.data);
      case 'RST_STREAM': {
        const s = this.streams.get(f.streamId);
        if (!s) return;
        s.resetStatus = f.status;
        s.localClosed = true;
        s.remoteClosed = true;
        this.forget(s);
        s.emit('reset', f.status);
        s.destroy();
        return;
      }
      case 'SETTINGS': {
        for (const e of f.entries) {
          if (e.id === Setting.INITIAL_WINDOW_SIZE) {
            if (e.value > MAX_WINDOW) return this.protocolError(new SpdyProtocolError(`initial window ${e.value}`));
            const delta = e.value - this.peerInitialWindow;
            this.peerInitialWindow = e.value;
            this.peerFlowControl = true;
            for (const s of this.streams.values()) s.sendWindow += delta;
            this.wakeWindows();
          }
        }
        return;
      }
      case 'PING': {
        const ours = (f.id % 2 === 0) === this.isServer;
        if (ours) {
          const done = this.pings.get(f.id);
          this.pings.delete(f.id);
          done?.(0);
        } else {
          this.sendFrame({ type: 'PING', id: f.id });
        }
        return;
      }
      case 'GOAWAY':
        this.goAwayReceived = true;
        this.emit('goaway', f.status);
        if (this.streams.size === 0) this.close();
        else this.once('idle', () => this.close());
        return;
      case 'WINDOW_UPDATE': {
        this.peerFlowControl = true;
        if (f.streamId === 0) {
          this.sessionSendWindow += f.delta;
          if (this.sessionSendWindow > MAX_WINDOW) return this.protocolError(new SpdyProtocolError('session window overflow'));
        } else {
          const s = this.streams.get(f.streamId);
          if (!s) return;
          s.sendWindow += f.delta;
          if (s.sendWindow > MAX_WINDOW) {
            s.reset(RstStatus.FLOW_CONTROL_ERROR);
            return;
          }
        }
        this.wakeWindows();
        return;
      }
    }
  }

  private onSynStream(f: Extract<Frame, { type: 'SYN_STREAM' }>): void {
    const idIsPeers = (f.streamId % 2 === 1) === this.isServer;
    if (!idIsPeers || f.streamId <= this.lastPeerStreamId) {
      this.sendFrame({ type: 'RST_STREAM', streamId: f.streamId, status: this.streams.has(f.streamId) ? RstStatus.STREAM_IN_USE : RstStatus.PROTOCOL_ERROR });
      return;
    }
    this.lastPeerStreamId = f.streamId;
    if (this.goAwaySent || this.goAwayReceived) {
      this.sendFrame({ type: 'RST_STREAM', streamId: f.streamId, status: RstStatus.REFUSED_STREAM });
      return;
    }
    const s = new SpdyStream(this, f.streamId, f.headers, this.peerInitialWindow, this.recvWindowSize, false);
    this.streams.set(f.streamId, s);
    if (f.flags & FLAG_UNIDIRECTIONAL) {
      s.replied = true;
      s.localClosed = true;
    }
    this.emit('stream', s);
    if (f.flags & FLAG_FIN) this.remoteFin(s);
  }

  private onDataFrame(streamId: number, flags: number, data: Buffer): void {
    const s = this.streams.get(streamId);
    if (!s) {
      if (streamId > this.lastPeerStreamId && ((streamId % 2 === 1) === this.isServer)) {
        this.sendFrame({ type: 'RST_STREAM', streamId, status: RstStatus.INVALID_STREAM });
      }
      return;
    }
    if (s.remoteClosed) {
      s.reset(RstStatus.STREAM_ALREADY_CLOSED);
      return;
    }
    if (data.length > 0) {
      s.recvUnacked += data.length;
      this.sessionRecvUnacked += data.length;
      if (this.sessionRecvUnacked >= this.recvWindowSize / 2) {
        this.sendFrame({ type: 'WINDOW_UPDATE', streamId: 0, delta: this.sessionRecvUnacked });
        this.sessionRecvUnacked = 0;
      }
      const more = s.push(data);
      if (!more) {
        s.paused = true;
        this.socket.pause();
      } else if (s.recvUnacked >= s.recvWindow / 2) {
        this.consumed(s);
      }
    }
    if (flags & FLAG_FIN) this.remoteFin(s);
  }

  private remoteFin(s: SpdyStream): void {
    if (s.remoteClosed) return;
    s.remoteClosed = true;
    s.push(null);
    if (s.localClosed) this.forget(s);
  }

  private teardown(): void {
    if (this.closed) return;
    this.closed = true;
    for (const s of [...this.streams.values()]) {
      s.remoteClosed = true;
      s.localClosed = true;
      s.resetStatus ??= RstStatus.CANCEL;
      s.destroy();
    }
    this.streams.clear();
    this.wakeDrain();
    this.wakeWindows();
    for (const done of this.pings.values()) done(-1);
    this.pings.clear();
    this.emit('close');
  }
}

export { SpdyHeaderError };
