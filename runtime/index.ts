/**
 * The runtime engine's public entry: server/ imports this module and runtime/errors.ts only.
 * createRuntime() builds every service from the config and wires their dependencies
 * (the composition root). Each service takes what it uses as constructor arguments.
 */
import type { Config } from './config.js';
import type { Logger } from './util/log.js';
import { detectCgroups, type CgroupInfo } from './cgroups/detect.js';
import { probeHandlers, type HandlerProbe } from './oci/features.js';
import { Metrics } from './metrics.js';
import { linux } from './linux/syscalls.js';
import { fsops } from './linux/fsops.js';
import { probeIdmap } from './linux/userns.js';
import { SandboxService } from './sandbox/service.js';
import { NetworkManager } from './network/manager.js';
import { OciInfraRunner } from './sandbox/infra.js';
import { ImageService } from './image/service.js';
import { ContainerService } from './container/service.js';
import { OciRuntimes } from './oci/runtime.js';
import { StatsService } from './stats/service.js';
import { NetnsStatsReader } from './network/ifstats.js';
import { EventBus, type ContainerEvent } from './events/index.js';
import { publishContainerEvents, publishSandboxEvents } from './events/publisher.js';

export type { Config } from './config.js';
export { podContainerStatuses } from './events/publisher.js';
export type { Logger } from './util/log.js';

// ---- streaming (runtime/streaming): the contract the streaming server calls ----
export { ResizeEvents, ExecStartError } from './streaming/types.js';
export type { TerminalSize, StreamIO, ExecRequest, ExecBackend, AttachBackend, PortForwardBackend } from './streaming/types.js';
import { createStreamingBackends, type StreamingBackends } from './streaming/index.js';
export type { StreamingBackends } from './streaming/index.js';

export interface Condition {
  ready: boolean;
  reason: string;
  message: string;
}

export interface Runtime {
  readonly config: Config;
  readonly logger: Logger;
  readonly cgroups: CgroupInfo;
  readonly metrics: Metrics;
  /** Every configured OCI runtime handler, probed at start. */
  readonly handlers: HandlerProbe[];
  /** The handler used when a pod names none (config.default_runtime, or its fallback). */
  readonly defaultHandler: string;
  /** Pod sandboxes: namespaces, network, /etc files, shm, pod cgroups. */
  readonly sandboxes: SandboxService;
  /** Images: pull, store, remove/GC, and container rootfs overlays. */
  readonly images: ImageService;
  /** Containers: conmon + the OCI runtime, exits, logs, exec (runtime/container). */
  readonly containers: ContainerService;
  /** Container and pod sandbox stats (runtime/stats). */
  readonly stats: StatsService;
  /** Container state changes for GetContainerEvents (runtime/events). */
  readonly events: EventBus<ContainerEvent>;
  /** Exec, attach and port-forward backends the streaming server (server/streaming) runs on. */
  readonly streaming: StreamingBackends;
  /** Pod CIDR from UpdateRuntimeConfig, kept for the network layer. */
  readonly podCidr: string;
  setPodCidr(cidr: string): void;
  /** RuntimeReady and NetworkReady as the kubelet reads them from Status. */
  health(): Promise<{ runtime: Condition; network: Condition }>;
  /** Stops background work (watchers, timers). Containers and pods keep running. */
  close(): Promise<void>;
}

