import type { RemoveContainerRequest__Output } from '../../proto/gen/runtime/v1/RemoveContainerRequest.js';
import type { RemoveContainerResponse } from '../../proto/gen/runtime/v1/RemoveContainerResponse.js';
import type { UnaryHandler } from './types.js';

/** Idempotent: an unknown id succeeds. */
export const removeContainer: UnaryHandler<RemoveContainerRequest__Output, RemoveContainerResponse> = async (req, { rt }) => {
  await rt.containers.remove(req.container_id);
  return {};
};
