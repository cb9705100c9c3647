import type { ContainerStatusRequest__Output } from '../../proto/gen/runtime/v1/ContainerStatusRequest.js';
import type { ContainerStatusResponse } from '../../proto/gen/runtime/v1/ContainerStatusResponse.js';
import type { UnaryHandler } from './types.js';

export const containerStatus: UnaryHandler<ContainerStatusRequest__Output, ContainerStatusResponse> = async (req, { rt }) => {
  const { status, info } = rt.containers.status(req.container_id, req.verbose);
  return { status, info };
};
