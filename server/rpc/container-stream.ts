import type { StreamContainersRequest__Output } from '../../proto/gen/runtime/v1/StreamContainersRequest.js';
import type { StreamContainersResponse } from '../../proto/gen/runtime/v1/StreamContainersResponse.js';
import type { StreamHandler } from './types.js';

/** Containers per message: far below gRPC's 4 MiB default even with large labels. */
const CHUNK = 100;

/** Each message holds at least one container (the API's rule), so none means no message. */
export const streamContainers: StreamHandler<StreamContainersRequest__Output, StreamContainersResponse> = async (req, { rt, signal }, write) => {
  const items = rt.containers.list(req.filter);
  for (let i = 0; i < items.length && !signal.aborted; i += CHUNK) {
    await write({ containers: items.slice(i, i + CHUNK) });
  }
};
