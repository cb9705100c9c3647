import type { CreateContainerRequest__Output } from '../../proto/gen/runtime/v1/CreateContainerRequest.js';
import type { CreateContainerResponse } from '../../proto/gen/runtime/v1/CreateContainerResponse.js';
import type { UnaryHandler } from './types.js';

/** A retry of a create still in flight gets the same id; a taken name is AlreadyExists. */
export const createContainer: UnaryHandler<CreateContainerRequest__Output, CreateContainerResponse> = async (req, { rt, signal }) => {
  const id = await rt.containers.create(req, signal);
  return { container_id: id };
};
