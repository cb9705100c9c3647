import { InvalidArgumentError } from '../../runtime/errors.js';
import type { ExecSyncRequest__Output } from '../../proto/gen/runtime/v1/ExecSyncRequest.js';
import type { ExecSyncResponse } from '../../proto/gen/runtime/v1/ExecSyncResponse.js';
import type { UnaryHandler } from './types.js';

/** A command outliving `timeout` is killed and the call fails with DEADLINE_EXCEEDED (a probe timeout for the kubelet). */
export const execSync: UnaryHandler<ExecSyncRequest__Output, ExecSyncResponse> = async (req, { rt, signal }) => {
  // As Exec: an empty command or one exec cannot carry is the caller's mistake.
  if (!req.cmd?.length || req.cmd.every((a) => a === '')) throw new InvalidArgumentError('exec sync: cmd must not be empty');
  if (req.cmd.some((a) => a.includes('\0'))) throw new InvalidArgumentError('exec sync: cmd contains NUL');
  const r = await rt.containers.execSync(req.container_id, req.cmd, Number(req.timeout ?? 0), signal);
  return { stdout: r.stdout, stderr: r.stderr, exit_code: r.exitCode };
};
