import type { PortForwardRequest__Output } from '../../proto/gen/runtime/v1/PortForwardRequest.js';
import type { PortForwardResponse } from '../../proto/gen/runtime/v1/PortForwardResponse.js';
import { InvalidArgumentError } from '../../runtime/errors.js';
import { ensureStreamingServer } from '../streaming/server.js';
import type { UnaryHandler } from './types.js';

/**
 * Validates and returns the URL for port-forward. The ports listed here are advisory: clients
 * name the port of every connection in its stream headers.
 */
export const portForward: UnaryHandler<PortForwardRequest__Output, PortForwardResponse> = async (req, ctx) => {
  if (!req.pod_sandbox_id) throw new InvalidArgumentError('port-forward: pod_sandbox_id must be set');
  const ports = (req.port ?? []).map(Number);
  const bad = ports.find((p) => !Number.isInteger(p) || p < 1 || p > 65535);
  if (bad !== undefined) throw new InvalidArgumentError(`port-forward: port ${bad} is not in 1..65535`);
  const sb = ctx.rt.sandboxes.get(req.pod_sandbox_id);
  return { url: (await ensureStreamingServer(ctx.rt)).prepare({ kind: 'portforward', podSandboxId: sb.id, ports }) };
};
