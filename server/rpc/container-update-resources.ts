import type { UpdateContainerResourcesRequest__Output } from '../../proto/gen/runtime/v1/UpdateContainerResourcesRequest.js';
import type { UpdateContainerResourcesResponse } from '../../proto/gen/runtime/v1/UpdateContainerResourcesResponse.js';
import type { UnaryHandler } from './types.js';

export const updateContainerResources: UnaryHandler<UpdateContainerResourcesRequest__Output, UpdateContainerResourcesResponse> = async (req, { rt }) => {
  await rt.containers.update(req.container_id, req.linux);
  return {};
};
