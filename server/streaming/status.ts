/**
 * What goes on the error stream when a session ends. v4 and later carry a JSON metav1.Status
 * (client-go decodes exit codes from it); older versions carry a plain message and nothing at
 * all on success.
 */

export interface Status {
  metadata: Record<string, never>;
  status: 'Success' | 'Failure';
  message?: string;
  reason?: string;
  details?: { causes: Array<{ reason?: string; message: string }> };
  code?: number;
}

export function successStatus(): Status {
  return { metadata: {}, status: 'Success' };
}

export function exitCodeStatus(code: number): Status {
  return {
    metadata: {},
    status: 'Failure',
    message: `command terminated with non-zero exit code: error executing command [exit code ${code}]`,
    reason: 'NonZeroExitCode',
    details: { causes: [{ reason: 'ExitCode', message: String(code) }] },
  };
}

export function internalErrorStatus(message: string): Status {
  return {
    metadata: {},
    status: 'Failure',
    message: `Internal error occurred: ${message}`,
    reason: 'InternalError',
    details: { causes: [{ message }] },
    code: 500,
  };
}

/** Bytes for the error stream, or undefined when nothing is to be written (pre-v4 success). */
export function encodeStatus(status: Status, version: number): Buffer | undefined {
  if (version >= 4) return Buffer.from(JSON.stringify(status));
  if (status.status === 'Success') return undefined;
  return Buffer.from(status.message ?? 'unknown error');
}
