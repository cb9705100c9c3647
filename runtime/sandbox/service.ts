/**
 * Pod sandboxes: pinned namespaces, the pod network, the pod's /etc files, /dev/shm and the
 * pod cgroup. No process holds a sandbox unless its containers share a pid namespace.
 *
 * States (persisted in the record log, changed only through RecordLog.update):
 *
 *   (creating) --all steps done--> READY --StopPodSandbox / lost pins--> NOTREADY --Remove--> gone
 *        \--a step failed: every earlier step undone, nothing persisted--/
 *
 * "creating" sandboxes are persisted first (so a daemon crash mid-create can be undone at the
 * next start) but hidden from every lookup until READY.
 *
 * Layout: <root_dir>/sandboxes/records.log holds the records (state/record-log.ts);
 * <state_dir>/sandboxes/<id>/ (tmpfs, gone after a reboot) holds the namespace pins
 * ns/{net,ipc,uts}, the shm mount point and the files bind-mounted into the containers (hosts,
 * resolv.conf, hostname), as CRI-O keeps them: they serve only a READY pod, which no pod is
 * after a reboot, and a tmpfs costs no disk inodes for them (measured on ext4 without a journal,
 * whose allocator skips every recently deleted inode: creating and removing pods slowed with
 * each file a pod kept on the disk).
 */
import { mkdirSync, promises as fs } from 'node:fs';
import { hostname as osHostname } from 'node:os';
import { join } from 'node:path';
import type { Config } from '../config.js';
import type { Logger } from '../util/log.js';
import type { CgroupInfo } from '../cgroups/detect.js';
import { AlreadyExistsError, FailedPreconditionError, InvalidArgumentError, NotFoundError, errorMessage } from '../errors.js';
import { KeyedQueue, NameIndex, newId, type Entry } from '../state/store.js';
import { RecordLog } from '../state/record-log.js';
import { CleanupStack } from '../util/cleanup.js';
import { PhaseTimer, reportPhases } from '../util/phases.js';
import type { Metrics } from '../metrics.js';
import type { ContainerEventType } from '../events/index.js';
import { MNT_DETACH, MS_NODEV, MS_NOEXEC, MS_NOSUID, type Syscalls } from '../linux/syscalls.js';
import { SysctlWriteError, WorkerPinner, type NamespacePinner, type PinnableNamespace, type PinnedNamespaces } from '../linux/netns.js';
import { createUserNamespace, type UsernsPins } from '../linux/userns.js';
import { podCgroupPath } from '../cgroups/paths.js';
import { validateCriResources } from '../cgroups/validate.js';
import { applyPodLimits, createPodCgroup, podCgroupExists, removeCgroupDirs, sumPodLimits, type CriResources } from '../cgroups/pod.js';
import { writePodFiles } from './files.js';
import { grantSearch } from '../util/search-path.js';
import type { InfraRunner, PodContainers, PodNetwork } from './ports.js';
import {
  namespaceModes, podHostname, requireInfra, sandboxName, validateDns, validateKeyValues, validateLogDirectory, validateMetadata, validatePortMappings, validateSysctls, type IdMap, type NamespaceModes,
} from './validate.js';
import type { PodSandboxConfig__Output } from '../../proto/gen/runtime/v1/PodSandboxConfig.js';
import type { PodSandboxFilter__Output } from '../../proto/gen/runtime/v1/PodSandboxFilter.js';
import type { PodSandbox } from '../../proto/gen/runtime/v1/PodSandbox.js';
import type { PodSandboxStatusResponse } from '../../proto/gen/runtime/v1/PodSandboxStatusResponse.js';

/**
 * Durability of pod records. Only the record a pod gets before its first effect outside its
 * own dirs (CNI: IPAM allocations live on disk across reboots) is fsynced, so that recovery
 * can always undo that effect. Every later change is written atomically but not fsynced: a
 * power loss takes every namespace, cgroup, process and iptables rule with it, recovery then
 * finds the pod's namespaces gone and marks it NOTREADY (or undoes an unfinished create,
 * network included), whatever the last status said.
 */
const LOSABLE = { durable: false } as const;

export type SandboxConfig = PodSandboxConfig__Output;
export type SandboxState = 'READY' | 'NOTREADY';

/** Immutable, written once at create. */
export interface SandboxMeta {
  id: string;
  name: string;
  /** The CRI PodSandboxConfig as received. */
  config: SandboxConfig;
  /** The handler in use: the requested one, or the default when none was named. */
  runtimeHandler: string;
  /** RunPodSandbox's runtime_handler as received ('' = default), reported back as the kubelet set it. */
  requestedHandler?: string;
  /** Nanoseconds since the epoch, decimal. */
  createdAt: string;
  modes: NamespaceModes;
  hostname: string;
  /** Where hosts, resolv.conf and hostname are: the run dir. Absent in records made before they moved there from the record's dir. */
  filesDir?: string;
  /** The pod cgroup: `parent` in the driver's spelling, `path` below the hierarchy root. */
  cgroup?: { parent: string; path: string };
}

