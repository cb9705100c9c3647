import test from 'ava';
import { status as Status } from '@grpc/grpc-js';
import * as e from '../runtime/errors.js';
import { toStatus } from './status.js';

const table: Array<[e.RuntimeError, Status]> = [
  [new e.NotFoundError('x'), Status.NOT_FOUND],
  [new e.AlreadyExistsError('x'), Status.ALREADY_EXISTS],
  [new e.InvalidArgumentError('x'), Status.INVALID_ARGUMENT],
  [new e.FailedPreconditionError('x'), Status.FAILED_PRECONDITION],
  [new e.UnavailableError('x'), Status.UNAVAILABLE],
  [new e.DeadlineExceededError('x'), Status.DEADLINE_EXCEEDED],
  [new e.UnauthenticatedError('x'), Status.UNAUTHENTICATED],
  [new e.PermissionDeniedError('x'), Status.PERMISSION_DENIED],
  [new e.ResourceExhaustedError('x'), Status.RESOURCE_EXHAUSTED],
  [new e.UnimplementedError('x'), Status.UNIMPLEMENTED],
  [new e.CancelledError('x'), Status.CANCELLED],
  [new e.InternalError('x'), Status.INTERNAL],
];

for (const [err, code] of table) {
  test(`${err.kind} maps to ${Status[code]} and keeps the message`, (t) => {
    t.deepEqual(toStatus(err), { code, details: 'x' });
  });
}

test('unknown errors are INTERNAL with their message', (t) => {
  t.deepEqual(toStatus(new Error('disk on fire')), { code: Status.INTERNAL, details: 'disk on fire' });
  t.deepEqual(toStatus('plain'), { code: Status.INTERNAL, details: 'plain' });
});

test('an AbortError is CANCELLED', (t) => {
  const err = new Error('aborted');
  err.name = 'AbortError';
  t.is(toStatus(err).code, Status.CANCELLED);
});

test('a full file system is RESOURCE_EXHAUSTED, also wrapped as the cause of another error', (t) => {
  const enospc = Object.assign(new Error('ENOSPC: no space left on device, write'), { code: 'ENOSPC' });
  t.is(toStatus(enospc).code, Status.RESOURCE_EXHAUSTED);
  t.is(toStatus(new Error('persisting the record', { cause: enospc })).code, Status.RESOURCE_EXHAUSTED);
  t.is(toStatus(Object.assign(new Error('quota'), { code: 'EDQUOT' })).code, Status.RESOURCE_EXHAUSTED);
  t.is(toStatus(Object.assign(new Error('x'), { code: 'EIO' })).code, Status.INTERNAL);
});
