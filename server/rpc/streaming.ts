/** RPC handlers of this area, by RPC name. */
import { attach } from './attach.js';
import { exec } from './exec.js';
import { portForward } from './port-forward.js';
import type { HandlerTable } from './types.js';

export const streamingHandlers: HandlerTable = {
  unary: { Exec: exec, Attach: attach, PortForward: portForward },
  stream: {},
};
