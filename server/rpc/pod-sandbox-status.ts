import type { PodSandboxStatusRequest__Output } from '../../proto/gen/runtime/v1/PodSandboxStatusRequest.js';
import type { PodSandboxStatusResponse } from '../../proto/gen/runtime/v1/PodSandboxStatusResponse.js';
import type { UnaryHandler } from './types.js';

export const podSandboxStatus: UnaryHandler<PodSandboxStatusRequest__Output, PodSandboxStatusResponse> = async (req, { rt }) =>
  rt.sandboxes.status(req.pod_sandbox_id, req.verbose);