export async function createRuntime(config: Config, logger: Logger): Promise<Runtime> {
  const cgroups = await detectCgroups(config.cgroup_driver);
  const handlers = await probeHandlers(config.runtimes);
  const metrics = new Metrics();
  const closers: Array<() => Promise<void>> = [];
  let podCidr = '';
  const podCidrListeners: Array<(cidr: string) => void> = [];
  let networkStatus = async (): Promise<Condition> => ({ ready: false, reason: 'NetworkPluginNotReady', message: 'the network layer is not set up' });
  // The default handler is config.default_runtime unless it cannot run here (crun on a
  // hybrid host without the workaround): then runc, logged with the reason.
  const ociRuntimes = await OciRuntimes.create(config, cgroups, logger);
  const defaultHandler = ociRuntimes.defaultHandler;

  // ---- pod network (runtime/network) ----
  const network = await NetworkManager.create({ config, logger, cniErrors: metrics.cniErrors });
  podCidrListeners.push((cidr) => network.setPodCidr(cidr));
  podCidr = network.podCidrInUse;
  networkStatus = () => network.status();
  closers.push(async () => network.close());

  // ---- pod sandboxes (runtime/sandbox) ----
  const infra = new OciInfraRunner({ config, runtimes: ociRuntimes, cgroups, logger });
  const userNamespaces = (handler: string) => handlers.find((h) => h.name === handler)?.userNamespaces ?? false;
  const sandboxes = await SandboxService.create({ config, logger, syscalls: linux, cgroups, defaultHandler, infra, network, metrics, userNamespaces });
  closers.push(() => sandboxes.close());

  // A CNI record without a sandbox (its state lost in a crash between the two writes) still
  // holds an IP and iptables rules: tear it down from the cached result, in the background.
  void (async () => {
    for (const pod of await network.recordedPods()) {
      if (sandboxes.find(pod.id)) continue;
      logger.info(`CNI: tearing down the network of unknown pod sandbox ${pod.id} (${pod.namespace}/${pod.name})`);
      await network.tearDownPod(pod).catch((err) => logger.warn(`CNI: orphan ${pod.id}: ${(err as Error).message}`));
    }
  })().catch((err) => logger.warn(`CNI: listing recorded pods: ${(err as Error).message}`));

  // ---- images (runtime/image, runtime/snapshot) ----
  const images = await ImageService.create({ config, logger, syscalls: linux, metrics });
  closers.push(() => images.close());
  // A handler's idmapped mounts are not enough: the file system under the image layers must
  // allow idmapping too (what a pod with its own user namespace needs). Probed once, here.
  if (handlers.some((h) => h.userNamespaces)) {
    const idmap = await probeIdmap(images.snapshots.dir, linux, fsops.mountIdmapped);
    if (!idmap.ok) {
      logger.warn(`user namespaces: off for every handler: ${images.snapshots.dir} cannot be idmapped (${idmap.reason})`);
      for (const h of handlers) h.userNamespaces = false;
    }
  }

  // ---- containers (runtime/container, runtime/oci) ----
  const containers = await ContainerService.create({ config, logger, syscalls: linux, images, sandboxes, cgroups, runtimes: ociRuntimes, metrics });
  closers.push(() => containers.close());
  sandboxes.setContainers(containers);
  images.setInUse((imageId) => containers.containersUsingImage(imageId));

  metrics.setCountSource(() => {
    const count = (states: string[]) => states.reduce<Record<string, number>>((m, st) => ((m[st] = (m[st] ?? 0) + 1), m), {});
    return {
      containers: count(containers.listViews().map((c) => c.state)),
      sandboxes: count(sandboxes.list().map((p) => String(p.state))),
    };
  });

  // ---- stats and events (runtime/stats, runtime/cgroups/stats.ts, runtime/events) ----
  const netnsStats = new NetnsStatsReader();
  closers.push(() => netnsStats.close());
  const stats = new StatsService({ cgroups, containers, sandboxes, layers: images, netns: netnsStats, logger });
  closers.push(() => stats.close());
  const events = new EventBus<ContainerEvent>({ logger });
  const unpublish = publishContainerEvents(containers, sandboxes, events, logger);
  const unpublishSandboxes = publishSandboxEvents(sandboxes, containers, events, logger);
  closers.push(async () => { unpublish(); unpublishSandboxes(); events.close(); });

  // ---- streaming backends (runtime/streaming): exec, attach, port-forward ----
  const streaming = createStreamingBackends({ config, logger, containers, sandboxes });
  closers.push(() => streaming.close());

  const rt: Runtime = {
    config,
    logger,
    cgroups,
    metrics,
    handlers,
    defaultHandler,
    sandboxes,
    images,
    containers,
    stats,
    events,
    streaming,
    get podCidr() { return podCidr; },
    setPodCidr(cidr: string) {
      // The network layer validates first (InvalidArgument); nothing is kept before that.
      for (const l of podCidrListeners) l(cidr);
      podCidr = network.podCidrInUse;
    },
    async health() {
      const def = handlers.find((h) => h.name === rt.defaultHandler);
      const runtime: Condition = def?.available
        ? { ready: true, reason: '', message: '' }
        : { ready: false, reason: 'RuntimeHandlerUnavailable', message: `default runtime handler "${rt.defaultHandler}" is not usable: ${def?.error ?? 'not configured'}` };
      let network: Condition;
      try {
        network = await networkStatus();
      } catch (err) {
        network = { ready: false, reason: 'NetworkPluginNotReady', message: (err as Error).message };
      }
      return { runtime, network };
    },
    async close() {
      for (const c of closers.reverse()) await c().catch((err) => logger.warn(`close: ${String(err)}`));
    },
  };
  return rt;
}
