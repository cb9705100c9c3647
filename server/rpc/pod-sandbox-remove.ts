import type { RemovePodSandboxRequest__Output } from '../../proto/gen/runtime/v1/RemovePodSandboxRequest.js';
import type { RemovePodSandboxResponse } from '../../proto/gen/runtime/v1/RemovePodSandboxResponse.js';
import type { UnaryHandler } from './types.js';

/** Idempotent: an unknown sandbox succeeds (the kubelet retries removals). */
export const removePodSandbox: UnaryHandler<RemovePodSandboxRequest__Output, RemovePodSandboxResponse> = async (req, { rt }) => {
  await rt.sandboxes.remove(req.pod_sandbox_id);
  return {};
};
