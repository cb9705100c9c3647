/**
 * Runtime events for GetContainerEvents. The container and sandbox services publish one
 * event per state change; server/rpc's GetContainerEvents handler subscribes and streams.
 */
export { EventBus, type EventBusOptions, type SubscribeOptions, type Subscription } from './bus.js';

/** CRI's ContainerEventType names, as proto-loader gives enums. */
export type ContainerEventType =
  | 'CONTAINER_CREATED_EVENT'
  | 'CONTAINER_STARTED_EVENT'
  | 'CONTAINER_STOPPED_EVENT'
  | 'CONTAINER_DELETED_EVENT';

/**
 * One state change. For a sandbox's own changes containerId is the sandbox id (containerd
 * and CRI-O do the same; the kubelet keys its pod cache by the sandbox status). The statuses
 * are captured when the event is published, in the shape the RPC sends (PodSandboxStatus,
 * ContainerStatus[]), so a slow reader still sees the state as it was at that moment.
 */
export interface ContainerEvent {
  containerId: string;
  type: ContainerEventType;
  /** Unix nanoseconds. */
  createdAtNs: bigint;
  podSandboxStatus: unknown;
  containersStatuses: unknown[];
}
