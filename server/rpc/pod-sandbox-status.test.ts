import test from 'ava';
import { NotFoundError } from '../../runtime/errors.js';
import type { RpcContext } from './types.js';
import { podSandboxStatus } from './pod-sandbox-status.js';

function ctx(gone: string[] = []): RpcContext {
  const pods: Record<string, string[]> = { p1: ['c1', 'c2'], p2: ['c3'], empty: [] };
  const states: Record<string, string> = { c1: 'CONTAINER_RUNNING', c2: 'CONTAINER_EXITED', c3: 'CONTAINER_CREATED' };
  return {
    rt: {
      sandboxes: {
        status: (id: string, verbose: boolean) => {
          if (!pods[id]) throw new NotFoundError(`pod sandbox "${id}" not found`);
          return { status: { id, state: 'SANDBOX_READY' }, info: verbose ? { info: '{}' } : {}, containers_statuses: [], timestamp: '1700000000000000000' };
        },
      },
      containers: {
        list: (f: { pod_sandbox_id: string }) => (pods[f.pod_sandbox_id] ?? []).map((id) => ({ id })),
        status: (id: string) => {
          if (gone.includes(id)) throw new NotFoundError(`container "${id}" not found`);
          return { status: { id, state: states[id] }, info: {} };
        },
      },
    } as never,
    signal: new AbortController().signal,
  };
}

test('PodSandboxStatus lists the ContainerStatus of every container of the pod, and a timestamp', async (t) => {
  const c = ctx();
  const res = await podSandboxStatus({ pod_sandbox_id: 'p1', verbose: true }, c);
  t.deepEqual(res.containers_statuses, [{ id: 'c1', state: 'CONTAINER_RUNNING' }, { id: 'c2', state: 'CONTAINER_EXITED' }]);
  t.is(res.status?.id, 'p1');
  t.deepEqual(res.info, { info: '{}' });
  t.is(res.timestamp, '1700000000000000000');
  t.deepEqual((await podSandboxStatus({ pod_sandbox_id: 'empty', verbose: false }, c)).containers_statuses, []);
  t.deepEqual((await podSandboxStatus({ pod_sandbox_id: 'p2', verbose: false }, c)).containers_statuses, [{ id: 'c3', state: 'CONTAINER_CREATED' }]);
});

test('PodSandboxStatus: a container removed between listing and reading it is left out', async (t) => {
  const res = await podSandboxStatus({ pod_sandbox_id: 'p1', verbose: false }, ctx(['c1']));
  t.deepEqual(res.containers_statuses, [{ id: 'c2', state: 'CONTAINER_EXITED' }]);
});

test('PodSandboxStatus: an unknown pod is NotFound', async (t) => {
  await t.throwsAsync(podSandboxStatus({ pod_sandbox_id: 'nope', verbose: false }, ctx()), { instanceOf: NotFoundError });
});
