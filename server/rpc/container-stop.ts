import type { StopContainerRequest__Output } from '../../proto/gen/runtime/v1/StopContainerRequest.js';
import type { StopContainerResponse } from '../../proto/gen/runtime/v1/StopContainerResponse.js';
import type { UnaryHandler } from './types.js';

/** Idempotent; timeout 0 kills at once. */
export const stopContainer: UnaryHandler<StopContainerRequest__Output, StopContainerResponse> = async (req, { rt, signal }) => {
  await rt.containers.stop(req.container_id, Math.max(0, Number(req.timeout ?? 0)), signal);
  return {};
};
