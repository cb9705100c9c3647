import type { StreamContainerStatsRequest__Output } from '../../proto/gen/runtime/v1/StreamContainerStatsRequest.js';
import type { StreamContainerStatsResponse } from '../../proto/gen/runtime/v1/StreamContainerStatsResponse.js';
import type { StreamHandler } from './types.js';

/** Containers per message: well under gRPC's 4 MiB default with large label sets. */
const CHUNK = 100;

export const streamContainerStats: StreamHandler<StreamContainerStatsRequest__Output, StreamContainerStatsResponse> = async (req, { rt, signal }, write) => {
  const all = await rt.stats.listContainerStats(req.filter);
  for (let i = 0; i < all.length && !signal.aborted; i += CHUNK) {
    await write({ container_stats: all.slice(i, i + CHUNK) });
  }
};
