import type { StreamPodSandboxMetricsRequest__Output } from '../../proto/gen/runtime/v1/StreamPodSandboxMetricsRequest.js';
import type { StreamPodSandboxMetricsResponse } from '../../proto/gen/runtime/v1/StreamPodSandboxMetricsResponse.js';
import type { StreamHandler } from './types.js';

/** Pods per message: each carries ~40 samples per container. */
const CHUNK = 20;

export const streamPodSandboxMetrics: StreamHandler<StreamPodSandboxMetricsRequest__Output, StreamPodSandboxMetricsResponse> = async (_req, { rt, signal }, write) => {
  const all = await rt.stats.listPodSandboxMetrics();
  for (let i = 0; i < all.length && !signal.aborted; i += CHUNK) {
    await write({ pod_sandbox_metrics: all.slice(i, i + CHUNK) });
  }
};
