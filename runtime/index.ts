/**
 * The runtime engine's public entry: server/ imports this module and runtime/errors.ts only.
 * createRuntime() builds every service from the config and wires their dependencies
 * (the composition root). Each service takes what it uses as constructor arguments.
 */
import type { Config } from './config.js';
import type { Logger } from './util/log.js';
import { detectCgroups, type CgroupInfo } from './cgroups/detect.js';

export type { Config } from './config.js';
export type { Logger } from './util/log.js';

export interface Runtime {
  readonly config: Config;
  readonly logger: Logger;
  readonly cgroups: CgroupInfo;
  /** Pod CIDR from UpdateRuntimeConfig, kept for the network layer. */
  podCidr: string;
  /** Stops background work (watchers, timers). Containers and pods keep running. */
  close(): Promise<void>;
}

export async function createRuntime(config: Config, logger: Logger): Promise<Runtime> {
  const cgroups = await detectCgroups(config.cgroup_driver);
  const closers: Array<() => Promise<void>> = [];
  const rt: Runtime = {
    config,
    logger,
    cgroups,
    podCidr: '',
    async close() {
      for (const c of closers.reverse()) await c().catch((err) => logger.warn(`close: ${String(err)}`));
    },
  };
  return rt;
}
