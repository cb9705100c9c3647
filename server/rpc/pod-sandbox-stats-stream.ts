import type { StreamPodSandboxStatsRequest__Output } from '../../proto/gen/runtime/v1/StreamPodSandboxStatsRequest.js';
import type { StreamPodSandboxStatsResponse } from '../../proto/gen/runtime/v1/StreamPodSandboxStatsResponse.js';
import type { StreamHandler } from './types.js';

/** Pods per message: each carries its containers' stats too. */
const CHUNK = 20;

export const streamPodSandboxStats: StreamHandler<StreamPodSandboxStatsRequest__Output, StreamPodSandboxStatsResponse> = async (req, { rt, signal }, write) => {
  const all = await rt.stats.listPodSandboxStats(req.filter);
  for (let i = 0; i < all.length && !signal.aborted; i += CHUNK) {
    await write({ pod_sandbox_stats: all.slice(i, i + CHUNK) });
  }
};
