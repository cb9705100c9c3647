/** The one place where domain errors become gRPC statuses. */
import { status as Status } from '@grpc/grpc-js';
import { statfsSync } from 'node:fs';
import { RuntimeError, isNoSpace, type ErrorKind } from '../runtime/errors.js';

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

/**
 * Domain errors keep their message; a full file system (ENOSPC, EDQUOT, anywhere in the cause
 * chain) is RESOURCE_EXHAUSTED naming which of `dirs` (the daemon's root and state dirs) has no
 * space left; anything else is INTERNAL (an unexpected bug or host failure).
 */
export function toStatus(err: unknown, dirs: readonly string[] = []): StatusError {
  if (noSpaceInChain(err)) {
    const message = err instanceof Error ? err.message : String(err);
    const full = dirs.filter(isFull);
    return { code: Status.RESOURCE_EXHAUSTED, details: full.length ? `${message} (no space left in ${full.join(' and ')})` : message };
  }
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

function noSpaceInChain(err: unknown): boolean {
  for (let e = err, depth = 0; e && depth < 8; e = (e as { cause?: unknown }).cause, depth++) {
    if (isNoSpace(e)) return true;
  }
  return false;
}

/** Less than 1 MiB, or no inode, left. */
function isFull(dir: string): boolean {
  try {
    const st = statfsSync(dir);
    return st.bavail * st.bsize < 1 << 20 || (st.files > 0 && st.ffree === 0);
  } catch {
    return false;
  }
}
