import type { AttachRequest__Output } from '../../proto/gen/runtime/v1/AttachRequest.js';
import type { AttachResponse } from '../../proto/gen/runtime/v1/AttachResponse.js';
import { ensureStreamingServer } from '../streaming/server.js';
import { validateStreamRequest } from './exec.js';
import type { UnaryHandler } from './types.js';

/** Validates and returns the URL where the client joins the container's stdio. */
export const attach: UnaryHandler<AttachRequest__Output, AttachResponse> = async (req, ctx) => {
  const opts = { stdin: !!req.stdin, stdout: !!req.stdout, stderr: !!req.stderr, tty: !!req.tty };
  const id = validateStreamRequest('attach', req.container_id, opts, ctx);
  return { url: (await ensureStreamingServer(ctx.rt)).prepare({ kind: 'attach', containerId: id, opts }) };
};
