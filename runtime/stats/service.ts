/**
 * Container and pod sandbox stats as the kubelet's CRI stats provider reads them
 * (ContainerStats, PodSandboxStats and their List forms). Cgroup numbers come from
 * runtime/cgroups/stats.ts, pod network counters from inside the pod's netns
 * (runtime/network/ifstats.ts), the writable layer from the container's overlay upperdir.
 *
 * usage_nano_cores needs two samples: the service keeps the last cpu sample per container
 * and pod, so every call after the first reports a rate. A pod without a cgroup of its own
 * (crictl runp without cgroup_parent) reports the sum of its containers' cpu and memory.
 *
 * Responses are built in the proto-loader shape (int64/uint64 as decimal strings).
 */
import type { ContainerStats } from '../../proto/gen/runtime/v1/ContainerStats.js';
import type { ContainerStatsFilter__Output } from '../../proto/gen/runtime/v1/ContainerStatsFilter.js';
import type { CpuUsage } from '../../proto/gen/runtime/v1/CpuUsage.js';
import type { MemoryUsage } from '../../proto/gen/runtime/v1/MemoryUsage.js';
import type { NetworkInterfaceUsage } from '../../proto/gen/runtime/v1/NetworkInterfaceUsage.js';
import type { PodSandbox } from '../../proto/gen/runtime/v1/PodSandbox.js';
import type { PodSandboxFilter__Output } from '../../proto/gen/runtime/v1/PodSandboxFilter.js';
import type { PodSandboxStats } from '../../proto/gen/runtime/v1/PodSandboxStats.js';
import type { PodSandboxStatsFilter__Output } from '../../proto/gen/runtime/v1/PodSandboxStatsFilter.js';
import type { PsiStats } from '../../proto/gen/runtime/v1/PsiStats.js';
import type { PodSandboxMetrics } from '../../proto/gen/runtime/v1/PodSandboxMetrics.js';
import type { MetricDescriptor } from '../../proto/gen/runtime/v1/MetricDescriptor.js';
import { cgroupMetrics, metricDescriptors, networkMetrics, type BaseLabels, type LayerFs } from './metrics.js';
import { promises as fs } from 'node:fs';
import type { CgroupInfo } from '../cgroups/detect.js';
import { expandSlice } from '../cgroups/paths.js';
import { CpuRateTracker, type CgroupStats, type CgroupStatsSource, type Psi } from '../cgroups/stats.js';
import { PooledStatsReader } from './reader-pool.js';
import type { ContainerView } from '../container/types.js';
import { NotFoundError, errorMessage } from '../errors.js';
import type { InterfaceStats } from '../network/ifstats.js';
import type { SandboxView } from '../sandbox/service.js';
import type { Logger } from '../util/log.js';

/** What the stats service reads from the container service. */
export interface StatsContainers {
  listViews(): ContainerView[];
  find(idOrPrefix: string): ContainerView | undefined;
}

/** What it reads from the sandbox service. */
export interface StatsSandboxes {
  list(filter?: PodSandboxFilter__Output | null): PodSandbox[];
  find(idOrPrefix: string): SandboxView | undefined;
}

/** Disk usage of a container's writable layer (the image service's overlay upperdir). */
export interface StatsLayers {
  rootfsUsage(containerId: string): Promise<{ bytes: number; inodes: number; mountpoint: string }>;
}

export interface StatsNetns {
  read(netnsPath: string): Promise<InterfaceStats[]>;
}

export interface StatsServiceDeps {
  cgroups: Pick<CgroupInfo, 'mode' | 'root' | 'driver'>;
  containers: StatsContainers;
  sandboxes: StatsSandboxes;
  layers: StatsLayers;
  netns: StatsNetns;
  logger: Logger;
  /** Injected in tests; default: a worker-thread reader of cgroups.root (reader-pool.ts). */
  reader?: CgroupStatsSource;
  /** How long a writable layer's walked size is reused; default 10 s (a du per call per container would dominate). */
  layerCacheMs?: number;
}

