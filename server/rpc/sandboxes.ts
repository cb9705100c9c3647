/** RPC handlers of this area, by RPC name. */
import type { HandlerTable } from './types.js';
import { runPodSandbox } from './pod-sandbox-run.js';
import { stopPodSandbox } from './pod-sandbox-stop.js';
import { removePodSandbox } from './pod-sandbox-remove.js';
import { podSandboxStatus } from './pod-sandbox-status.js';
import { listPodSandbox } from './pod-sandbox-list.js';
import { streamPodSandboxes } from './pod-sandbox-stream.js';
import { updatePodSandboxResources } from './pod-sandbox-update-resources.js';

export const sandboxesHandlers: HandlerTable = {
  unary: {
    RunPodSandbox: runPodSandbox,
    StopPodSandbox: stopPodSandbox,
    RemovePodSandbox: removePodSandbox,
    PodSandboxStatus: podSandboxStatus,
    ListPodSandbox: listPodSandbox,
    UpdatePodSandboxResources: updatePodSandboxResources,
  },
  stream: {
    StreamPodSandboxes: streamPodSandboxes,
  },
};