export interface SandboxStatus {
  state: SandboxState;
  /** RunPodSandbox still running (or crashed before READY): hidden, undone at load. */
  creating?: boolean;
  namespaces: { net?: string; ipc?: string; uts?: string; pid?: string; user?: string };
  ips: string[];
  /** The CNI ADD result (for verbose status). */
  cniResult?: unknown;
  /** CNI ADD done and no DEL since. */
  networkUp: boolean;
  shm?: string;
  shmMounted: boolean;
  /** Cgroup directories corral created (outermost first); empty when the kubelet made the pod cgroup. */
  cgroupCreated: string[];
  /** The last resources applied to a pod cgroup corral owns. */
  resources?: { resources: CriResources | null; overhead: CriResources | null };
  infraRunning: boolean;
  /** Host pid of the infra process (pid POD), 0 otherwise. */
  infraPid?: number;
  /** Nanoseconds since the epoch when it became NOTREADY. */
  stoppedAt?: string;
  /** Why it is NOTREADY when not stopped through the API. */
  reason?: string;
  /** How long each phase of RunPodSandbox took, in ms (CNI plugins as cni:<type>). */
  startPhases?: Record<string, number>;
}

/** What other services see of a sandbox. */
export interface SandboxView {
  readonly id: string;
  readonly name: string;
  readonly config: SandboxConfig;
  readonly state: SandboxState;
  /** Pinned namespace files to join; undefined = the host's namespace. */
  readonly namespaces: { net?: string; ipc?: string; uts?: string; pid?: string; user?: string };
  readonly namespaceModes: NamespaceModes;
  readonly hostname: string;
  readonly files: { hosts: string; resolvConf: string; hostname: string; shm?: string };
  /** The pod cgroup in the driver's spelling (cgroupfs path or slice name); '' when none. */
  readonly cgroupParent: string;
  /** The pod cgroup's path below the hierarchy root; '' when none. */
  readonly cgroupPath: string;
  readonly runtimeHandler: string;
  /** IPv4 first, then IPv6. */
  readonly ips: string[];
  readonly createdAt: string;
}

export interface SandboxServiceDeps {
  config: Config;
  logger: Logger;
  syscalls: Syscalls;
  cgroups: CgroupInfo;
  /** The CNI network; without it pods get a network namespace with only a loopback device. */
  network?: PodNetwork;
  /** Runs the infra process of pid POD sandboxes; without it they are refused. */
  infra?: InfraRunner;
  /** Defaults to the worker-thread pinner on `syscalls`. */
  pinner?: NamespacePinner;
  /** Whether a handler runs pods in their own user namespace (RuntimeHandlerFeatures.user_namespaces). */
  userNamespaces?: (handler: string) => boolean;
  /** Makes and pins a pod's user namespace; defaults to ../linux/userns.ts on `syscalls`. */
  createUserns?: (dir: string, maps: { uids: IdMap[]; gids: IdMap[] }) => Promise<UsernsPins>;
  /** Handler for pods that name none; defaults to config.default_runtime. */
  defaultHandler?: string;
  /** Injectable for tests: the host's hostname. */
  hostHostname?: string;
  /** Start-phase histograms; optional so tests can leave it out. */
  metrics?: Metrics;
}

/** Time in ns since the epoch as a decimal string (CRI int64). */
/** A change of a sandbox's own state; `at` is nanoseconds since the epoch as a string. */
export interface SandboxEvent {
  type: ContainerEventType;
  podId: string;
  at: string;
}

/** The namespace pin files a sandbox record names (pid is the infra process's, not a pin). */
function pinsOf(s: SandboxStatus): string[] {
  return [s.namespaces.net, s.namespaces.ipc, s.namespaces.uts, s.namespaces.user].filter((p): p is string => !!p);
}

function nowNs(): string {
  return (BigInt(Date.now()) * 1_000_000n).toString();
}

/**
 * Containers still running when StopPodSandbox comes are killed at once: the kubelet has
 * already stopped them with their grace periods before it stops the pod (containerd does the same).
 */
const POD_STOP_CONTAINER_TIMEOUT_SEC = 0;

