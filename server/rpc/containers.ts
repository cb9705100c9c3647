/** RPC handlers of this area, by RPC name. */
import type { HandlerTable } from './types.js';
import { createContainer } from './container-create.js';
import { startContainer } from './container-start.js';
import { stopContainer } from './container-stop.js';
import { removeContainer } from './container-remove.js';
import { containerStatus } from './container-status.js';
import { listContainers } from './container-list.js';
import { streamContainers } from './container-stream.js';
import { updateContainerResources } from './container-update-resources.js';
import { reopenContainerLog } from './container-reopen-log.js';
import { execSync } from './container-exec-sync.js';

export const containersHandlers: HandlerTable = {
  unary: {
    CreateContainer: createContainer,
    StartContainer: startContainer,
    StopContainer: stopContainer,
    RemoveContainer: removeContainer,
    ContainerStatus: containerStatus,
    ListContainers: listContainers,
    UpdateContainerResources: updateContainerResources,
    ReopenContainerLog: reopenContainerLog,
    ExecSync: execSync,
  },
  stream: {
    StreamContainers: streamContainers,
  },
};
