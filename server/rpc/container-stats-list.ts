import type { ListContainerStatsRequest__Output } from '../../proto/gen/runtime/v1/ListContainerStatsRequest.js';
import type { ListContainerStatsResponse } from '../../proto/gen/runtime/v1/ListContainerStatsResponse.js';
import type { UnaryHandler } from './types.js';

export const listContainerStats: UnaryHandler<ListContainerStatsRequest__Output, ListContainerStatsResponse> = async (req, { rt }) => {
  return { stats: await rt.stats.listContainerStats(req.filter) };
};
