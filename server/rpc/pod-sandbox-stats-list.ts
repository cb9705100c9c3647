import type { ListPodSandboxStatsRequest__Output } from '../../proto/gen/runtime/v1/ListPodSandboxStatsRequest.js';
import type { ListPodSandboxStatsResponse } from '../../proto/gen/runtime/v1/ListPodSandboxStatsResponse.js';
import type { UnaryHandler } from './types.js';

export const listPodSandboxStats: UnaryHandler<ListPodSandboxStatsRequest__Output, ListPodSandboxStatsResponse> = async (req, { rt }) => {
  return { stats: await rt.stats.listPodSandboxStats(req.filter) };
};
