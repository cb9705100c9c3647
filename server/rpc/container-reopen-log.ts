import type { ReopenContainerLogRequest__Output } from '../../proto/gen/runtime/v1/ReopenContainerLogRequest.js';
import type { ReopenContainerLogResponse } from '../../proto/gen/runtime/v1/ReopenContainerLogResponse.js';
import type { UnaryHandler } from './types.js';

/** After the kubelet renamed the log file: conmon opens a new one at the same path. */
export const reopenContainerLog: UnaryHandler<ReopenContainerLogRequest__Output, ReopenContainerLogResponse> = async (req, { rt }) => {
  await rt.containers.reopenLog(req.container_id);
  return {};
};
