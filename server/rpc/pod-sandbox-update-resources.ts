import type { UpdatePodSandboxResourcesRequest__Output } from '../../proto/gen/runtime/v1/UpdatePodSandboxResourcesRequest.js';
import type { UpdatePodSandboxResourcesResponse } from '../../proto/gen/runtime/v1/UpdatePodSandboxResourcesResponse.js';
import type { UnaryHandler } from './types.js';

/** Best effort per the API: the kubelet has already resized the pod cgroup when it owns it. */
export const updatePodSandboxResources: UnaryHandler<UpdatePodSandboxResourcesRequest__Output, UpdatePodSandboxResourcesResponse> = async (req, { rt }) => {
  await rt.sandboxes.updateResources(req.pod_sandbox_id, req.overhead, req.resources);
  return {};
};
