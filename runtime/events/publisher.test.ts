import test from 'ava';
import { silentLogger } from '../util/log.js';
import { EventBus } from './bus.js';
import type { ContainerEvent } from './index.js';
import { publishContainerEvents, type EventContainers } from './publisher.js';

test('container events carry the pod status and its containers\' statuses of that moment', async (t) => {
  type Listener = Parameters<EventContainers['onEvent']>[0];
  let listener: Listener | undefined;
  const states: Record<string, string> = { c1: 'CONTAINER_CREATED' };
  const containers: EventContainers = {
    onEvent: (fn) => { listener = fn; return () => { listener = undefined; }; },
    list: (f) => Object.keys(states).map((id) => ({ id, pod: f?.pod_sandbox_id })),
    status: (id) => ({ status: { id, state: states[id] } }),
  };
  const sandboxes = {
    status: (id: string) => {
      if (id === 'gone') throw new Error('not found');
      return { status: { id, state: 'SANDBOX_READY' } };
    },
  };
  const bus = new EventBus<ContainerEvent>();
  const sub = bus.subscribe();
  const stop = publishContainerEvents(containers, sandboxes, bus, silentLogger());
  listener!({ type: 'CONTAINER_CREATED_EVENT', containerId: 'c1', podId: 'p1', at: '100' });
  states.c1 = 'CONTAINER_RUNNING';
  listener!({ type: 'CONTAINER_STARTED_EVENT', containerId: 'c1', podId: 'p1', at: '200' });
  listener!({ type: 'CONTAINER_DELETED_EVENT', containerId: 'c1', podId: 'gone', at: '300' });
  const a = (await sub.next()).value as ContainerEvent;
  const b = (await sub.next()).value as ContainerEvent;
  const c = (await sub.next()).value as ContainerEvent;
  t.deepEqual(a, { containerId: 'c1', type: 'CONTAINER_CREATED_EVENT', createdAtNs: 100n, podSandboxStatus: { id: 'p1', state: 'SANDBOX_READY' }, containersStatuses: [{ id: 'c1', state: 'CONTAINER_CREATED' }] });
  t.deepEqual(b.containersStatuses, [{ id: 'c1', state: 'CONTAINER_RUNNING' }]);
  t.is(c.podSandboxStatus, null);
  stop();
  t.is(listener, undefined);
});

test('sandbox events use the sandbox id as container id', async (t) => {
  let listener: ((e: { type: 'CONTAINER_STOPPED_EVENT'; podId: string; at: string }) => void) | undefined;
  const sandboxes = {
    onEvent: (fn: typeof listener) => { listener = fn; return () => { listener = undefined; }; },
    status: (id: string) => ({ status: { id, state: 'SANDBOX_NOTREADY' } }),
  };
  const containers = { list: () => [{ id: 'c1' }], status: (id: string) => ({ status: { id, state: 'CONTAINER_EXITED' } }) };
  const bus = new EventBus<ContainerEvent>();
  const sub = bus.subscribe();
  const { publishSandboxEvents } = await import('./publisher.js');
  publishSandboxEvents(sandboxes as never, containers, bus, silentLogger());
  listener!({ type: 'CONTAINER_STOPPED_EVENT', podId: 'p1', at: '5' });
  t.deepEqual((await sub.next()).value, {
    containerId: 'p1', type: 'CONTAINER_STOPPED_EVENT', createdAtNs: 5n,
    podSandboxStatus: { id: 'p1', state: 'SANDBOX_NOTREADY' }, containersStatuses: [{ id: 'c1', state: 'CONTAINER_EXITED' }],
  });
});
