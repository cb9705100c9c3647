/** RPC handlers of this area, by RPC name. */
import type { HandlerTable } from './types.js';

export const containersHandlers: HandlerTable = {
  unary: {},
  stream: {},
};
