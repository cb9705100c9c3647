import type { GetEventsRequest__Output } from '../../proto/gen/runtime/v1/GetEventsRequest.js';
import type { ContainerEventResponse } from '../../proto/gen/runtime/v1/ContainerEventResponse.js';
import type { StreamHandler } from './types.js';

/**
 * GetContainerEvents: streams until the client goes away. A client that falls too far
 * behind is dropped by the bus; the stream then ends with RESOURCE_EXHAUSTED and the
 * kubelet re-subscribes and relists.
 */
export const getContainerEvents: StreamHandler<GetEventsRequest__Output, ContainerEventResponse> = async (_req, { rt, signal }, write) => {
  for await (const ev of rt.events.subscribe({ signal, name: 'GetContainerEvents' })) {
    await write({
      container_id: ev.containerId,
      container_event_type: ev.type,
      created_at: String(ev.createdAtNs),
      pod_sandbox_status: ev.podSandboxStatus as ContainerEventResponse['pod_sandbox_status'],
      containers_statuses: ev.containersStatuses as ContainerEventResponse['containers_statuses'],
    });
  }
};
