import type { StopPodSandboxRequest__Output } from '../../proto/gen/runtime/v1/StopPodSandboxRequest.js';
import type { StopPodSandboxResponse } from '../../proto/gen/runtime/v1/StopPodSandboxResponse.js';
import type { UnaryHandler } from './types.js';

/** Idempotent: an unknown or already stopped sandbox succeeds. */
export const stopPodSandbox: UnaryHandler<StopPodSandboxRequest__Output, StopPodSandboxResponse> = async (req, { rt }) => {
  await rt.sandboxes.stop(req.pod_sandbox_id);
  return {};
};