/** The pod's primary interface, as the kubelet names it in its summary API. */
const DEFAULT_INTERFACE = 'eth0';

const u64 = (v: bigint | number | undefined): { value: string } | null => (v === undefined ? null : { value: String(v) });

function psi(p: Psi | undefined): PsiStats | null {
  if (!p) return null;
  const line = (l: Psi['some']) => ({ Total: String(l.totalUs), Avg10: l.avg10, Avg60: l.avg60, Avg300: l.avg300 });
  return { Some: line(p.some), Full: p.full ? line(p.full) : null };
}

/** A container's cgroup path below the hierarchy root, from its OCI cgroupsPath. */
export function cgroupPathOf(cgroupsPath: string, driver: 'cgroupfs' | 'systemd'): string {
  // systemd spells it "slice:prefix:name"; runc and crun create <prefix>-<name>.scope in the slice.
  const parts = cgroupsPath.split(':');
  if (parts.length === 3 && (driver === 'systemd' || parts[0]!.endsWith('.slice'))) {
    const [slice, prefix, name] = parts as [string, string, string];
    return `${slice ? expandSlice(slice) : ''}/${prefix ? `${prefix}-` : ''}${name}.scope`.replace(/^\/\//, '/');
  }
  return cgroupsPath.startsWith('/') ? cgroupsPath : `/${cgroupsPath}`;
}

export class StatsService {
  private readonly reader: CgroupStatsSource;
  private readonly pool: PooledStatsReader | undefined;
  private readonly cpu = new CpuRateTracker();
  private readonly layers = new Map<string, { at: number; value: Promise<{ bytes: number; inodes: number; mountpoint: string }> }>();
  private readonly layerCacheMs: number;

  constructor(private readonly deps: StatsServiceDeps) {
    if (!deps.reader) this.pool = new PooledStatsReader({ mode: deps.cgroups.mode, root: deps.cgroups.root });
    this.reader = deps.reader ?? this.pool!;
    this.layerCacheMs = deps.layerCacheMs ?? 10_000;
  }

  /** Stops the reader's worker thread. */
  async close(): Promise<void> {
    await this.pool?.close();
  }

  async containerStats(idOrPrefix: string): Promise<ContainerStats> {
    const c = this.deps.containers.find(idOrPrefix);
    if (!c) throw new NotFoundError(`container "${idOrPrefix}" not found`);
    return (await this.forContainer(c)).stats;
  }

  async listContainerStats(filter?: ContainerStatsFilter__Output | null): Promise<ContainerStats[]> {
    let views = this.deps.containers.listViews().filter((c) => c.state === 'RUNNING' || c.state === 'CREATED');
    if (filter?.id) {
      const one = this.deps.containers.find(filter.id);
      views = views.filter((c) => c.id === one?.id);
    }
    if (filter?.pod_sandbox_id) {
      const pod = this.deps.sandboxes.find(filter.pod_sandbox_id);
      views = views.filter((c) => c.podId === pod?.id);
    }
    const sel = filter?.label_selector ?? {};
    views = views.filter((c) => Object.entries(sel).every(([k, v]) => c.labels[k] === v));
    const out = await Promise.all(views.map((c) => this.forContainer(c).then((r) => r.stats, (err) => {
      // One container going away mid-call must not fail the whole list.
      this.deps.logger.debug(`stats of container ${c.id}: ${errorMessage(err)}`);
      return undefined;
    })));
    this.forgetGone();
    return out.filter((s): s is ContainerStats => s !== undefined);
  }

  async podSandboxStats(idOrPrefix: string): Promise<PodSandboxStats> {
    const pod = this.deps.sandboxes.find(idOrPrefix);
    if (!pod) throw new NotFoundError(`pod sandbox "${idOrPrefix}" not found`);
    return this.forPod(pod);
  }

  async listPodSandboxStats(filter?: PodSandboxStatsFilter__Output | null): Promise<PodSandboxStats[]> {
    const pods = this.deps.sandboxes.list({
      id: filter?.id ?? '',
      state: { state: 'SANDBOX_READY' },
      label_selector: filter?.label_selector ?? {},
    } as PodSandboxFilter__Output);
    const out = await Promise.all(pods.map(async (p) => {
      const view = this.deps.sandboxes.find(p.id!);
      if (!view) return undefined;
      return this.forPod(view).catch((err) => {
        this.deps.logger.debug(`stats of pod sandbox ${p.id}: ${errorMessage(err)}`);
        return undefined;
      });
    }));
    this.forgetGone();
    return out.filter((s): s is PodSandboxStats => s !== undefined);
  }

  listMetricDescriptors(): MetricDescriptor[] {
    return metricDescriptors();
  }

  /** ListPodSandboxMetrics: cAdvisor-style samples per READY pod and its live containers. */
  async listPodSandboxMetrics(): Promise<PodSandboxMetrics[]> {
    const pods = this.deps.sandboxes.list({ id: '', state: { state: 'SANDBOX_READY' }, label_selector: {} } as PodSandboxFilter__Output);
    const all = this.deps.containers.listViews().filter((c) => c.state === 'RUNNING' || c.state === 'CREATED');
    const out = await Promise.all(pods.map(async (p) => {
      const pod = this.deps.sandboxes.find(p.id!);
      if (!pod) return undefined;
      const md = pod.config.metadata;
      const podLabels: BaseLabels = { container: '', id: pod.cgroupPath, image: '', name: '', namespace: md?.namespace ?? '', pod: md?.name ?? '' };
      const [own, ifs, containers] = await Promise.all([
        pod.cgroupPath ? this.reader.read(pod.cgroupPath, { detail: true }).catch(() => undefined) : Promise.resolve(undefined),
        pod.namespaces.net ? this.deps.netns.read(pod.namespaces.net).catch(() => []) : Promise.resolve([]),
        Promise.all(all.filter((c) => c.podId === pod.id).map(async (c) => {
          const path = this.containerCgroup(c) ?? '';
          const [raw, layer] = await Promise.all([
            path ? this.reader.read(path, { detail: true }).catch(() => undefined) : Promise.resolve(undefined),
            this.layerFs(c.id),
          ]);
          const labels: BaseLabels = {
            container: c.metadata.name,
            id: path,
            image: c.spec?.annotations?.['io.kubernetes.cri.image-name'] || c.imageId || '',
            name: c.name,
            namespace: podLabels.namespace,
            pod: podLabels.pod,
          };
          return {
            container_id: c.id,
            metrics: cgroupMetrics(labels, raw, {
              ...(layer ? { layer } : {}),
              ...(c.startedAt && c.startedAt !== '0' ? { startedAtNs: BigInt(c.startedAt) } : {}),
            }),
          };
        })),
      ]);
      return {
        pod_sandbox_id: pod.id,
        metrics: [...(own ? cgroupMetrics(podLabels, own) : []), ...networkMetrics(podLabels, ifs)],
        container_metrics: containers,
      };
    }));
    return out.filter((x): x is NonNullable<typeof x> => x !== undefined);
  }

  /** The cgroup path of a container: its OCI spec's cgroupsPath, the one the OCI runtime used. */
  private containerCgroup(c: ContainerView): string | undefined {
    const p = c.spec?.linux?.cgroupsPath;
    return p ? cgroupPathOf(p, this.deps.cgroups.driver) : undefined;
  }

  private async forContainer(c: ContainerView): Promise<{ stats: ContainerStats; raw: CgroupStats | undefined }> {
    const path = this.containerCgroup(c);
    const live = c.state === 'RUNNING' || c.state === 'CREATED';
    const [raw, layer] = await Promise.all([
      path && live ? this.reader.read(path) : Promise.resolve(undefined),
      this.layerUsage(c.id).catch(() => undefined),
    ]);
    const stats: ContainerStats = {
      attributes: { id: c.id, metadata: c.metadata, labels: c.labels, annotations: c.annotations },
      cpu: raw ? this.cpuUsage(`c:${c.id}`, raw) : null,
      memory: raw ? memoryUsage(raw) : null,
      writable_layer: layer
        ? { timestamp: String(BigInt(Date.now()) * 1_000_000n), fs_id: { mountpoint: layer.mountpoint }, used_bytes: u64(layer.bytes), inodes_used: u64(layer.inodes) }
        : null,
      swap: raw?.swap
        ? { timestamp: String(raw.timestampNs), swap_usage_bytes: u64(raw.swap.usageBytes), swap_available_bytes: u64(raw.swap.availableBytes) }
        : null,
      io: raw?.psi?.io ? { timestamp: String(raw.timestampNs), psi: psi(raw.psi.io) } : null,
    };
    return { stats, raw };
  }

  private cpuUsage(key: string, raw: CgroupStats): CpuUsage | null {
    if (!raw.cpu) return null;
    const rate = this.cpu.update(key, raw.cpu.usageNs, raw.monotonicNs);
    return {
      timestamp: String(raw.timestampNs),
      usage_core_nano_seconds: u64(raw.cpu.usageNs),
      usage_nano_cores: u64(rate),
      psi: psi(raw.psi?.cpu),
    };
  }

  private async forPod(pod: SandboxView): Promise<PodSandboxStats> {
    const md = pod.config.metadata;
    const containers = this.deps.containers.listViews().filter((c) => c.podId === pod.id && (c.state === 'RUNNING' || c.state === 'CREATED'));
    const [own, perContainer, net] = await Promise.all([
      pod.cgroupPath ? this.reader.read(pod.cgroupPath) : Promise.resolve(undefined),
      Promise.all(containers.map((c) => this.forContainer(c).catch(() => undefined))),
      pod.namespaces.net ? this.network(pod.namespaces.net) : Promise.resolve(null),
    ]);
    const ok = perContainer.filter((x): x is { stats: ContainerStats; raw: CgroupStats | undefined } => x !== undefined);
    const raw = own ?? sumStats(ok.map((x) => x.raw).filter((r): r is CgroupStats => r !== undefined));
    const processCount = raw?.pids?.current;
    return {
      attributes: {
        id: pod.id,
        metadata: md ? { name: md.name, uid: md.uid, namespace: md.namespace, attempt: md.attempt ?? 0 } : null,
        labels: pod.config.labels ?? {},
        annotations: pod.config.annotations ?? {},
      },
      linux: {
        cpu: raw ? this.cpuUsage(`p:${pod.id}`, raw) : null,
        memory: raw ? memoryUsage(raw) : null,
        network: net,
        process: raw && processCount !== undefined ? { timestamp: String(raw.timestampNs), process_count: u64(processCount) } : null,
        containers: ok.map((x) => x.stats),
        io: raw?.psi?.io ? { timestamp: String(raw.timestampNs), psi: psi(raw.psi.io) } : null,
      },
      windows: null,
    };
  }

  private async network(netnsPath: string) {
    let ifs: InterfaceStats[];
    try {
      ifs = await this.deps.netns.read(netnsPath);
    } catch (err) {
      this.deps.logger.debug(`interface stats in ${netnsPath}: ${errorMessage(err)}`);
      return null;
    }
    const toUsage = (i: InterfaceStats): NetworkInterfaceUsage => ({
      name: i.name, rx_bytes: u64(i.rxBytes), rx_errors: u64(i.rxErrors), tx_bytes: u64(i.txBytes), tx_errors: u64(i.txErrors),
    });
    const list = ifs.filter((i) => i.name !== 'lo');
    const def = list.find((i) => i.name === DEFAULT_INTERFACE) ?? list[0];
    // No interface but lo (a stopped pod whose eth0 CNI DEL removed, a pod without a network):
    // no network figures at all. The kubelet's CRI stats provider reads default_interface of
    // every network it gets without a nil check, and a network without one crashed the
    // kubelet (v1.37, addCRIPodNetworkStats) while a Deployment scaled down.
    if (!def) return null;
    return {
      timestamp: String(BigInt(Date.now()) * 1_000_000n),
      default_interface: toUsage(def),
      interfaces: list.map(toUsage),
    };
  }

  /** The writable layer's bytes and inodes used, and its filesystem's size (cAdvisor's container_fs_*). */
  private async layerFs(id: string): Promise<LayerFs | undefined> {
    const layer = await this.layerUsage(id).catch(() => undefined);
    if (!layer) return undefined;
    const st = await fs.statfs(layer.mountpoint).catch(() => undefined);
    return {
      device: layer.mountpoint,
      usedBytes: layer.bytes,
      inodesUsed: layer.inodes,
      ...(st ? { limitBytes: st.blocks * st.bsize } : {}),
    };
  }

  private layerUsage(id: string): Promise<{ bytes: number; inodes: number; mountpoint: string }> {
    const now = Date.now();
    const hit = this.layers.get(id);
    if (hit && now - hit.at < this.layerCacheMs) return hit.value;
    const value = this.deps.layers.rootfsUsage(id);
    this.layers.set(id, { at: now, value });
    value.catch(() => this.layers.delete(id));
    return value;
  }

  /** Drops samples of containers and pods that no longer exist. */
  private forgetGone(): void {
    const ids = new Set(this.deps.containers.listViews().map((c) => c.id));
    for (const id of this.layers.keys()) if (!ids.has(id)) this.layers.delete(id);
    const pods = new Set(this.deps.sandboxes.list().map((p) => p.id));
    this.cpu.retain((key) => (key.startsWith('c:') ? ids.has(key.slice(2)) : pods.has(key.slice(2))));
  }
}

function memoryUsage(raw: CgroupStats): MemoryUsage | null {
  const m = raw.memory;
  if (!m) return null;
  return {
    timestamp: String(raw.timestampNs),
    working_set_bytes: u64(m.workingSetBytes),
    available_bytes: u64(m.availableBytes),
    usage_bytes: u64(m.usageBytes),
    rss_bytes: u64(m.rssBytes),
    page_faults: u64(m.pageFaults),
    major_page_faults: u64(m.majorPageFaults),
    psi: psi(raw.psi?.memory),
  };
}

/** A pod without its own cgroup: cpu, memory and pids summed over its containers. */
export function sumStats(list: CgroupStats[]): CgroupStats | undefined {
  if (list.length === 0) return undefined;
  const add = (a: bigint | undefined, b: bigint | undefined): bigint | undefined => (a === undefined && b === undefined ? undefined : (a ?? 0n) + (b ?? 0n));
  const out: CgroupStats = { timestampNs: list[0]!.timestampNs, monotonicNs: list[0]!.monotonicNs };
  for (const s of list) {
    if (s.cpu) out.cpu = { usageNs: (out.cpu?.usageNs ?? 0n) + s.cpu.usageNs };
    if (s.memory) {
      const m = out.memory;
      out.memory = {
        usageBytes: (m?.usageBytes ?? 0n) + s.memory.usageBytes,
        workingSetBytes: (m?.workingSetBytes ?? 0n) + s.memory.workingSetBytes,
      };
      const rss = add(m?.rssBytes, s.memory.rssBytes);
      const pf = add(m?.pageFaults, s.memory.pageFaults);
      const mpf = add(m?.majorPageFaults, s.memory.majorPageFaults);
      if (rss !== undefined) out.memory.rssBytes = rss;
      if (pf !== undefined) out.memory.pageFaults = pf;
      if (mpf !== undefined) out.memory.majorPageFaults = mpf;
    }
    if (s.pids) out.pids = { current: (out.pids?.current ?? 0n) + s.pids.current };
  }
  return out;
}