export class SandboxService {
  private readonly store: RecordLog<SandboxMeta, SandboxStatus>;
  private readonly names = new NameIndex();
  /** RunPodSandbox calls in flight by name, so that a retry joins the first call. */
  private readonly inflight = new Map<string, Promise<string>>();
  /** Serialises stop/remove/update per sandbox. */
  private readonly locks = new KeyedQueue();
  private containers: PodContainers | undefined;
  private readonly listeners: Array<(e: SandboxEvent) => void> = [];
  private network: PodNetwork | undefined;
  private infra: InfraRunner | undefined;
  private readonly pinner: NamespacePinner;
  private readonly runRoot: string;
  /** Run dirs being deleted in the background (close() waits for them). */
  private readonly pendingRemovals = new Set<Promise<void>>();
  private readonly hostHostname: string;

  private constructor(private readonly deps: SandboxServiceDeps) {
    this.store = new RecordLog(join(deps.config.root_dir, 'sandboxes'), 'pod sandbox');
    this.runRoot = join(deps.config.state_dir, 'sandboxes');
    this.network = deps.network;
    this.infra = deps.infra;
    if (deps.pinner) {
      this.pinner = deps.pinner;
    } else {
      const w = new WorkerPinner(deps.syscalls);
      w.warm();
      this.pinner = w;
    }
    this.hostHostname = deps.hostHostname ?? osHostname();
  }

  static async create(deps: SandboxServiceDeps): Promise<SandboxService> {
    const s = new SandboxService(deps);
    await fs.mkdir(s.runRoot, { recursive: true, mode: 0o700 });
    await s.recover();
    return s;
  }

