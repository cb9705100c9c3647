/**
 * What every RPC handler sees. Handlers live one per file in server/rpc/<noun>-<verb>.ts
 * and are listed in the area tables (images.ts, sandboxes.ts, containers.ts, streaming.ts,
 * stats.ts) that server/rpc/table.ts merges. An RPC missing from every table answers
 * UNIMPLEMENTED naming itself.
 */
import type { Runtime } from '../../runtime/index.js';

export interface RpcContext {
  readonly rt: Runtime;
  /** Aborted when the client cancels or the deadline passes. */
  readonly signal: AbortSignal;
  /** Absolute deadline in ms since the epoch, when the client set one. */
  readonly deadline?: number;
}

export type UnaryHandler<Req = any, Res = any> = (req: Req, ctx: RpcContext) => Promise<Res>;
/** Server-streaming: call write() per message (it resolves when the message is flushed); return to end with OK. */
export type StreamHandler<Req = any, Res = any> = (req: Req, ctx: RpcContext, write: (res: Res) => Promise<void>) => Promise<void>;

export interface HandlerTable {
  unary: Record<string, UnaryHandler>;
  stream: Record<string, StreamHandler>;
}
