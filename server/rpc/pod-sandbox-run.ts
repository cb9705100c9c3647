import type { RunPodSandboxRequest__Output } from '../../proto/gen/runtime/v1/RunPodSandboxRequest.js';
import type { RunPodSandboxResponse } from '../../proto/gen/runtime/v1/RunPodSandboxResponse.js';
import type { UnaryHandler } from './types.js';

/** Not cancelled with the call: a kubelet retry after a timeout joins the running create. */
export const runPodSandbox: UnaryHandler<RunPodSandboxRequest__Output, RunPodSandboxResponse> = async (req, { rt }) => ({
  pod_sandbox_id: await rt.sandboxes.run(req.config, req.runtime_handler),
});
