/**
 * Turns async handlers into grpc-js handlers. Each call is answered exactly once
 * (a settled flag guards the callback: a late rejection after a response is only logged),
 * logged at debug with method, duration and status code, and gets an AbortSignal that
 * fires when the client cancels or its deadline passes.
 */
import type * as grpc from '@grpc/grpc-js';
import { status as Status } from '@grpc/grpc-js';
import { InvalidArgumentError } from '../runtime/errors.js';
import type { Runtime } from '../runtime/index.js';
import { MAX_TIMER_MS } from '../runtime/util/timers.js';
import type { RpcContext, StreamHandler, UnaryHandler } from './rpc/types.js';
import { codeName, toStatus } from './status.js';

/** A request whose bytes are not the method's message (server/grpc.ts): answered INVALID_ARGUMENT. */
export class MalformedRequest {
  constructor(readonly reason: string) {}
}

/** Tracks in-flight calls so that shutdown can wait for them. */
export class InFlight {
  private count = 0;
  private waiters: Array<() => void> = [];
  enter(): void { this.count++; }
  leave(): void {
    this.count--;
    if (this.count === 0) for (const w of this.waiters.splice(0)) w();
  }
  get size(): number { return this.count; }
  /** Resolves when no call is in flight or after ms, whichever comes first. */
  drain(ms: number): Promise<boolean> {
    if (this.count === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const t = setTimeout(() => resolve(false), ms);
      this.waiters.push(() => { clearTimeout(t); resolve(true); });
    });
  }
}

/** The dirs a full file system is reported against (unit tests pass a bare runtime without a config). */
function dataDirs(rt: Runtime): string[] {
  return rt.config ? [rt.config.root_dir, rt.config.state_dir] : [];
}

function record(rt: Runtime, method: string, code: Status, ms: number): void {
  if (!rt.metrics) return; // unit tests pass a bare runtime
  rt.metrics.rpcRequests.inc({ method, code: codeName(code) });
  rt.metrics.rpcDuration.observe({ method }, ms / 1000);
}

function contextFor(rt: Runtime, call: grpc.ServerUnaryCall<unknown, unknown> | grpc.ServerWritableStream<unknown, unknown>): { ctx: RpcContext; dispose: () => void } {
  const ac = new AbortController();
  const raw = call.getDeadline();
  const deadline = raw instanceof Date ? raw.getTime() : Number.isFinite(raw) ? Number(raw) : undefined;
  let timer: NodeJS.Timeout | undefined;
  if (deadline !== undefined) {
    const ms = deadline - Date.now();
    // A deadline weeks away is no deadline for a timer (it would overflow and fire at once).
    if (ms <= MAX_TIMER_MS) timer = setTimeout(() => ac.abort(new Error('deadline exceeded')), Math.max(0, ms));
  }
  const onCancel = () => ac.abort(new Error('cancelled by the client'));
  call.on('cancelled', onCancel);
  return {
    ctx: { rt, signal: ac.signal, deadline },
    dispose: () => {
      if (timer) clearTimeout(timer);
      call.removeListener('cancelled', onCancel);
    },
  };
}

export function unary(method: string, handler: UnaryHandler, rt: Runtime, inflight: InFlight): grpc.handleUnaryCall<unknown, unknown> {
  return (call, callback) => {
    const start = process.hrtime.bigint();
    inflight.enter();
    const { ctx, dispose } = contextFor(rt, call);
    let settled = false;
    const finish = (code: Status, err?: { code: Status; details: string }, res?: unknown) => {
      if (settled) {
        rt.logger.warn(`rpc ${method}: handler settled twice; ignored`, { code: codeName(code) });
        return;
      }
      settled = true;
      dispose();
      inflight.leave();
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      record(rt, method, code, ms);
      rt.logger.debug(`rpc ${method}`, { ms: Math.round(ms * 100) / 100, code: codeName(code), ...(err ? { error: err.details } : {}) });
      if (err) callback({ code: err.code, details: err.details });
      else callback(null, res);
    };
    let p: Promise<unknown>;
    try {
      p = call.request instanceof MalformedRequest
        ? Promise.reject(new InvalidArgumentError(`${method}: the request is not a ${method}Request message: ${call.request.reason}`))
        : handler(call.request, ctx);
    } catch (e) {
      p = Promise.reject(e);
    }
    p.then(
      (res) => finish(Status.OK, undefined, res),
      (e) => {
        const st = toStatus(e, dataDirs(rt));
        if (st.code === Status.INTERNAL) rt.logger.error(`rpc ${method} failed: ${st.details}`, { stack: e instanceof Error ? e.stack : undefined });
        finish(st.code, st);
      },
    );
  };
}

export function serverStream(method: string, handler: StreamHandler, rt: Runtime, inflight: InFlight): grpc.handleServerStreamingCall<unknown, unknown> {
  return (call) => {
    const start = process.hrtime.bigint();
    inflight.enter();
    const { ctx, dispose } = contextFor(rt, call);
    let settled = false;
    const write = (msg: unknown) =>
      new Promise<void>((resolve, reject) => {
        if (ctx.signal.aborted) return reject(ctx.signal.reason);
        // write() returns false when the buffer is full; wait for drain so a slow client applies backpressure.
        if (call.write(msg)) resolve();
        else call.once('drain', () => resolve());
      });
    const finish = (code: Status, details?: string) => {
      if (settled) return;
      settled = true;
      dispose();
      inflight.leave();
      const ms = Number(process.hrtime.bigint() - start) / 1e6;
      record(rt, method, code, ms);
      rt.logger.debug(`rpc ${method}`, { ms: Math.round(ms * 100) / 100, code: codeName(code), ...(details ? { error: details } : {}) });
      if (code === Status.OK) call.end();
      else call.emit('error', { code, details });
    };
    const run = call.request instanceof MalformedRequest
      ? Promise.reject(new InvalidArgumentError(`${method}: the request is not a ${method}Request message: ${call.request.reason}`))
      : handler(call.request, ctx, write);
    run.then(
      () => finish(Status.OK),
      (e) => {
        const st = toStatus(e, dataDirs(rt));
        finish(st.code, st.details);
      },
    );
  };
}

export function unimplemented(method: string, rt: Runtime): grpc.handleUnaryCall<unknown, unknown> {
  return (_call, callback) => {
    record(rt, method, Status.UNIMPLEMENTED, 0);
    rt.logger.debug(`rpc ${method}`, { code: 'UNIMPLEMENTED' });
    callback({ code: Status.UNIMPLEMENTED, details: `${method} is not implemented by corral yet` });
  };
}
