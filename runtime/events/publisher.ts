/**
 * Turns the container service's state changes into GetContainerEvents events: each carries
 * the pod's status and its containers' statuses as they are when the change happens
 * (captured here, synchronously, so a subscriber that reads later still sees that moment).
 */
import { errorMessage } from '../errors.js';
import type { Logger } from '../util/log.js';
import type { EventBus } from './bus.js';
import type { ContainerEvent, ContainerEventType } from './index.js';

/** What the publisher needs from the container service (its onEvent hook, status, list). */
export interface EventContainers {
  onEvent(fn: (e: { type: ContainerEventType; containerId: string; podId: string; at: string }) => void): () => void;
  list(filter?: { pod_sandbox_id?: string } | null): Array<{ id: string }>;
  status(id: string, verbose?: boolean): { status: unknown };
}

/** What it needs from the sandbox service. */
export interface EventSandboxes {
  status(id: string, verbose?: boolean): { status?: unknown };
}

/**
 * The pod's status and its containers' statuses as they are now. The pod may be gone already
 * (RemovePodSandbox removing its containers, or the sandbox's own DELETED event): then null.
 */
function snapshot(podId: string, sandboxes: EventSandboxes, containers: Pick<EventContainers, 'list' | 'status'>, logger: Logger) {
  let podSandboxStatus: unknown = null;
  try {
    podSandboxStatus = sandboxes.status(podId, false).status ?? null;
  } catch (err) {
    logger.debug(`events: status of pod sandbox ${podId}: ${errorMessage(err)}`);
  }
  return { podSandboxStatus, containersStatuses: podContainerStatuses(podId, containers) };
}

/**
 * The ContainerStatus of every container of the pod, as ContainerStatus answers it. Events carry
 * these, and so does PodSandboxStatus: the kubelet's evented PLEG reads the pod's containers from
 * there instead of listing them.
 */
export function podContainerStatuses(podId: string, containers: Pick<EventContainers, 'list' | 'status'>): unknown[] {
  const out: unknown[] = [];
  for (const c of containers.list({ pod_sandbox_id: podId })) {
    try {
      out.push(containers.status(c.id, false).status);
    } catch { /* removed meanwhile */ }
  }
  return out;
}

/** Subscribes to the container service; returns the unsubscribe function. */
export function publishContainerEvents(containers: EventContainers, sandboxes: EventSandboxes, bus: EventBus<ContainerEvent>, logger: Logger): () => void {
  return containers.onEvent((e) => {
    bus.publish({ containerId: e.containerId, type: e.type, createdAtNs: BigInt(e.at), ...snapshot(e.podId, sandboxes, containers, logger) });
  });
}

/**
 * What the publisher needs from the sandbox service to report the sandbox's own changes
 * (containerd reports them too, with the sandbox id as container_id): RunPodSandbox ->
 * created + started, StopPodSandbox -> stopped, RemovePodSandbox -> deleted.
 */
export interface SandboxEventSource extends EventSandboxes {
  onEvent(fn: (e: { type: ContainerEventType; podId: string; at: string }) => void): () => void;
}

export function publishSandboxEvents(sandboxes: SandboxEventSource, containers: Pick<EventContainers, 'list' | 'status'>, bus: EventBus<ContainerEvent>, logger: Logger): () => void {
  return sandboxes.onEvent((e) => {
    bus.publish({ containerId: e.podId, type: e.type, createdAtNs: BigInt(e.at), ...snapshot(e.podId, sandboxes, containers, logger) });
  });
}
