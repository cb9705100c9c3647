/** The one place where domain errors become gRPC statuses. */
import { status as Status } from '@grpc/grpc-js';
import { RuntimeError, type ErrorKind } from '../runtime/errors.js';

const CODES: Record<ErrorKind, Status> = {
  NotFound: Status.NOT_FOUND,
  AlreadyExists: Status.ALREADY_EXISTS,
  InvalidArgument: Status.INVALID_ARGUMENT,
  FailedPrecondition: Status.FAILED_PRECONDITION,
  Unavailable: Status.UNAVAILABLE,
  DeadlineExceeded: Status.DEADLINE_EXCEEDED,
  Unauthenticated: Status.UNAUTHENTICATED,
  PermissionDenied: Status.PERMISSION_DENIED,
  ResourceExhausted: Status.RESOURCE_EXHAUSTED,
  Unimplemented: Status.UNIMPLEMENTED,
  Cancelled: Status.CANCELLED,
  Internal: Status.INTERNAL,
};

export interface StatusError {
  code: Status;
  details: string;
}

/** Domain errors keep their message; anything else is INTERNAL (an unexpected bug or host failure). */
export function toStatus(err: unknown): StatusError {
  if (err instanceof RuntimeError) return { code: CODES[err.kind], details: err.message };
  if (err && typeof err === 'object' && 'name' in err && (err as Error).name === 'AbortError') {
    return { code: Status.CANCELLED, details: (err as Error).message || 'operation cancelled' };
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: Status.INTERNAL, details: message };
}

export function codeName(code: Status): string {
  return Status[code] ?? String(code);
}