  /**
   * Subscribes to the sandbox's own lifecycle changes (for GetContainerEvents, which reports
   * them with the sandbox id as container id, as containerd does). Returns the unsubscriber.
   */
  onEvent(fn: (e: SandboxEvent) => void): () => void {
    this.listeners.push(fn);
    return () => {
      const i = this.listeners.indexOf(fn);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  private emit(type: SandboxEvent['type'], podId: string): void {
    const e: SandboxEvent = { type, podId, at: nowNs() };
    for (const l of this.listeners) {
      try {
        l(e);
      } catch (err) {
        this.deps.logger.warn(`pod sandbox event listener: ${errorMessage(err)}`);
      }
    }
  }

  /** Injected by the composition root once the container service exists. */
  setContainers(c: PodContainers): void {
    this.containers = c;
  }

  /** Injected by the composition root when the network is built after this service. */
  setNetwork(n: PodNetwork): void {
    this.network = n;
  }

  setInfraRunner(r: InfraRunner): void {
    this.infra = r;
  }

  /** Resolves once the deletions started in the background so far are done. */
  async settled(): Promise<void> {
    await Promise.all([this.store.settled(), ...this.pendingRemovals]);
  }

  async close(): Promise<void> {
    await this.settled();
    await this.pinner.close();
    this.store.close();
  }

  // ---- lookups -------------------------------------------------------------------------

  /** The sandbox by id or unique prefix; NotFound otherwise. */
  get(idOrPrefix: string): SandboxView {
    const e = this.resolve(idOrPrefix);
    if (!e) throw new NotFoundError(`pod sandbox "${idOrPrefix}" not found`);
    return this.view(e);
  }

  find(idOrPrefix: string): SandboxView | undefined {
    const e = this.resolve(idOrPrefix);
    return e ? this.view(e) : undefined;
  }

  private resolve(idOrPrefix: string): Entry<SandboxMeta, SandboxStatus> | undefined {
    if (!idOrPrefix) throw new InvalidArgumentError('pod sandbox id must not be empty');
    const exact = this.store.get(idOrPrefix);
    if (exact) return exact.status.creating ? undefined : exact;
    const matches = this.visible().filter((e) => e.id.startsWith(idOrPrefix));
    if (matches.length > 1) {
      throw new InvalidArgumentError(`pod sandbox id prefix "${idOrPrefix}" is ambiguous: ${matches.map((e) => e.id).join(', ')}`);
    }
    return matches[0];
  }

  private visible(): Entry<SandboxMeta, SandboxStatus>[] {
    return this.store.list().filter((e) => !e.status.creating);
  }

  private runDir(id: string): string {
    return join(this.runRoot, id);
  }

  private view(e: Entry<SandboxMeta, SandboxStatus>): SandboxView {
    const dir = e.meta.filesDir ?? this.store.path(e.id);
    const s = e.status;
    return {
      id: e.id,
      name: e.meta.name,
      config: e.meta.config,
      state: s.state,
      namespaces: { ...s.namespaces },
      namespaceModes: e.meta.modes,
      hostname: e.meta.hostname,
      files: {
        hosts: join(dir, 'hosts'),
        resolvConf: join(dir, 'resolv.conf'),
        hostname: join(dir, 'hostname'),
        ...(s.shm ? { shm: s.shm } : {}),
      },
      cgroupParent: e.meta.cgroup?.parent ?? '',
      cgroupPath: e.meta.cgroup?.path ?? '',
      runtimeHandler: e.meta.runtimeHandler,
      ips: [...s.ips],
      createdAt: e.meta.createdAt,
    };
  }

  // ---- RunPodSandbox -------------------------------------------------------------------

  /**
   * Creates a READY sandbox and returns its id. A retry with the same metadata while the
   * first call runs waits for it and gets the same id; once READY, it gets that id too.
   * Client cancellation does not abort a create: the kubelet's retry then finds it done.
   */
  async run(config: SandboxConfig | null | undefined, runtimeHandler = ''): Promise<string> {
    if (!config) throw new InvalidArgumentError('pod sandbox config is required');
    const md = validateMetadata(config.metadata);
    const modes = namespaceModes(config.linux?.security_context?.namespace_options);
    const sysctls = validateSysctls(config.linux?.sysctls, modes);
    validateDns(config.dns_config);
    validateLogDirectory(config.log_directory);
    validatePortMappings(config.port_mappings);
    validateKeyValues(config.labels, 'pod sandbox labels');
    validateKeyValues(config.annotations, 'pod sandbox annotations');
    validateCriResources(config.linux?.resources, 'pod resources');
    validateCriResources(config.linux?.overhead, 'pod overhead');
    const handler = runtimeHandler || this.deps.defaultHandler || this.deps.config.default_runtime;
    if (!this.deps.config.runtimes[handler]) {
      throw new InvalidArgumentError(`runtime handler "${runtimeHandler}" is not configured (${Object.keys(this.deps.config.runtimes).join(', ')})`);
    }
    if (modes.userns && !(this.deps.userNamespaces?.(handler) ?? false)) {
      throw new FailedPreconditionError(`runtime handler "${handler}" cannot run pods in a user namespace of their own (userns_options mode POD): no idmapped mounts from its OCI runtime, or none on the file system of the image layers (corral doctor says which)`);
    }
    const cgroup = podCgroupPath(config.linux?.cgroup_parent ?? '', this.deps.cgroups.driver);
    requireInfra(modes, this.infra !== undefined);
    const name = sandboxName(md);

    for (;;) {
      const first = this.inflight.get(name);
      if (first) {
        try {
          return await first;
        } catch {
          continue; // the first call failed and undid itself: this one tries anew
        }
      }
      const holder = this.names.get(name);
      if (holder !== undefined) {
        const e = this.store.get(holder);
        if (e && e.status.state === 'READY' && !e.status.creating) return holder;
        throw new AlreadyExistsError(`pod sandbox name "${name}" is reserved by ${holder}`);
      }
      break;
    }

    const id = newId();
    const hostname = podHostname(config.hostname, modes, id, this.hostHostname);
    this.names.reserve(name, id);
    const meta: SandboxMeta = {
      id, name, config, runtimeHandler: handler, requestedHandler: runtimeHandler, createdAt: nowNs(), modes, hostname,
      filesDir: this.runDir(id), ...(cgroup ? { cgroup } : {}),
    };
    const p = (async () => {
      try {
        return await this.createSandbox(meta, sysctls);
      } catch (err) {
        this.names.release(name, id);
        throw err;
      } finally {
        this.inflight.delete(name);
      }
    })();
    this.inflight.set(name, p);
    return p;
  }

  private async createSandbox(meta: SandboxMeta, sysctls: Array<[string, string]>): Promise<string> {
    const { id, config, modes } = meta;
    const log = this.deps.logger;
    const stack = new CleanupStack(({ step, error }) => log.warn(`pod sandbox ${id}: undoing ${step}: ${errorMessage(error)}`));
    const timer = new PhaseTimer();
    const mark = (phase: string) => timer.mark(phase);
    return stack.guard(async () => {
      const runDir = this.runDir(id);
      // Small metadata operations are synchronous here, as in state/store.ts (measured there).
      mkdirSync(join(runDir, 'ns'), { recursive: true, mode: 0o711 });
      stack.push('run dir', () => fs.rm(runDir, { recursive: true, force: true }));

      let status: SandboxStatus = {
        state: 'NOTREADY', creating: true, namespaces: {}, ips: [], networkUp: false, shmMounted: false,
        cgroupCreated: [], infraRunning: false,
      };
      // Effects outside the pod's own dirs (its network, an infra process, a pod cgroup) need the
      // durable record first, so that recovery can undo them. Any other pod is recorded once,
      // when ready: a crash before that leaves a run dir without a record, which recovery
      // sweeps. The record and the namespaces are made at the same time for the same reason.
      const recordFirst = modes.network === 'POD' || modes.pid === 'POD' || meta.cgroup !== undefined;
      const created: Promise<unknown> = recordFirst ? this.store.create(id, meta, status) : Promise.resolve();
      created.catch(() => undefined);
      stack.push('state', async () => {
        await created.catch(() => undefined);
        await this.store.remove(id);
      });

      // Namespaces: the uts namespace goes with the network one (a host-network pod keeps
      // the node's hostname, as the kubelet expects).
      const wanted: PinnableNamespace[] = [];
      let joined: PinnedNamespaces | undefined;
      if (modes.network === 'POD') wanted.push('net', 'uts');
      if (modes.ipc === 'POD') wanted.push('ipc');
      if (modes.userns) {
        // The pod's user namespace owns its net, ipc and uts namespaces (validate.ts refuses
        // host ones with it): made together, then joined by the worker for hostname and sysctls.
        const make = this.deps.createUserns ?? ((dir, maps) => createUserNamespace(dir, maps, this.deps.syscalls));
        const u = await make(join(runDir, 'ns'), modes.userns);
        stack.push('user namespace', async () => { for (const p of Object.values(u)) await this.pinner.unpin(p); });
        mark('user namespace');
        status = { ...status, namespaces: { user: u.user } };
        joined = { net: u.net, ipc: u.ipc, uts: u.uts };
      }
      if (wanted.length > 0) {
        let pinned;
        try {
          pinned = await this.pinner.pin({
            dir: join(runDir, 'ns'),
            namespaces: wanted,
            ...(modes.network === 'POD' ? { hostname: meta.hostname } : {}),
            sysctls,
            ...(joined ? { join: joined } : {}),
          });
        } catch (err) {
          if (err instanceof SysctlWriteError) {
            throw new InvalidArgumentError(`pod sandbox ${config.metadata?.name}: ${err.message}`, { cause: err });
          }
          throw err;
        }
        if (!joined) {
          const paths = Object.values(pinned);
          stack.push('namespaces', async () => { for (const p of paths) await this.pinner.unpin(p); });
        }
        mark('namespaces');
        // Not persisted yet: after a crash, recovery unpins the fixed paths under the run dir.
        status = { ...status, namespaces: { ...status.namespaces, ...pinned } };
      }
      await created;
      mark('state');

      if (meta.cgroup) {
        const info = this.deps.cgroups;
        if (!(await podCgroupExists(info, meta.cgroup.path))) {
          const created = await createPodCgroup(info, meta.cgroup.path);
          stack.push('pod cgroup', () => removeCgroupDirs(created));
          const limits = sumPodLimits(config.linux?.resources, config.linux?.overhead);
          await applyPodLimits(info, meta.cgroup.path, limits);
          status = { ...status, cgroupCreated: created, resources: { resources: config.linux?.resources ?? null, overhead: config.linux?.overhead ?? null } };
          await this.store.update(id, () => status, LOSABLE);
          mark('cgroup');
        }
      }

      if (modes.pid === 'POD') {
        const infra = this.infra!;
        stack.push('infra process', async () => { await infra.stop(id); await infra.remove(id); });
        const { pidNsPath, pid: infraPid } = await infra.start({
          podId: id,
          command: this.deps.config.pod.infra_command,
          runtimeHandler: meta.runtimeHandler,
          namespaces: { ...status.namespaces },
          ...(modes.userns ? { idMaps: modes.userns } : {}),
          cgroupParent: meta.cgroup?.parent ?? '',
          hostname: meta.hostname,
          labels: config.labels ?? {},
          annotations: config.annotations ?? {},
          logDirectory: config.log_directory ?? '',
          securityContext: config.linux?.security_context ?? null,
        });
        status = { ...status, infraRunning: true, infraPid: infraPid ?? 0, namespaces: { ...status.namespaces, pid: pidNsPath } };
        mark('infra');
      }

      if (modes.network === 'POD') {
        if (this.network) {
          const ref = this.netRef(meta);
          stack.push('network', () => this.network!.tearDownPod({ ...ref, netnsPath: status.namespaces.net }));
          const dns = config.dns_config;
          const res = await this.network.setUpPod({
            ...ref,
            netnsPath: status.namespaces.net!,
            portMappings: config.port_mappings ?? [],
            annotations: config.annotations ?? {},
            ...(dns ? { dns: { servers: dns.servers ?? [], searches: dns.searches ?? [], options: dns.options ?? [] } } : {}),
          });
          status = { ...status, networkUp: true, ips: sortIps(res.ips), cniResult: res.result };
          mark('network');
          for (const p of res.timings ?? []) timer.add(`cni:${p.plugin}`, p.ms);
        } else {
          log.warn(`pod sandbox ${id}: no pod network configured; the pod has only a loopback device`);
        }
      }

      await writePodFiles({
        dir: runDir,
        hostname: meta.hostname,
        ips: status.ips,
        hostNetwork: modes.network === 'NODE',
        dns: config.dns_config,
      });
      // The pod's files and shm are bound into its containers from a uid of its user namespace.
      if (modes.userns) await grantSearch(runDir, { includeSelf: true });
      mark('files');

      if (modes.ipc === 'POD') {
        const shm = join(runDir, 'shm');
        mkdirSync(shm, { recursive: true, mode: 0o755 });
        await this.deps.syscalls.mountAsync('shm', shm, 'tmpfs', MS_NOSUID | MS_NODEV | MS_NOEXEC, `mode=1777,size=${this.deps.config.pod.shm_size}`);
        stack.push('shm', () => this.umountShm(shm));
        mark('shm');
        status = { ...status, shm, shmMounted: true };
      }

      timer.mark('ready');
      status = { ...status, state: 'READY', creating: false, startPhases: timer.toRecord() };
      if (recordFirst) await this.store.update(id, () => status, LOSABLE);
      else await this.store.create(id, meta, status, LOSABLE);
      this.emit('CONTAINER_CREATED_EVENT', id);
      this.emit('CONTAINER_STARTED_EVENT', id);
      log.debug(`pod sandbox ${id} (${meta.name}) is ready in ${timer.totalMs.toFixed(1)} ms (${timer.describe()})`);
      reportPhases(timer, { kind: 'sandbox', id, name: meta.name, metrics: this.deps.metrics, logger: log, slowMs: this.deps.config.slow_start_threshold_ms });
      return id;
    });
  }

  private netRef(meta: SandboxMeta): { id: string; name: string; namespace: string; uid: string } {
    const md = meta.config.metadata!;
    return { id: meta.id, name: md.name, namespace: md.namespace, uid: md.uid };
  }

  private async umountShm(shm: string): Promise<void> {
    try {
      await this.deps.syscalls.umount2Async(shm, MNT_DETACH);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== 'EINVAL' && code !== 'ENOENT') throw err;
    }
  }

  // ---- Stop / Remove -------------------------------------------------------------------

  private locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(id, fn);
  }

