import type { ListContainersRequest__Output } from '../../proto/gen/runtime/v1/ListContainersRequest.js';
import type { ListContainersResponse } from '../../proto/gen/runtime/v1/ListContainersResponse.js';
import type { UnaryHandler } from './types.js';

export const listContainers: UnaryHandler<ListContainersRequest__Output, ListContainersResponse> = async (req, { rt }) => ({
  containers: rt.containers.list(req.filter),
});
