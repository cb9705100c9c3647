import type { ExecSyncRequest__Output } from '../../proto/gen/runtime/v1/ExecSyncRequest.js';
import type { ExecSyncResponse } from '../../proto/gen/runtime/v1/ExecSyncResponse.js';
import type { UnaryHandler } from './types.js';

/** A command outliving `timeout` is killed and the call fails with DEADLINE_EXCEEDED (a probe timeout for the kubelet). */
export const execSync: UnaryHandler<ExecSyncRequest__Output, ExecSyncResponse> = async (req, { rt, signal }) => {
  const r = await rt.containers.execSync(req.container_id, req.cmd, Number(req.timeout ?? 0), signal);
  return { stdout: r.stdout, stderr: r.stderr, exit_code: r.exitCode };
};