  /** Stops the pod's containers, tears down its network and infra process, unmounts shm. Idempotent. */
  async stop(idOrPrefix: string): Promise<void> {
    const e = this.resolve(idOrPrefix);
    if (!e) return;
    await this.locked(e.id, () => this.stopLocked(e.id));
  }

  private async stopLocked(id: string): Promise<void> {
    const e = this.store.get(id);
    if (!e) return;
    if (this.containers) await this.containers.stopAllInPod(id, POD_STOP_CONTAINER_TIMEOUT_SEC);
    const s = e.status;
    // One status write for the whole stop (each write is a new inode on the disk): a crash
    // before it repeats the steps at the next stop, and each is idempotent (CNI DEL finds no
    // cache record, the infra process is gone, shm is not mounted).
    const netDown = (cur: SandboxStatus): SandboxStatus => ({ ...cur, networkUp: false, ips: [] });
    let networkTornDown = false;
    if (s.networkUp) {
      if (!this.network) throw new FailedPreconditionError(`pod sandbox ${id}: its network was set up, but no pod network is configured to tear it down`);
      await this.network.tearDownPod({ ...this.netRef(e.meta), netnsPath: s.namespaces.net });
      networkTornDown = true;
    }
    try {
      if (s.infraRunning && this.infra) await this.infra.stop(id);
      if (s.shmMounted && s.shm) await this.umountShm(s.shm);
    } catch (err) {
      if (networkTornDown) await this.store.update(id, netDown, LOSABLE);
      throw err;
    }
    if (networkTornDown || s.state !== 'NOTREADY' || s.infraRunning || s.shmMounted) {
      const wasReady = s.state === 'READY';
      await this.store.update(id, (cur) => ({
        ...netDown(cur), state: 'NOTREADY', infraRunning: false, shmMounted: false, stoppedAt: cur.stoppedAt ?? nowNs(),
      }), LOSABLE);
      if (wasReady) this.emit('CONTAINER_STOPPED_EVENT', id);
    }
  }

