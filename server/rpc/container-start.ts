import type { StartContainerRequest__Output } from '../../proto/gen/runtime/v1/StartContainerRequest.js';
import type { StartContainerResponse } from '../../proto/gen/runtime/v1/StartContainerResponse.js';
import type { UnaryHandler } from './types.js';

export const startContainer: UnaryHandler<StartContainerRequest__Output, StartContainerResponse> = async (req, { rt }) => {
  await rt.containers.start(req.container_id);
  return {};
};
