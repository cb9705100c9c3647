/** RPC handlers of this area, by RPC name. */
import type { HandlerTable } from './types.js';
import { containerStats } from './container-stats.js';
import { listContainerStats } from './container-stats-list.js';
import { streamContainerStats } from './container-stats-stream.js';
import { podSandboxStats } from './pod-sandbox-stats.js';
import { listPodSandboxStats } from './pod-sandbox-stats-list.js';
import { streamPodSandboxStats } from './pod-sandbox-stats-stream.js';
import { getContainerEvents } from './container-events.js';
import { listMetricDescriptors } from './metric-descriptors-list.js';
import { listPodSandboxMetrics } from './pod-sandbox-metrics-list.js';
import { streamPodSandboxMetrics } from './pod-sandbox-metrics-stream.js';

export const statsHandlers: HandlerTable = {
  unary: {
    ContainerStats: containerStats,
    ListContainerStats: listContainerStats,
    PodSandboxStats: podSandboxStats,
    ListPodSandboxStats: listPodSandboxStats,
    ListMetricDescriptors: listMetricDescriptors,
    ListPodSandboxMetrics: listPodSandboxMetrics,
  },
  stream: {
    StreamContainerStats: streamContainerStats,
    StreamPodSandboxStats: streamPodSandboxStats,
    GetContainerEvents: getContainerEvents,
    StreamPodSandboxMetrics: streamPodSandboxMetrics,
  },
};