  /** Stops if needed, removes the containers, the pins and every file. Unknown ids succeed. */
  async remove(idOrPrefix: string): Promise<void> {
    const e = this.resolve(idOrPrefix);
    if (!e) return;
    await this.locked(e.id, () => this.removeLocked(e.id));
  }

  private async removeLocked(id: string): Promise<void> {
    const e = this.store.get(id);
    if (!e) return;
    await this.stopLocked(id);
    if (this.containers) await this.containers.removeAllInPod(id);
    if (e.meta.modes.pid === 'POD' && this.infra) await this.infra.remove(id);
    const pins = pinsOf(e.status);
    await this.cleanupRunDir(id, { background: true, pins, shm: e.status.shmMounted });
    if (e.status.cgroupCreated.length > 0) {
      try {
        await removeCgroupDirs(e.status.cgroupCreated);
      } catch (err) {
        // Not fatal for the kubelet: an empty cgroup left behind is logged, the pod is gone.
        this.deps.logger.warn(`pod sandbox ${id}: removing its cgroup: ${errorMessage(err)}`);
      }
    }
    await this.store.remove(id);
    this.names.release(e.meta.name, id);
    this.emit('CONTAINER_DELETED_EVENT', id);
  }

  // ---- Status / List / Update ----------------------------------------------------------

