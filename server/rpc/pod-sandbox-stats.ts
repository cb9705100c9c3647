import type { PodSandboxStatsRequest__Output } from '../../proto/gen/runtime/v1/PodSandboxStatsRequest.js';
import type { PodSandboxStatsResponse } from '../../proto/gen/runtime/v1/PodSandboxStatsResponse.js';
import type { UnaryHandler } from './types.js';

export const podSandboxStats: UnaryHandler<PodSandboxStatsRequest__Output, PodSandboxStatsResponse> = async (req, { rt }) => {
  return { stats: await rt.stats.podSandboxStats(req.pod_sandbox_id) };
};
