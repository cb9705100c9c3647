import test from 'ava';
import { EventEmitter } from 'node:events';
import { status as Status } from '@grpc/grpc-js';
import { NotFoundError } from '../runtime/errors.js';
import { silentLogger } from '../runtime/util/log.js';
import type { Runtime } from '../runtime/index.js';
import { InFlight, MalformedRequest, unary } from './adapter.js';

const rt = { logger: silentLogger() } as unknown as Runtime;

function fakeCall(request: unknown, deadline: number = Infinity) {
  const call = new EventEmitter() as EventEmitter & { request: unknown; getDeadline(): number };
  call.request = request;
  call.getDeadline = () => deadline;
  return call;
}

function invoke(h: Parameters<typeof unary>[1], call = fakeCall({})) {
  const inflight = new InFlight();
  const calls: Array<[unknown, unknown]> = [];
  const done = new Promise<void>((resolve) => {
    unary('M', h, rt, inflight)(call as never, ((err: unknown, res: unknown) => { calls.push([err, res]); resolve(); }) as never);
  });
  return { calls, done, inflight };
}

test('a result is answered once with OK', async (t) => {
  const { calls, done, inflight } = invoke(async () => ({ ok: 1 }));
  await done;
  t.deepEqual(calls, [[null, { ok: 1 }]]);
  t.is(inflight.size, 0);
});

test('a domain error becomes its status code', async (t) => {
  const { calls, done } = invoke(async () => { throw new NotFoundError('pod x not found'); });
  await done;
  t.deepEqual(calls[0]![0], { code: Status.NOT_FOUND, details: 'pod x not found' });
});

test('a synchronous throw is answered, not crashed on', async (t) => {
  const { calls, done } = invoke((() => { throw new Error('sync'); }) as never);
  await done;
  t.is((calls[0]![0] as { code: number }).code, Status.INTERNAL);
});

test('cancellation aborts the handler signal', async (t) => {
  const call = fakeCall({});
  let aborted = false;
  const { done } = invoke(async (_req, ctx) => {
    await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => { aborted = true; resolve(); }));
    return {};
  }, call);
  call.emit('cancelled');
  await done;
  t.true(aborted);
});

test('a deadline aborts the handler signal', async (t) => {
  const { done } = invoke(async (_req, ctx) => {
    t.is(typeof ctx.deadline, 'number');
    await new Promise<void>((resolve) => ctx.signal.addEventListener('abort', () => resolve()));
    return {};
  }, fakeCall({}, Date.now() + 20));
  await done;
  t.pass();
});

test('drain waits for in-flight calls and is bounded', async (t) => {
  const f = new InFlight();
  f.enter();
  t.false(await f.drain(10));
  setTimeout(() => f.leave(), 10);
  t.true(await f.drain(1000));
});

test('a request that did not decode is INVALID_ARGUMENT, and the handler never runs', async (t) => {
  let ran = false;
  const { calls, done } = invoke(async () => { ran = true; return {}; }, fakeCall(new MalformedRequest('index out of range')));
  await done;
  t.false(ran);
  t.is((calls[0]![0] as { code: number }).code, Status.INVALID_ARGUMENT);
  t.regex((calls[0]![0] as { details: string }).details, /M: the request is not a MRequest message: index out of range/);
});

test('a deadline past setTimeout\'s range does not abort the call at once', async (t) => {
  let aborted = false;
  const { calls, done } = invoke(async (_req, ctx) => {
    await new Promise((r) => setTimeout(r, 50));
    aborted = ctx.signal.aborted;
    return {};
  }, fakeCall({}, Date.now() + 2 ** 32));
  await done;
  t.false(aborted);
  t.is(calls[0]![0], null);
});