  status(idOrPrefix: string, verbose = false): PodSandboxStatusResponse {
    const e = this.resolve(idOrPrefix);
    if (!e) throw new NotFoundError(`pod sandbox "${idOrPrefix}" not found`);
    const { meta, status: s } = e;
    const [first, ...rest] = s.ips;
    const md = meta.config.metadata!;
    const res: PodSandboxStatusResponse = {
      status: {
        id: e.id,
        metadata: { name: md.name, uid: md.uid, namespace: md.namespace, attempt: md.attempt ?? 0 },
        state: s.state === 'READY' ? 'SANDBOX_READY' : 'SANDBOX_NOTREADY',
        created_at: meta.createdAt,
        network: { ip: first ?? '', additional_ips: rest.map((ip) => ({ ip })) },
        linux: {
          namespaces: {
            options: { network: meta.modes.network, pid: meta.modes.pid, ipc: meta.modes.ipc, target_id: meta.modes.targetId },
          },
        },
        labels: meta.config.labels ?? {},
        annotations: meta.config.annotations ?? {},
        runtime_handler: meta.requestedHandler ?? meta.runtimeHandler,
      },
      info: {},
      containers_statuses: [],
      timestamp: nowNs(),
    };
    if (verbose) {
      const v = this.view(e);
      res.info = {
        info: JSON.stringify({
          id: e.id,
          name: meta.name,
          pid: s.infraRunning ? s.infraPid ?? 0 : 0,
          hostname: meta.hostname,
          runtimeHandler: meta.runtimeHandler,
          namespaces: s.namespaces,
          files: v.files,
          cgroup: { parent: v.cgroupParent, path: v.cgroupPath, createdByCorral: s.cgroupCreated.length > 0 },
          network: { up: s.networkUp, ips: s.ips, cniResult: s.cniResult ?? null },
          ...(s.reason ? { reason: s.reason } : {}),
          startPhasesMs: s.startPhases ?? {},
          config: meta.config,
        }),
      };
    }
    return res;
  }

  /** The sandboxes matching the CRI filter (id prefix, state, labels), oldest first. */
  list(filter?: PodSandboxFilter__Output | null): PodSandbox[] {
    const out: PodSandbox[] = [];
    const entries = this.visible().sort((a, b) => (BigInt(a.meta.createdAt) < BigInt(b.meta.createdAt) ? -1 : 1));
    for (const e of entries) {
      if (filter?.id && !e.id.startsWith(filter.id)) continue;
      const state = e.status.state === 'READY' ? 'SANDBOX_READY' : 'SANDBOX_NOTREADY';
      if (filter?.state && filter.state.state !== state) continue;
      const labels = e.meta.config.labels ?? {};
      if (filter?.label_selector && Object.entries(filter.label_selector).some(([k, v]) => labels[k] !== v)) continue;
      const md = e.meta.config.metadata!;
      out.push({
        id: e.id,
        metadata: { name: md.name, uid: md.uid, namespace: md.namespace, attempt: md.attempt ?? 0 },
        state,
        created_at: e.meta.createdAt,
        labels,
        annotations: e.meta.config.annotations ?? {},
        runtime_handler: e.meta.requestedHandler ?? e.meta.runtimeHandler,
      });
    }
    return out;
  }

  /**
   * Applies new pod-level resources to the pod cgroup when corral created it; when the
   * kubelet owns the pod cgroup it has already changed it, and this is a no-op.
   */
  async updateResources(idOrPrefix: string, overhead: CriResources | null | undefined, resources: CriResources | null | undefined): Promise<void> {
    const e = this.resolve(idOrPrefix);
    if (!e) throw new NotFoundError(`pod sandbox "${idOrPrefix}" not found`);
    validateCriResources(resources, 'pod resources');
    validateCriResources(overhead, 'pod overhead');
    await this.locked(e.id, async () => {
      const cur = this.store.get(e.id);
      if (!cur || !cur.meta.cgroup || cur.status.cgroupCreated.length === 0) return;
      await applyPodLimits(this.deps.cgroups, cur.meta.cgroup.path, sumPodLimits(resources, overhead));
      await this.store.update(e.id, (s) => ({ ...s, resources: { resources: resources ?? null, overhead: overhead ?? null } }), LOSABLE);
    });
  }

  // ---- restart -------------------------------------------------------------------------

