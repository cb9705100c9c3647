import type { ContainerStatsRequest__Output } from '../../proto/gen/runtime/v1/ContainerStatsRequest.js';
import type { ContainerStatsResponse } from '../../proto/gen/runtime/v1/ContainerStatsResponse.js';
import type { UnaryHandler } from './types.js';

export const containerStats: UnaryHandler<ContainerStatsRequest__Output, ContainerStatsResponse> = async (req, { rt }) => {
  return { stats: await rt.stats.containerStats(req.container_id) };
};
