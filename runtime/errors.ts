/**
 * Domain errors of the runtime. server/ maps each class to one gRPC status code
 * (server/status.ts); the runtime never imports gRPC. Messages say what was wrong
 * and name the id, field or reference involved.
 */

export type ErrorKind =
  | 'NotFound'
  | 'AlreadyExists'
  | 'InvalidArgument'
  | 'FailedPrecondition'
  | 'Unavailable'
  | 'DeadlineExceeded'
  | 'Unauthenticated'
  | 'PermissionDenied'
  | 'ResourceExhausted'
  | 'Unimplemented'
  | 'Cancelled'
  | 'Internal';

export class RuntimeError extends Error {
  readonly kind: ErrorKind;
  constructor(kind: ErrorKind, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.kind = kind;
    this.name = `${kind}Error`;
  }
}

export class NotFoundError extends RuntimeError {
  constructor(message: string, options?: { cause?: unknown }) { super('NotFound', message, options); }
}
export class AlreadyExistsError extends RuntimeError {
  constructor(message: string, options?: { cause?: unknown }) { super('AlreadyExists', message, options); }
}
export class InvalidArgumentError extends RuntimeError {
  constructor(message: string, options?: { cause?: unknown }) { super('InvalidArgument', message, options); }
}
export class FailedPreconditionError extends RuntimeError {
  constructor(message: string, options?: { cause?: unknown }) { super('FailedPrecondition', message, options); }
}
export class UnavailableError extends RuntimeError {
  constructor(message: string, options?: { cause?: unknown }) { super('Unavailable', message, options); }
}
export class DeadlineExceededError extends RuntimeError {
  constructor(message: string, options?: { cause?: unknown }) { super('DeadlineExceeded', message, options); }
}
export class UnauthenticatedError extends RuntimeError {
  constructor(message: string, options?: { cause?: unknown }) { super('Unauthenticated', message, options); }
}
export class PermissionDeniedError extends RuntimeError {
  constructor(message: string, options?: { cause?: unknown }) { super('PermissionDenied', message, options); }
}
export class ResourceExhaustedError extends RuntimeError {
  constructor(message: string, options?: { cause?: unknown }) { super('ResourceExhausted', message, options); }
}
export class UnimplementedError extends RuntimeError {
  constructor(message: string, options?: { cause?: unknown }) { super('Unimplemented', message, options); }
}
export class CancelledError extends RuntimeError {
  constructor(message: string, options?: { cause?: unknown }) { super('Cancelled', message, options); }
}
export class InternalError extends RuntimeError {
  constructor(message: string, options?: { cause?: unknown }) { super('Internal', message, options); }
}

export function isNotFound(err: unknown): boolean {
  return err instanceof RuntimeError && err.kind === 'NotFound';
}

/** Node's errno errors (ENOENT, EEXIST, ...) carry a string code. */
export function errnoCode(err: unknown): string | undefined {
  if (err && typeof err === 'object' && 'code' in err && typeof (err as { code: unknown }).code === 'string') {
    return (err as { code: string }).code;
  }
  return undefined;
}

/** Out of space or quota on a file system: the node's state, answered ResourceExhausted. */
export function isNoSpace(err: unknown): boolean {
  const code = errnoCode(err);
  return code === 'ENOSPC' || code === 'EDQUOT';
}

export function isENOENT(err: unknown): boolean {
  return errnoCode(err) === 'ENOENT';
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