  /**
   * Rebuilds the in-memory view after a restart: names are reserved again, creates that
   * a crash interrupted are undone, and READY sandboxes whose pins are gone (a reboot)
   * become NOTREADY so the kubelet recreates them.
   */
  private async recover(): Promise<void> {
    const { skipped } = await this.store.load();
    const log = this.deps.logger;
    for (const id of skipped) {
      // A create of an older daemon that crashed before its record: only the run dir and maybe pins can exist.
      await this.cleanupRunDir(id).catch((err) => log.warn(`pod sandbox ${id}: cleaning up a crashed create: ${errorMessage(err)}`));
      await this.store.remove(id);
    }
    // Run dirs without a record: a create that crashed before its record was written.
    for (const id of await fs.readdir(this.runRoot).catch(() => [] as string[])) {
      if (this.store.get(id) || skipped.includes(id)) continue;
      await this.cleanupRunDir(id).catch((err) => log.warn(`pod sandbox ${id}: cleaning up an orphaned run dir: ${errorMessage(err)}`));
    }
    for (const e of this.store.list()) {
      this.names.reserve(e.meta.name, e.id);
      if (e.status.creating) {
        log.info(`pod sandbox ${e.id}: undoing a create interrupted by a restart`);
        await this.undoInterrupted(e).catch((err) => log.warn(`pod sandbox ${e.id}: undoing an interrupted create: ${errorMessage(err)}`));
        continue;
      }
      if (e.status.state === 'READY') {
        const pins = pinsOf(e.status);
        const alive = await Promise.all(pins.map((p) => this.pinner.isPinned(p)));
        if (e.status.infraRunning && this.infra?.isRunning) {
          alive.push(await this.infra.isRunning(e.id).catch(() => false));
        }
        if (alive.some((a) => !a)) {
          log.info(`pod sandbox ${e.id}: its namespaces or infra process are gone (reboot?), marking it NOTREADY`);
          await this.store.update(e.id, (s) => ({ ...s, state: 'NOTREADY', shmMounted: false, infraRunning: false, stoppedAt: nowNs(), reason: 'namespaces lost' }), LOSABLE);
        }
      }
    }
  }

  /** A create cut short by a crash: every step may be half done, so each undo runs regardless. */
  private async undoInterrupted(e: Entry<SandboxMeta, SandboxStatus>): Promise<void> {
    const { id, meta } = e;
    const log = this.deps.logger;
    const attempt = async (step: string, fn: () => Promise<void>) => {
      try { await fn(); } catch (err) { log.warn(`pod sandbox ${id}: undoing ${step}: ${errorMessage(err)}`); }
    };
    if (meta.modes.network === 'POD' && this.network) {
      const net = this.network;
      await attempt('network', () => net.tearDownPod({ ...this.netRef(meta), netnsPath: e.status.namespaces.net }));
    }
    if (meta.modes.pid === 'POD' && this.infra) {
      const infra = this.infra;
      await attempt('infra process', async () => { await infra.stop(id); await infra.remove(id); });
    }
    if (e.status.cgroupCreated.length > 0) await attempt('pod cgroup', () => removeCgroupDirs(e.status.cgroupCreated));
    await attempt('run dir', () => this.cleanupRunDir(id));
    await this.store.remove(id);
    this.names.release(meta.name, id);
  }

  /**
   * Unpins the namespaces and unmounts shm under a pod's run dir, then deletes it. With
   * background, the deletion is not waited for: nothing is mounted there any more, and a run
   * dir left by a crash meanwhile is swept by recovery (it has no record).
   */
  private async cleanupRunDir(id: string, known?: { background: boolean; pins: string[]; shm: boolean }): Promise<void> {
    const dir = this.runDir(id);
    // What the record says is pinned and mounted, when it is trusted (a normal removal); else
    // (recovery of a crashed create) every fixed path under the run dir.
    const pins = known ? known.pins : ['net', 'ipc', 'uts', 'user'].map((ns) => join(dir, 'ns', ns));
    const shm = !known || known.shm;
    await Promise.all([...pins.map((p) => this.pinner.unpin(p)), ...(shm ? [this.umountShm(join(dir, 'shm'))] : [])]);
    const removal = fs.rm(dir, { recursive: true, force: true });
    if (!known?.background) return removal;
    const done: Promise<void> = removal
      .catch((err) => { this.deps.logger.warn(`pod sandbox ${id}: removing its run dir: ${errorMessage(err)}`); })
      .finally(() => this.pendingRemovals.delete(done));
    this.pendingRemovals.add(done);
  }
}

/** IPv4 addresses first, then IPv6, each group in the order the network gave them. */
export function sortIps(ips: string[]): string[] {
  return [...ips.filter((ip) => !ip.includes(':')), ...ips.filter((ip) => ip.includes(':'))];
}
