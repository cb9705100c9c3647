import type { StreamPodSandboxesRequest__Output } from '../../proto/gen/runtime/v1/StreamPodSandboxesRequest.js';
import type { StreamPodSandboxesResponse } from '../../proto/gen/runtime/v1/StreamPodSandboxesResponse.js';
import type { StreamHandler } from './types.js';

/** Sandboxes per message: far below gRPC's 4 MiB default even with large labels. */
const CHUNK = 100;

/** Each message holds at least one sandbox (the API's rule), so no pods means no message. */
export const streamPodSandboxes: StreamHandler<StreamPodSandboxesRequest__Output, StreamPodSandboxesResponse> = async (req, { rt, signal }, write) => {
  const items = rt.sandboxes.list(req.filter);
  for (let i = 0; i < items.length && !signal.aborted; i += CHUNK) {
    await write({ pod_sandboxes: items.slice(i, i + CHUNK) });
  }
};
