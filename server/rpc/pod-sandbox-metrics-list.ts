import type { ListPodSandboxMetricsRequest__Output } from '../../proto/gen/runtime/v1/ListPodSandboxMetricsRequest.js';
import type { ListPodSandboxMetricsResponse } from '../../proto/gen/runtime/v1/ListPodSandboxMetricsResponse.js';
import type { UnaryHandler } from './types.js';

export const listPodSandboxMetrics: UnaryHandler<ListPodSandboxMetricsRequest__Output, ListPodSandboxMetricsResponse> = async (_req, { rt }) => {
  return { pod_metrics: await rt.stats.listPodSandboxMetrics() };
};
