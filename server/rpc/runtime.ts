/** RPC handlers about the runtime itself. */
import type { HandlerTable } from './types.js';
import { version } from './version.js';
import { runtimeStatus } from './runtime-status.js';
import { runtimeConfig } from './runtime-config.js';
import { updateRuntimeConfig } from './runtime-config-update.js';

export const runtimeHandlers: HandlerTable = {
  unary: {
    Version: version,
    Status: runtimeStatus,
    RuntimeConfig: runtimeConfig,
    UpdateRuntimeConfig: updateRuntimeConfig,
  },
  stream: {},
};
