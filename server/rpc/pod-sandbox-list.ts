import type { ListPodSandboxRequest__Output } from '../../proto/gen/runtime/v1/ListPodSandboxRequest.js';
import type { ListPodSandboxResponse } from '../../proto/gen/runtime/v1/ListPodSandboxResponse.js';
import type { UnaryHandler } from './types.js';

export const listPodSandbox: UnaryHandler<ListPodSandboxRequest__Output, ListPodSandboxResponse> = async (req, { rt }) => ({
  items: rt.sandboxes.list(req.filter),
});
