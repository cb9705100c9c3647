import type { ExecRequest__Output } from '../../proto/gen/runtime/v1/ExecRequest.js';
import type { ExecResponse } from '../../proto/gen/runtime/v1/ExecResponse.js';
import { FailedPreconditionError, InvalidArgumentError } from '../../runtime/errors.js';
import { ensureStreamingServer } from '../streaming/server.js';
import type { RpcContext, UnaryHandler } from './types.js';

export interface StdioFlags { stdin: boolean; stdout: boolean; stderr: boolean; tty: boolean }

/** The checks Exec and Attach share; returns the container's full id. */
export function validateStreamRequest(what: string, containerId: string, f: StdioFlags, ctx: RpcContext): string {
  if (!containerId) throw new InvalidArgumentError(`${what}: container_id must be set`);
  if (!f.stdin && !f.stdout && !f.stderr) throw new InvalidArgumentError(`${what}: one of stdin, stdout and stderr must be set`);
  // A terminal merges stderr into stdout, so the API forbids asking for both.
  if (f.tty && f.stderr) throw new InvalidArgumentError(`${what}: tty and stderr cannot both be true`);
  const c = ctx.rt.containers.get(containerId);
  if (c.state !== 'RUNNING') throw new FailedPreconditionError(`${what}: container ${c.id} is ${c.state}, not running`);
  return c.id;
}

/** Validates and returns the URL of the streaming server where the client runs the command. */
export const exec: UnaryHandler<ExecRequest__Output, ExecResponse> = async (req, ctx) => {
  if (!req.cmd?.length || req.cmd.every((a) => a === '')) throw new InvalidArgumentError('exec: cmd must not be empty');
  if (req.cmd.some((a) => a.includes('\0'))) throw new InvalidArgumentError('exec: cmd contains NUL');
  const opts = { stdin: !!req.stdin, stdout: !!req.stdout, stderr: !!req.stderr, tty: !!req.tty };
  const id = validateStreamRequest('exec', req.container_id, opts, ctx);
  return { url: (await ensureStreamingServer(ctx.rt)).prepare({ kind: 'exec', containerId: id, cmd: [...req.cmd], opts }) };
};
