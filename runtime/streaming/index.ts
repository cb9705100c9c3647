/**
 * The runtime side of streaming: exec through the OCI runtime, attach through conmon, and
 * port-forward into the pod's network namespace. createStreamingBackends() builds the three
 * backends the streaming server (server/streaming/) is started with.
 */
import { join } from 'node:path';
import type { Config } from '../config.js';
import type { Logger } from '../util/log.js';
import { ConmonAttachBackend } from './attach.js';
import { RuntimeExecBackend } from './exec.js';
import { NetnsPortForwardBackend } from './portforward.js';
import type { ContainerLookup, SandboxLookup } from './ports.js';
import type { AttachBackend, ExecBackend, PortForwardBackend } from './types.js';

export interface StreamingBackends {
  exec: ExecBackend;
  attach: AttachBackend;
  portForward: PortForwardBackend;
  close(): Promise<void>;
}

export function createStreamingBackends(deps: {
  config: Pick<Config, 'state_dir' | 'runtimes'>;
  logger: Logger;
  containers: ContainerLookup;
  sandboxes: SandboxLookup;
}): StreamingBackends {
  const portForward = new NetnsPortForwardBackend(deps.sandboxes);
  return {
    exec: new RuntimeExecBackend({
      containers: deps.containers,
      workDir: join(deps.config.state_dir, 'exec'),
      runtimeOptions: (h) => deps.config.runtimes[h]?.options ?? [],
      logger: deps.logger,
    }),
    attach: new ConmonAttachBackend({ containers: deps.containers, logger: deps.logger }),
    portForward,
    close: () => portForward.close(),
  };
}
