import type { ContainerStatus } from '../../proto/gen/runtime/v1/ContainerStatus.js';
import type { PodSandboxStatusRequest__Output } from '../../proto/gen/runtime/v1/PodSandboxStatusRequest.js';
import type { PodSandboxStatusResponse } from '../../proto/gen/runtime/v1/PodSandboxStatusResponse.js';
import { podContainerStatuses } from '../../runtime/index.js';
import type { UnaryHandler } from './types.js';

/**
 * With the pod's containers' statuses, as CRI-O and containerd answer: the kubelet's evented
 * PLEG takes them from here instead of listing the containers and asking for each.
 */
export const podSandboxStatus: UnaryHandler<PodSandboxStatusRequest__Output, PodSandboxStatusResponse> = async (req, { rt }) => {
  const res = rt.sandboxes.status(req.pod_sandbox_id, req.verbose);
  return { ...res, containers_statuses: podContainerStatuses(res.status!.id!, rt.containers) as ContainerStatus[] };
};
