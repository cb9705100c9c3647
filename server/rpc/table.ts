/** Every RPC handler corral has, merged from the area tables. */
import { containersHandlers } from './containers.js';
import { imagesHandlers } from './images.js';
import { sandboxesHandlers } from './sandboxes.js';
import { statsHandlers } from './stats.js';
import { streamingHandlers } from './streaming.js';
import { runtimeHandlers } from './runtime.js';
import type { HandlerTable } from './types.js';

const tables: HandlerTable[] = [runtimeHandlers, imagesHandlers, sandboxesHandlers, containersHandlers, streamingHandlers, statsHandlers];

export const handlers: HandlerTable = {
  unary: Object.assign({}, ...tables.map((t) => t.unary)),
  stream: Object.assign({}, ...tables.map((t) => t.stream)),
};
