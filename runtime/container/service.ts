/**
 * The container service: CreateContainer .. RemoveContainer, ExecSync, log reopening and
 * the recovery after a daemon restart. The state machine is drawn in ./types.ts.
 *
 * A container lives in <root_dir>/containers/<id>/, which is at once the store's object
 * directory (meta.json, status.json), the OCI bundle (config.json, rootfs/) and conmon's
 * persist dir (exit, oom, ctl fifo, attach socket). conmon outlives corral, so nothing
 * here kills containers on close().
 */
import { randomBytes } from 'node:crypto';
import { constants, promises as fs } from 'node:fs';
import { dirname, isAbsolute, join } from 'node:path';
import { constants as osConstants } from 'node:os';
import type { Config } from '../config.js';
import type { CgroupInfo } from '../cgroups/detect.js';
import type { Logger } from '../util/log.js';
import type { Syscalls } from '../linux/syscalls.js';
import {
  AlreadyExistsError, CancelledError, FailedPreconditionError, InternalError, InvalidArgumentError, NotFoundError,
  errorMessage, isENOENT, isNotFound,
} from '../errors.js';
import { NameIndex, ObjectStore, newId, writeFileAtomic, type Entry } from '../state/store.js';
import { PhaseTimer, reportPhases } from '../util/phases.js';
import type { Metrics } from '../metrics.js';
import { CleanupStack } from '../util/cleanup.js';
import { OciRuntimes, type OciRuntime } from '../oci/runtime.js';
import { createWithConmon, type ConmonCreateOptions, type ConmonCreateResult } from '../oci/conmon.js';
import { ExitWatcher, readExitFile, type ExitRecord } from '../oci/exit-watch.js';
import type { OciSpec } from '../oci/spec/types.js';
import { buildContainerSpec, buildExecProcess } from '../oci/spec/index.js';
import type { ImagePort, ImageRecordLike, SandboxPort, SandboxViewLike, SpecPort } from './ports.js';
import type { ContainerEvent, ContainerEventType, ContainerMeta, ContainerState, ContainerStatusRecord, ContainerView } from './types.js';
import { enforceableResources, limitControllers, type LimitPolicy } from '../cgroups/enforceable.js';
import { mergeCriResources, ociResourcesFromCri, type CriLinuxResources } from './resources.js';
import { runExecSync, type ExecSyncResult } from './exec-sync.js';
import { containerPath, applyHostPropagation } from './paths.js';
import { imageVolumeOwner, imageVolumePrefix, isImageVolume, prepareImageVolumes } from './image-volumes.js';
import { grantSearch } from '../util/search-path.js';
import { validateCriResources } from '../cgroups/validate.js';
import { allHierarchyDirs, removeCgroupDirs } from '../cgroups/pod.js';
import { MAX_NAME, validateKeyValues } from '../sandbox/validate.js';

export interface ContainerServiceDeps {
  config: Config;
  logger: Logger;
  syscalls: Syscalls;
  images: ImagePort;
  sandboxes: SandboxPort;
  cgroups: CgroupInfo;
  /** Default: every configured handler, probed (OciRuntimes.create). */
  runtimes?: OciRuntimes;
  /** Default: runtime/oci/spec. */
  spec?: SpecPort;
  /** Default: createWithConmon; tests pass a fake monitor. */
  conmon?: (o: ConmonCreateOptions) => Promise<ConmonCreateResult>;
  /** Start-phase histograms; optional so tests can leave it out. */
  metrics?: Metrics;
}

/** CreateContainer's request as proto-loader gives it. */
export interface CreateContainerInput {
  pod_sandbox_id: string;
  config: any;
  sandbox_config?: any;
}

export interface ContainerFilterInput {
  id?: string;
  state?: { state?: string } | null;
  pod_sandbox_id?: string;
  label_selector?: Record<string, string>;
}

let epochNs = BigInt(Date.now()) * 1_000_000n - process.hrtime.bigint();
/**
 * Wall-clock ns since the epoch with sub-ms resolution (the kubelet orders containers by
 * these), re-anchored to the wall clock when the two drift apart (NTP steps, long uptimes).
 */
export function nowNs(): string {
  const hr = process.hrtime.bigint();
  const wall = BigInt(Date.now()) * 1_000_000n;
  let t = epochNs + hr;
  if (t - wall > 50_000_000n || wall - t > 50_000_000n) {
    epochNs = wall - hr;
    t = wall;
  }
  return t.toString();
}
function msToNs(ms: number): string {
  return (BigInt(Math.floor(ms * 1000)) * 1000n).toString();
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

async function exists(p: string): Promise<boolean> {
  try {
    await fs.access(p);
    return true;
  } catch {
    return false;
  }
}

/**
 * What CreateContainer checks before anything is reserved or written: the name, the log path
 * (a file under the pod's log directory, never outside it), the process' strings (no NUL: exec
 * cannot carry it), labels and annotations, the stop signal and the resources.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- the container RPC boundary's config (proto-loader shape)
export function validateContainerConfig(cfg: any): void {
  const name = String(cfg.metadata?.name ?? '');
  if (/[\0\n/]/.test(name) || name.length > MAX_NAME) throw new InvalidArgumentError(`container name ${JSON.stringify(name.slice(0, 64))} must be at most ${MAX_NAME} bytes without "/", NUL or newline`);
  const logPath = String(cfg.log_path ?? '');
  if (logPath) {
    const parts = logPath.split('/');
    if (isAbsolute(logPath) || logPath.includes('\0') || logPath.length > 4096 || parts.some((p) => p === '..' || Buffer.byteLength(p) > 255) || ['', '.'].includes(parts[parts.length - 1]!)) {
      throw new InvalidArgumentError(`log_path ${JSON.stringify(logPath.slice(0, 200))} must name a file under the pod's log directory (relative, no "..", no NUL)`);
    }
  }
  const strings: Array<[string, unknown]> = [
    ['command', cfg.command], ['args', cfg.args], ['working_dir', cfg.working_dir],
    ['envs', (cfg.envs ?? []).flatMap((e: { key?: string; value?: string }) => [e.key ?? '', e.value ?? ''])],
  ];
  for (const [field, v] of strings) {
    const xs = Array.isArray(v) ? v : v === undefined || v === null ? [] : [v];
    if (xs.some((x) => String(x).includes('\0'))) throw new InvalidArgumentError(`container ${JSON.stringify(name)}: ${field} contains NUL`);
  }
  validateKeyValues(cfg.labels, 'container labels');
  validateKeyValues(cfg.annotations, 'container annotations');
  const sig = signalName(cfg.stop_signal);
  if (sig && !(sig in osConstants.signals) && !/^SIGRTM(IN|AX)([+-]\d+)?$/.test(sig)) throw new InvalidArgumentError(`stop_signal ${JSON.stringify(cfg.stop_signal)} is not a signal`);
  validateCriResources(cfg.linux?.resources, 'container resources');
}

/** How often the conmons of live containers are looked at. */
const MONITOR_SWEEP_MS = 5_000;

/** True while pid is a conmon (a recycled pid running something else is not). */
async function isConmon(pid: number): Promise<boolean> {
  try {
    return (await fs.readFile(`/proc/${pid}/comm`, 'utf8')).trim() === 'conmon';
  } catch {
    return false;
  }
}

function signalName(s: string | undefined | null): string | undefined {
  if (!s) return undefined;
  const t = String(s).trim().toUpperCase();
  if (!t || t === 'SIGNAL_RUNTIME_DEFAULT') return undefined;
  const bare = t.replace(/^SIGNAL_/, '');
  if (/^\d+$/.test(bare)) {
    const n = Number(bare);
    return Object.entries(osConstants.signals).find(([, v]) => v === n)?.[0] ?? bare;
  }
  // CRI spells SIGRTMAX-14 as SIGRTMAXMINUS14
  return bare.replace(/MINUS/, '-').replace(/PLUS/, '+').replace(/^(?!SIG)/, 'SIG');
}

export class ContainerService {
  private readonly names = new NameIndex();
  private readonly creating = new Map<string, Promise<string>>();
  /** Ids being created (not yet in the store): their exit files are not strays. */
  private readonly pending = new Set<string>();
  private readonly specs = new Map<string, OciSpec>();
  private readonly exitWaiters = new Map<string, Array<() => void>>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly listeners: Array<(e: ContainerEvent) => void> = [];
  private readonly starting = new Set<string>();
  private readonly stopDeferred = new Set<string>();
  private readonly exitDir: string;
  private readonly socketDir: string;
  private readonly watcher: ExitWatcher;
  private closed = false;

  private constructor(
    private readonly deps: ContainerServiceDeps & { runtimes: OciRuntimes; spec: SpecPort },
    private readonly store: ObjectStore<ContainerMeta, ContainerStatusRecord>,
  ) {
    this.exitDir = join(deps.config.state_dir, 'exits');
    this.socketDir = join(deps.config.state_dir, 'attach');
    this.watcher = new ExitWatcher(this.exitDir, (rec) => this.onExit(rec).catch((err) => this.log.warn(`container ${rec.id}: handling exit: ${errorMessage(err)}`)));
  }

  private get log(): Logger { return this.deps.logger; }
  private get images(): ImagePort { return this.deps.images; }

  static async create(deps: ContainerServiceDeps): Promise<ContainerService> {
    const runtimes = deps.runtimes ?? await OciRuntimes.create(deps.config, deps.cgroups, deps.logger);
    const spec = deps.spec ?? realSpecBuilder;
    const store = new ObjectStore<ContainerMeta, ContainerStatusRecord>(join(deps.config.root_dir, 'containers'), 'container');
    const svc = new ContainerService({ ...deps, runtimes, spec }, store);
    await svc.recover();
    return svc;
  }

  /** The default handler after probing (the lead's Runtime.defaultHandler). */
  get defaultHandler(): string { return this.deps.runtimes.defaultHandler; }
  get runtimes(): OciRuntimes { return this.deps.runtimes; }

  onEvent(fn: (e: ContainerEvent) => void): () => void {
    this.listeners.push(fn);
    return () => {
      const i = this.listeners.indexOf(fn);
      if (i >= 0) this.listeners.splice(i, 1);
    };
  }

  private emit(type: ContainerEventType, e: Entry<ContainerMeta, ContainerStatusRecord>): void {
    const ev: ContainerEvent = { type, containerId: e.id, podId: e.meta.podId, at: nowNs() };
    for (const l of this.listeners) {
      try { l(ev); } catch (err) { this.log.warn(`container event listener: ${errorMessage(err)}`); }
    }
  }

  /** Resolves once the record deletions started in the background so far are done. */
  async settled(): Promise<void> {
    await this.store.settled();
  }

  /** Stops the exit watcher. Containers and their conmons keep running. */
  async close(): Promise<void> {
    this.closed = true;
    if (this.monitorSweep) clearInterval(this.monitorSweep);
    this.watcher.close();
    await this.store.settled();
  }

  // ---- dead monitors -------------------------------------------------------------------

  private monitorSweep: NodeJS.Timeout | undefined;

  /**
   * conmon is the only one who can report a container's exit. Killed (an OOM kill of the
   * monitor, an operator's mistake), it leaves a container that is RUNNING for ever: its exit
   * would never be written. Every MONITOR_SWEEP_MS each live container's conmon is looked at;
   * one found gone without an exit file gets its container killed through the runtime and
   * reported exited with 255, as containerd does for a dead shim, so that the kubelet restarts
   * it under a monitor again.
   */
  private startMonitorSweep(): void {
    this.monitorSweep = setInterval(() => void this.sweepMonitors().catch((err) => this.log.warn(`checking conmons: ${errorMessage(err)}`)), MONITOR_SWEEP_MS);
    this.monitorSweep.unref();
  }

  /** One pass of the sweep; returns the ids found without a monitor. */
  async sweepMonitors(): Promise<string[]> {
    const orphaned: string[] = [];
    for (const e of this.store.list()) {
      if ((e.status.state !== 'RUNNING' && e.status.state !== 'CREATED') || !e.status.conmonPid || this.pending.has(e.id)) continue;
      if (await isConmon(e.status.conmonPid)) continue;
      await this.watcher.check(e.id); // it may have written the exit just before it went
      if ((e.status.state as ContainerState) === 'EXITED') continue;
      orphaned.push(e.id);
      await this.locked(e.id, () => this.reapUnmonitored(e));
    }
    return orphaned;
  }

  /** Kills a container whose conmon is gone and reports it exited 255 (no one is left to write its exit). */
  private async reapUnmonitored(e: Entry<ContainerMeta, ContainerStatusRecord>): Promise<void> {
    if ((e.status.state as ContainerState) === 'EXITED' || !this.store.get(e.id)) return;
    this.log.warn(`container ${e.id}: its conmon (pid ${e.status.conmonPid}) is gone; killing the container and reporting it exited`);
    const rt = this.runtimeOf(e);
    await rt.kill(e.id, 'SIGKILL', true).catch(() => undefined);
    await rt.delete(e.id, true).catch((err) => this.log.warn(`container ${e.id}: delete after its conmon died: ${errorMessage(err)}`));
    await this.markExited(e, 255, Date.now());
    await this.store.update(e.id, (s) => ({ ...s, message: 'the container monitor (conmon) died; the container was killed' }));
  }

  // ---- serialisation ------------------------------------------------------------------

  private locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    const prev = this.locks.get(id) ?? Promise.resolve();
    const run = prev.catch(() => undefined).then(fn);
    this.locks.set(id, run);
    void run.catch(() => undefined).finally(() => { if (this.locks.get(id) === run) this.locks.delete(id); });
    return run;
  }

  // ---- lookups ------------------------------------------------------------------------

  private entry(idOrPrefix: string): Entry<ContainerMeta, ContainerStatusRecord> {
    return this.store.resolve(idOrPrefix);
  }

  private runtimeOf(e: Entry<ContainerMeta, ContainerStatusRecord>): OciRuntime {
    return this.deps.runtimes.get(e.meta.runtimeHandler);
  }

  /** The handler's sealed copy when it still runs the binary the container was made with. */
  private runtimeExecPath(e: Entry<ContainerMeta, ContainerStatusRecord>): string {
    try {
      const rt = this.runtimeOf(e);
      return rt.handler.path === e.meta.runtimePath ? rt.directPath : e.meta.runtimePath;
    } catch {
      return e.meta.runtimePath;
    }
  }

  private view(e: Entry<ContainerMeta, ContainerStatusRecord>): ContainerView {
    const m = e.meta;
    const s = e.status;
    return {
      id: e.id, podId: m.podId, name: m.name, metadata: m.metadata, state: s.state, pid: s.pid, conmonPid: s.conmonPid,
      runtimeHandler: m.runtimeHandler, runtimePath: m.runtimePath, runtimeExecPath: this.runtimeExecPath(e), runtimeRoot: m.runtimeRoot,
      bundleDir: m.bundleDir, rootfs: m.rootfs, logPath: m.logPath, spec: this.specs.get(e.id),
      attachSocketPath: m.attachSocketPath, ctlFifoPath: m.ctlFifoPath, user: m.user,
      tty: !!m.config?.tty, stdin: !!m.config?.stdin, stdinOnce: !!m.config?.stdin_once,
      imageId: m.image.id, labels: m.labels, annotations: m.annotations,
      createdAt: m.createdAt, startedAt: s.startedAt, finishedAt: s.finishedAt, exitCode: s.exitCode,
    };
  }

  /** A container by id or unique prefix; NotFound otherwise. */
  get(idOrPrefix: string): ContainerView {
    return this.view(this.entry(idOrPrefix));
  }

  find(idOrPrefix: string): ContainerView | undefined {
    const e = this.store.find(idOrPrefix);
    return e ? this.view(e) : undefined;
  }

  listViews(): ContainerView[] {
    return this.store.list().map((e) => this.view(e));
  }

  /** Container ids using an image, as their own or as an image volume (ImageService.setInUse). */
  containersUsingImage(imageId: string): string[] {
    return this.store.list()
      .filter((e) => e.meta.image.id === imageId || e.meta.imageVolumes?.some((v) => v.imageId === imageId))
      .map((e) => e.id);
  }

  // ---- create ------------------------------------------------------------------------

  /**
   * CreateContainer: returns the new id (or the id of the same request still in flight, or of
   * the same request's container not yet started).
   * `_signal` is deliberately not honoured: when the kubelet's call times out it retries,
   * and the retry joins this create and gets its id instead of racing a half-undone one.
   */
  async create(req: CreateContainerInput, _signal?: AbortSignal): Promise<string> {
    const cfg = req.config;
    const md = cfg?.metadata;
    if (!md?.name) throw new InvalidArgumentError('container config: metadata.name is required');
    if (!cfg?.image?.image) throw new InvalidArgumentError(`container "${md.name}": config.image.image is required`);
    if (!req.pod_sandbox_id) throw new InvalidArgumentError('pod_sandbox_id is required');
    validateContainerConfig(cfg);
    const sb = this.sandbox(req.pod_sandbox_id);
    if (sb.state !== 'READY') throw new FailedPreconditionError(`pod sandbox ${sb.id} is not ready (${sb.state})`);
    const pm = sb.config?.metadata ?? {};
    const name = `k8s_${md.name}_${pm.name ?? ''}_${pm.namespace ?? ''}_${pm.uid ?? ''}_${Number(md.attempt ?? 0)}`;
    const inflight = this.creating.get(name);
    if (inflight) return inflight;
    // A retry of a create that completed while the caller gave up (its deadline passed, or the
    // daemon restarted under it) gets that container, as a retried RunPodSandbox gets its pod:
    // the kubelet retries with the same name and would otherwise see the name reserved until it
    // starts over with the next attempt. Once started, the name is the container's for good.
    const id = newId();
    const holder = this.names.reserve(name, id);
    if (holder) {
      const e = this.store.get(holder);
      if (e && e.status.state === 'CREATED' && e.meta.podId === sb.id) return holder;
      throw new AlreadyExistsError(`container name "${name}" is already reserved for container ${holder}`);
    }
    this.pending.add(id);
    const p = this.doCreate(id, name, sb, req)
      .catch((err) => { this.names.release(name, id); throw err; })
      .finally(() => { this.creating.delete(name); this.pending.delete(id); });
    this.creating.set(name, p);
    return p;
  }

  private sandbox(idOrPrefix: string): SandboxViewLike {
    const sb = this.deps.sandboxes.get(idOrPrefix);
    if (!sb) throw new NotFoundError(`pod sandbox "${idOrPrefix}" not found`);
    return sb;
  }

  private resolveImage(ref: string): ImageRecordLike {
    const img = this.images.resolve(ref);
    if (!img) throw new NotFoundError(`image "${ref}" not found`);
    return img;
  }

  private async doCreate(id: string, name: string, sb: SandboxViewLike, req: CreateContainerInput): Promise<string> {
    const cfg = req.config;
    const timer = new PhaseTimer();
    const mark = (name: string) => timer.mark(name);
    const stack = new CleanupStack((e) => this.log.warn(`container ${id}: undoing ${e.step}: ${errorMessage(e.error)}`));
    return stack.guard(async () => {
      const imageRef: string = cfg.image.image;
      const image = this.resolveImage(imageRef);
      const rt = this.deps.runtimes.get(sb.runtimeHandler);
      const dir = this.store.path(id);
      const rootfs = join(dir, 'rootfs');

      await fs.mkdir(dir, { recursive: true, mode: 0o700 });
      stack.push('container directory', () => this.removeDir(dir, rootfs));
      mark('prepare');
      const userns = sb.namespaces?.user ? sb.namespaceModes?.userns : undefined;
      if (sb.namespaces?.user && !userns) throw new FailedPreconditionError(`pod sandbox ${sb.id}: the maps of its user namespace are unknown`);
      const idmap = userns ? { usernsPath: sb.namespaces.user!, uid: userns.uids[0]!.hostId, gid: userns.gids[0]!.hostId } : undefined;
      await this.images.prepareRootfs(id, image.id, rootfs, idmap ? { idmap } : undefined);
      stack.push('rootfs', () => this.images.releaseRootfs(id, rootfs));
      if (idmap) await grantSearch(rootfs);
      mark('rootfs');
      const volumes = await prepareImageVolumes(id, dir, cfg.mounts ?? [], this.images, idmap, (rec) =>
        stack.push(`image volume at ${rec.containerPath}`, () => this.images.releaseImageVolume(rec.key)));
      if (volumes.records.length) mark('image volumes');

      const logDir: string = sb.config?.log_directory ?? '';
      const criLogPath = logDir && cfg.log_path ? join(logDir, cfg.log_path) : '';
      const logPath = criLogPath || join(dir, 'ctr.log');
      await fs.mkdir(dirname(logPath), { recursive: true, mode: 0o755 });

      const cgroupsPath = containerPath(id, sb.cgroupParent, this.deps.cgroups.driver);
      const targetPidNs = this.targetPidNs(cfg);
      const built = await this.deps.spec.buildContainerSpec({
        containerId: id,
        config: volumes.records.length ? { ...cfg, mounts: volumes.mounts } : cfg,
        sandbox: {
          id: sb.id, config: sb.config, namespaces: sb.namespaces ?? {}, hostname: sb.hostname, files: sb.files ?? {}, cgroupParent: sb.cgroupParent,
          ...(userns ? { idMaps: userns } : {}),
        },
        image: { id: image.id, config: image.config },
        rootfs,
        cgroupsPath,
        cgroupMode: this.deps.cgroups.mode,
        limitPolicy: this.limitPolicy(),
        targetPidNs,
      });
      for (const w of built.warnings ?? []) this.log.warn(`container ${id} (${name}): ${w}`);
      const spec = built.spec;
      await applyHostPropagation(built.hostPropagation, this.deps.syscalls, this.log);
      await writeFileAtomic(join(dir, 'config.json'), JSON.stringify(spec));
      mark('spec');

      // The runtime may leave state behind even when create fails; a create the kernel refused
      // (a limit it would not take) leaves the container's cgroup in every hierarchy, with no
      // runtime state to delete it by.
      stack.push('runtime state', async () => {
        await rt.delete(id, true);
        await this.watcher.forget(id);
        if (this.deps.cgroups.driver === 'cgroupfs') await removeCgroupDirs(await allHierarchyDirs(this.deps.cgroups, cgroupsPath));
      });
      stack.push('attach socket link', () => fs.rm(join(this.socketDir, id), { force: true, recursive: true }));
      const monitor = this.deps.conmon ?? createWithConmon;
      const res = await monitor({
        conmonPath: this.deps.config.conmon,
        id,
        name,
        bundleDir: dir,
        runtime: rt.handler,
        exitDir: this.exitDir,
        persistDir: dir,
        socketDir: this.socketDir,
        cgroup: this.deps.config.conmon_cgroup ? { path: this.deps.config.conmon_cgroup, info: this.deps.cgroups } : undefined,
        systemdCgroup: this.deps.cgroups.driver === 'systemd',
        timeoutMs: 120_000,
        containerPidFile: join(dir, 'pidfile'),
        conmonPidFile: join(dir, 'conmon.pid'),
        logPath,
        logSizeMax: this.deps.config.log_size_max,
        stdin: !!cfg.stdin,
        stdinOnce: !!cfg.stdin_once,
        terminal: !!cfg.tty,
      });

      mark('conmon+create');
      const u = spec.process?.user ?? { uid: 0, gid: 0 };
      const meta: ContainerMeta = {
        id,
        podId: sb.id,
        name,
        metadata: { name: cfg.metadata.name, attempt: Number(cfg.metadata.attempt ?? 0) },
        config: cfg,
        image: { spec: cfg.image, id: image.id, ref: image.repoDigests[0] ?? image.id, name: this.imageName(imageRef, image) },
        runtimeHandler: rt.name,
        runtimePath: rt.handler.path,
        runtimeRoot: rt.handler.root,
        bundleDir: dir,
        rootfs,
        logPath,
        criLogPath: criLogPath || logPath,
        attachSocketPath: join(this.socketDir, id, 'attach'),
        ctlFifoPath: join(dir, 'ctl'),
        user: { uid: u.uid ?? 0, gid: u.gid ?? 0, groups: u.additionalGids ?? [] },
        stopSignal: signalName(cfg.stop_signal) ?? signalName(image.config?.config?.StopSignal) ?? 'SIGTERM',
        labels: cfg.labels ?? {},
        annotations: cfg.annotations ?? {},
        createdAt: nowNs(),
        ...(volumes.records.length ? { imageVolumes: volumes.records } : {}),
      };
      const status: ContainerStatusRecord = {
        state: 'CREATED', pid: res.pid, conmonPid: res.conmonPid ?? 0, startedAt: '0', finishedAt: '0',
        exitCode: 0, reason: '', message: '', resources: cfg.linux?.resources ?? null,
      };
      timer.mark('persist');
      status.startPhases = timer.toRecord();
      const e = await this.store.create(id, meta, status);
      this.specs.set(id, spec);
      this.names.reserve(name, id);
      this.log.debug(`container ${id} (${name}) created in ${timer.totalMs.toFixed(1)} ms with ${rt.name} (${timer.describe()})`);
      reportPhases(timer, { kind: 'container', id, name, metrics: this.deps.metrics, logger: this.log, slowMs: this.deps.config.slow_start_threshold_ms });
      this.emit('CONTAINER_CREATED_EVENT', e);
      // An exit that raced the store write (killed right after create) is picked up now.
      void this.watcher.check(id);
      return id;
    });
  }

  private imageName(requested: string, img: ImageRecordLike): string {
    const bare = img.id.replace(/^sha256:/, '');
    const isId = requested === img.id || (requested.length >= 6 && bare.startsWith(requested.replace(/^sha256:/, '')));
    return isId ? img.repoTags[0] ?? requested : requested;
  }

  private targetPidNs(cfg: any): string | undefined {
    const ns = cfg?.linux?.security_context?.namespace_options;
    if (ns?.pid !== 'TARGET') return undefined;
    if (!ns.target_id) throw new InvalidArgumentError('pid namespace mode TARGET needs target_id');
    const t = this.store.find(ns.target_id);
    if (!t) throw new NotFoundError(`target container "${ns.target_id}" of the pid namespace not found`);
    if (t.status.state !== 'RUNNING' && t.status.state !== 'CREATED') {
      throw new FailedPreconditionError(`target container ${t.id} of the pid namespace is ${t.status.state}`);
    }
    return `/proc/${t.status.pid}/ns/pid`;
  }

  /** Deletes a container directory, but never through a rootfs that is still mounted. */
  private async removeDir(dir: string, rootfs: string): Promise<void> {
    if (await isMountPoint(rootfs)) {
      try {
        this.deps.syscalls.umount2(rootfs, 0x2 /* MNT_DETACH */);
      } catch (err) {
        throw new InternalError(`rootfs ${rootfs} is still mounted and could not be unmounted: ${errorMessage(err)}`);
      }
      if (await isMountPoint(rootfs)) throw new InternalError(`rootfs ${rootfs} is still mounted; not deleting ${dir}`);
    }
    await fs.rm(dir, { recursive: true, force: true });
  }

  // ---- start -------------------------------------------------------------------------

  async start(idOrPrefix: string): Promise<void> {
    const e = this.entry(idOrPrefix);
    await this.locked(e.id, async () => {
      if (e.status.state !== 'CREATED') {
        throw new FailedPreconditionError(`container ${e.id} is ${e.status.state}, only a CREATED container can be started`);
      }
      const t0 = Date.now();
      // An exit seen while the start is under way is announced after the start.
      this.starting.add(e.id);
      try {
        try {
          await this.runtimeOf(e).start(e.id);
        } catch (err) {
          // A failed start may leave the init process behind; its exit file then ends it.
          throw new InternalError(`starting container ${e.id}: ${errorMessage(err)}`, { cause: err });
        }
        const at = nowNs();
        const startMs = Date.now() - t0;
        this.log.debug(`container ${e.id} started in ${startMs} ms`);
        this.deps.metrics?.phaseDuration.observe({ kind: 'container', phase: 'start' }, startMs / 1000);
        await this.store.update(e.id, (s) => {
          const startPhases = { ...(s.startPhases ?? {}), start: startMs };
          if (s.state === 'CREATED') return { ...s, state: 'RUNNING', startedAt: at, startPhases };
          // it already exited: it cannot have started after it finished
          const started = s.startedAt !== '0' ? s.startedAt : BigInt(s.finishedAt) > 0n && BigInt(s.finishedAt) < BigInt(at) ? s.finishedAt : at;
          return { ...s, startedAt: started, startPhases };
        });
        this.emit('CONTAINER_STARTED_EVENT', e);
      } finally {
        this.starting.delete(e.id);
        if (this.stopDeferred.delete(e.id)) this.emit('CONTAINER_STOPPED_EVENT', e);
      }
    });
  }

  // ---- exits -------------------------------------------------------------------------

  private async onExit(rec: ExitRecord): Promise<void> {
    const e = this.store.get(rec.id);
    if (!e) {
      // conmon of a failed create, or of a container removed meanwhile: a stray file.
      if (!this.pending.has(rec.id)) await this.watcher.forget(rec.id);
      return;
    }
    await this.markExited(e, rec.exitCode, rec.finishedAtMs);
  }

  private async markExited(e: Entry<ContainerMeta, ContainerStatusRecord>, exitCode: number, finishedAtMs: number): Promise<void> {
    if (e.status.state !== 'EXITED') {
      const oom = await this.oomKilled(e, exitCode);
      const reason = oom ? 'OOMKilled' : exitCode === 0 ? 'Completed' : 'Error';
      // ContainerStatus.message is the runtime's own explanation. The termination message is
      // not: the kubelet reads the file behind terminationMessagePath itself (or the log tail
      // for FallbackToLogsOnError) and appends it to this field, so copying it here made a
      // pod report "DONE: DONE" where it wrote "DONE".
      const message = '';
      let changed = false;
      await this.store.update(e.id, (s) => {
        if (s.state === 'EXITED') return s;
        changed = true;
        // The exit file's mtime comes from the kernel's coarse clock (a few ms behind ours):
        // never let a container finish before it started.
        const mtime = msToNs(finishedAtMs);
        const finishedAt = s.startedAt !== '0' && BigInt(mtime) < BigInt(s.startedAt) ? s.startedAt : mtime;
        return { ...s, state: 'EXITED', exitCode, finishedAt, reason, message };
      });
      if (changed) {
        this.log.debug(`container ${e.id} exited with ${exitCode} (${reason})`);
        if (this.starting.has(e.id)) this.stopDeferred.add(e.id);
        else this.emit('CONTAINER_STOPPED_EVENT', e);
      }
    }
    const ws = this.exitWaiters.get(e.id);
    this.exitWaiters.delete(e.id);
    for (const w of ws ?? []) w();
  }

  /** conmon's oom mark, else the container cgroup's own OOM-kill counter. */
  private async oomKilled(e: Entry<ContainerMeta, ContainerStatusRecord>, exitCode: number): Promise<boolean> {
    if (await exists(join(e.meta.bundleDir, 'oom'))) return true;
    if (exitCode !== 137) return false;
    const cg = this.specs.get(e.id)?.linux?.cgroupsPath;
    if (!cg || this.deps.cgroups.driver !== 'cgroupfs') return false;
    const { mode, root } = this.deps.cgroups;
    const file = mode === 'v2' ? join(root, cg, 'memory.events') : join(root, 'memory', cg, 'memory.oom_control');
    const text = await fs.readFile(file, 'utf8').catch(() => '');
    const m = /^oom_kill (\d+)$/m.exec(text);
    return !!m && Number(m[1]) > 0;
  }

  /** Resolves true once the container is EXITED, false after ms. */
  private async waitExit(e: Entry<ContainerMeta, ContainerStatusRecord>, ms: number, signal?: AbortSignal): Promise<boolean> {
    const deadline = Date.now() + ms;
    while (e.status.state !== 'EXITED') {
      const left = deadline - Date.now();
      if (left <= 0 || signal?.aborted) return false;
      await new Promise<void>((resolve) => {
        const t = setTimeout(done, Math.min(left, 250));
        function done() { clearTimeout(t); resolve(); }
        const list = this.exitWaiters.get(e.id) ?? [];
        list.push(done);
        this.exitWaiters.set(e.id, list);
      });
      // Backstop for a coalesced or missed inotify event.
      if ((e.status.state as ContainerState) !== 'EXITED') await this.watcher.check(e.id);
    }
    return true;
  }

  // ---- stop --------------------------------------------------------------------------

  /**
   * StopContainer: the stop signal, SIGKILL after timeoutSec (at once for 0); resolves when
   * the container has exited. Not serialised with other calls on purpose: the kubelet
   * follows a stop with a long grace period by one with 0 to cut it short.
   */
  async stop(idOrPrefix: string, timeoutSec: number, signal?: AbortSignal): Promise<void> {
    const e = this.store.find(idOrPrefix);
    if (!e) return;
    if (e.status.state === 'EXITED') return;
    const rt = this.runtimeOf(e);
    if (e.status.state === 'UNKNOWN') {
      await rt.delete(e.id, true).catch((err) => this.log.warn(`container ${e.id}: delete: ${errorMessage(err)}`));
      await this.markExited(e, 255, Date.now());
      return;
    }
    // No conmon, no exit file: waiting for one would last the whole timeout and then some.
    if (e.status.conmonPid && !(await isConmon(e.status.conmonPid))) {
      await this.watcher.check(e.id);
      if ((e.status.state as ContainerState) !== 'EXITED') await this.reapUnmonitored(e);
      return;
    }
    if (timeoutSec > 0) {
      const sig = e.meta.stopSignal;
      const before = await signalState(e.status.pid, sig);
      const sent = await rt.kill(e.id, sig);
      this.log.debug(`container ${e.id}: ${sig} ${sent ? 'sent' : 'not sent'} to pid ${e.status.pid} (${before ? `${before.exe}, ${before.caught ? 'has a handler' : 'no handler yet'}` : 'gone'})`);
      const redeliver = sent && before ? this.redeliverIfDropped(e, sig, before, timeoutSec * 1000) : undefined;
      const exited = await this.waitExit(e, sent ? timeoutSec * 1000 : 2000, signal);
      redeliver?.abort();
      if (exited) return;
    }
    // In a pid namespace it does not own (the pod's, another container's) the init's death
    // does not take its children along: kill everything in the container's cgroup.
    const sharedPidNs = !!this.specs.get(e.id)?.linux?.namespaces?.some((n) => n.type === 'pid' && n.path);
    await rt.kill(e.id, 'SIGKILL', sharedPidNs);
    if (await this.waitExit(e, 10_000, signal)) return;
    // conmon itself may be gone (killed): ask the runtime instead of waiting for a file.
    const st = await rt.state(e.id).catch(() => undefined);
    if (!st || st.status === 'stopped') {
      const persisted = await readExitFile(join(e.meta.bundleDir, 'exit'), e.id);
      await this.markExited(e, persisted?.exitCode ?? 137, persisted?.finishedAtMs ?? Date.now());
      return;
    }
    if (signal?.aborted) throw new CancelledError(`stopping container ${e.id}: ${errorMessage(signal.reason)}`);
    throw new InternalError(`container ${e.id} did not exit after SIGKILL (runtime says ${st.status})`);
  }

  /**
   * The init of a pid namespace only gets the signals it has a handler for. A stop signal
   * sent right after StartContainer is lost twice over: before the program installed its
   * handler the kernel drops it, and before the runtime's init has exec'd the program the
   * runtime's init gets it, not the program. Watch the process: once the program (the same
   * executable as at the send only if it had no handler then) has a handler, send it again.
   */
  private redeliverIfDropped(e: Entry<ContainerMeta, ContainerStatusRecord>, sig: string, before: SignalState, ms: number): AbortController {
    const ac = new AbortController();
    const end = Date.now() + ms;
    void (async () => {
      while (!ac.signal.aborted && Date.now() < end && e.status.state !== 'EXITED') {
        const now = await signalState(e.status.pid, sig);
        if (!now) return;
        const dropped = !before.caught || now.exe !== before.exe;
        if (!dropped) return; // it reached a handler of the program
        if (now.caught) {
          if (!ac.signal.aborted) await this.runtimeOf(e).kill(e.id, sig).catch(() => undefined);
          return;
        }
        await sleep(100);
      }
    })();
    return ac;
  }

  async stopAllInPod(podId: string, timeoutSec: number): Promise<void> {
    const live = this.store.list().filter((e) => e.meta.podId === podId && e.status.state !== 'EXITED');
    await Promise.all(live.map((e) => this.stop(e.id, timeoutSec)));
  }

  // ---- remove ------------------------------------------------------------------------

  /** RemoveContainer: kills a live one; removes all but the CRI log; unknown ids succeed. */
  async remove(idOrPrefix: string): Promise<void> {
    const e = this.store.find(idOrPrefix);
    if (!e) return;
    await this.locked(e.id, async () => {
      if (!this.store.get(e.id)) return;
      if (e.status.state !== 'EXITED') await this.stop(e.id, 0);
      await this.runtimeOf(e).delete(e.id, true);
      await this.images.releaseRootfs(e.id, e.meta.rootfs);
      await this.releaseImageVolumes(e.id);
      await this.watcher.forget(e.id);
      await fs.rm(join(this.socketDir, e.id), { force: true, recursive: true });
      await this.removeDir(e.meta.bundleDir, e.meta.rootfs);
      await this.store.remove(e.id);
      this.specs.delete(e.id);
      this.names.release(e.meta.name, e.id);
      this.emit('CONTAINER_DELETED_EVENT', e);
    });
  }

  async removeAllInPod(podId: string): Promise<void> {
    const all = this.store.list().filter((e) => e.meta.podId === podId);
    await Promise.all(all.map((e) => this.remove(e.id)));
  }

  // ---- status and list ---------------------------------------------------------------

  /** ContainerStatus's status message (proto-loader shape) and, when verbose, its info map. */
  status(idOrPrefix: string, verbose = false): { status: any; info: Record<string, string> } {
    const e = this.entry(idOrPrefix);
    const m = e.meta;
    const s = e.status;
    const status = {
      id: e.id,
      metadata: { name: m.metadata.name, attempt: m.metadata.attempt },
      state: criState(s.state),
      created_at: m.createdAt,
      started_at: s.startedAt,
      finished_at: s.finishedAt,
      exit_code: s.exitCode,
      image: { ...(m.image.spec ?? {}), image: m.image.name },
      image_ref: m.image.ref,
      image_id: m.image.id,
      reason: s.reason,
      message: s.message,
      labels: m.labels,
      annotations: m.annotations,
      mounts: statusMounts(m),
      log_path: m.criLogPath,
      resources: s.resources ? { linux: s.resources } : null,
      user: { linux: { uid: String(m.user.uid), gid: String(m.user.gid), supplemental_groups: m.user.groups.map(String) } },
      stop_signal: criSignal(m.stopSignal),
    };
    const info: Record<string, string> = {};
    if (verbose) {
      info.info = JSON.stringify({
        sandboxID: m.podId,
        pid: s.pid,
        conmonPid: s.conmonPid,
        runtimeHandler: m.runtimeHandler,
        runtimeType: 'oci',
        runtimeOptions: { binaryName: m.runtimePath, root: m.runtimeRoot },
        bundle: m.bundleDir,
        rootfs: m.rootfs,
        name: m.name,
        config: m.config,
        runtimeSpec: this.specs.get(e.id),
        startPhasesMs: s.startPhases ?? {},
      });
    }
    return { status, info };
  }

  list(filter?: ContainerFilterInput | null): any[] {
    let entries = this.store.list();
    if (filter?.id) entries = entries.filter((e) => e.id.startsWith(filter.id!));
    if (filter?.state?.state) entries = entries.filter((e) => criState(e.status.state) === filter.state!.state);
    if (filter?.pod_sandbox_id) entries = entries.filter((e) => e.meta.podId.startsWith(filter.pod_sandbox_id!));
    const sel = filter?.label_selector ?? {};
    const keys = Object.keys(sel);
    if (keys.length) entries = entries.filter((e) => keys.every((k) => e.meta.labels[k] === sel[k]));
    return entries.map((e) => ({
      id: e.id,
      pod_sandbox_id: e.meta.podId,
      metadata: { name: e.meta.metadata.name, attempt: e.meta.metadata.attempt },
      image: { ...(e.meta.image.spec ?? {}), image: e.meta.image.name },
      image_ref: e.meta.image.ref,
      image_id: e.meta.image.id,
      state: criState(e.status.state),
      created_at: e.meta.createdAt,
      labels: e.meta.labels,
      annotations: e.meta.annotations,
    }));
  }

  // ---- update, log, exec -------------------------------------------------------------

  /** What this host's cgroups can enforce (runtime/cgroups/enforceable.ts); fixed for the daemon's life. */
  private limitPolicy(): LimitPolicy {
    if (!this.limits) {
      const c = this.deps.config.cgroups ?? { unenforceable_limits: 'drop', disable_hugetlb_controller: false };
      this.limits = { controllers: limitControllers(this.deps.cgroups), disableHugetlb: c.disable_hugetlb_controller, unenforceable: c.unenforceable_limits };
    }
    return this.limits;
  }
  private limits: LimitPolicy | undefined;

  /** UpdateContainerResources: `<runtime> update`, then the new values are persisted. */
  async update(idOrPrefix: string, linux: CriLinuxResources | null | undefined): Promise<void> {
    const e = this.entry(idOrPrefix);
    await this.locked(e.id, async () => {
      if (e.status.state !== 'RUNNING' && e.status.state !== 'CREATED') {
        throw new FailedPreconditionError(`container ${e.id} is ${e.status.state}; only a created or running container can be updated`);
      }
      if (!linux) return;
      validateCriResources(linux, `container ${e.id} resources`);
      const warnings: string[] = [];
      await this.runtimeOf(e).update(e.id, enforceableResources(ociResourcesFromCri(linux), this.limitPolicy(), warnings));
      for (const w of warnings) this.log.warn(`container ${e.id}: update: ${w}`);
      await this.store.update(e.id, (s) => ({ ...s, resources: mergeCriResources(s.resources, linux) }));
    });
  }

  /**
   * ReopenContainerLog: "2 0 0\n" on conmon's ctl fifo (message type 2 = reopen the log
   * files); then wait for the new file, so that the kubelet's next rotation check sees it.
   */
  async reopenLog(idOrPrefix: string): Promise<void> {
    const e = this.entry(idOrPrefix);
    if (e.status.state !== 'RUNNING') throw new FailedPreconditionError(`container ${e.id} is ${e.status.state}, not running`);
    let fh;
    try {
      fh = await fs.open(e.meta.ctlFifoPath, constants.O_WRONLY | constants.O_NONBLOCK);
      await fh.write('2 0 0\n');
    } catch (err) {
      throw new InternalError(`reopening the log of container ${e.id}: conmon's control fifo: ${errorMessage(err)}`);
    } finally {
      await fh?.close();
    }
    for (let i = 0; i < 150; i++) {
      if (await exists(e.meta.logPath)) return;
      await sleep(20);
    }
    throw new InternalError(`container ${e.id}: conmon did not reopen ${e.meta.logPath}`);
  }

  /** ExecSync: runs cmd in the container; DeadlineExceeded when timeoutSec passes. */
  async execSync(idOrPrefix: string, cmd: string[], timeoutSec: number, signal?: AbortSignal): Promise<ExecSyncResult> {
    const e = this.entry(idOrPrefix);
    if (!cmd?.length) throw new InvalidArgumentError('exec: cmd must not be empty');
    if (e.status.state !== 'RUNNING') throw new FailedPreconditionError(`container ${e.id} is ${e.status.state}, not running`);
    const spec = this.specs.get(e.id);
    if (!spec) throw new InternalError(`container ${e.id}: its OCI spec is missing`);
    const proc = this.deps.spec.buildExecProcess(spec, cmd, false);
    const tag = randomBytes(6).toString('hex');
    const procPath = join(e.meta.bundleDir, `exec-${tag}.json`);
    const pidFile = join(e.meta.bundleDir, `exec-${tag}.pid`);
    await fs.writeFile(procPath, JSON.stringify(proc), { mode: 0o600 });
    try {
      const { file, args } = this.runtimeOf(e).execArgs(e.id, procPath, pidFile);
      return await runExecSync({ file, args, pidFile, timeoutMs: Math.max(0, timeoutSec) * 1000, cmd, signal });
    } finally {
      await fs.rm(procPath, { force: true });
      await fs.rm(pidFile, { force: true });
    }
  }

  // ---- restart recovery --------------------------------------------------------------

  private async recover(): Promise<void> {
    const { skipped } = await this.store.load();
    for (const id of skipped) await this.cleanupHalfCreated(id);
    for (const e of this.store.list()) {
      this.names.reserve(e.meta.name, e.id);
      try {
        this.specs.set(e.id, JSON.parse(await fs.readFile(join(e.meta.bundleDir, 'config.json'), 'utf8')) as OciSpec);
      } catch (err) {
        this.log.warn(`container ${e.id}: cannot read its OCI spec: ${errorMessage(err)}`);
      }
    }
    await this.releaseOrphanImageVolumes();
    await this.watcher.start(); // reports exits that happened while corral was down
    this.startMonitorSweep();
    for (const e of this.store.list()) {
      if (e.status.state === 'EXITED') continue;
      await this.reconcile(e).catch((err) => this.log.warn(`container ${e.id}: recovering its state: ${errorMessage(err)}`));
    }
    const n = this.store.list().length;
    if (n) this.log.info(`containers: recovered ${n} (${this.store.list().filter((e) => e.status.state === 'RUNNING').length} running)`);
  }

  private async reconcile(e: Entry<ContainerMeta, ContainerStatusRecord>): Promise<void> {
    const persisted = await readExitFile(join(e.meta.bundleDir, 'exit'), e.id);
    if (persisted) return this.markExited(e, persisted.exitCode, persisted.finishedAtMs);
    let st;
    try {
      st = await this.runtimeOf(e).state(e.id);
    } catch (err) {
      if (!isNotFound(err)) throw err;
    }
    if (st?.status === 'running' || st?.status === 'paused') {
      // started just before a crash, before RUNNING was recorded
      if (e.status.state === 'CREATED') {
        await this.store.update(e.id, (s) => s.state === 'CREATED' ? { ...s, state: 'RUNNING', startedAt: nowNs() } : s);
      }
      return;
    }
    if (st?.status === 'created') return;
    if (st?.status === 'stopped') {
      // conmon died without writing the code (killed); the process is gone all the same.
      return this.markExited(e, 255, Date.now());
    }
    await this.store.update(e.id, (s) => s.state === 'EXITED' ? s : { ...s, state: 'UNKNOWN' });
  }

  /** Unmounts every image volume of the container (by key prefix: also those a crashed create left). */
  private async releaseImageVolumes(id: string): Promise<void> {
    for (const key of this.images.imageVolumeKeys(imageVolumePrefix(id))) await this.images.releaseImageVolume(key);
  }

  /** Image volumes whose container is gone (removed while the daemon was down, or never recorded). */
  private async releaseOrphanImageVolumes(): Promise<void> {
    for (const key of this.images.imageVolumeKeys()) {
      const owner = imageVolumeOwner(key);
      if (this.store.get(owner) || this.pending.has(owner)) continue;
      this.log.info(`containers: releasing image volume ${key} of the gone container ${owner}`);
      await this.images.releaseImageVolume(key).catch((err) => this.log.warn(`image volume ${key}: ${errorMessage(err)}`));
    }
  }

  /** A directory without meta.json is a create that crashed: undo what it may have done. */
  private async cleanupHalfCreated(id: string): Promise<void> {
    const dir = this.store.path(id);
    const rootfs = join(dir, 'rootfs');
    this.log.info(`containers: cleaning up the half-created container ${id}`);
    for (const name of this.deps.runtimes.names()) {
      await this.deps.runtimes.get(name).delete(id, true).catch(() => undefined);
    }
    await this.images.releaseRootfs(id, rootfs).catch((err) => this.log.warn(`container ${id}: releasing rootfs: ${errorMessage(err)}`));
    await this.releaseImageVolumes(id).catch((err) => this.log.warn(`container ${id}: ${errorMessage(err)}`));
    await fs.rm(join(this.socketDir, id), { force: true, recursive: true });
    await this.removeDir(dir, rootfs).catch((err) => this.log.warn(`container ${id}: ${errorMessage(err)}`));
  }
}

interface SignalState {
  /** The executable: it changes when the runtime's init execs the container's program. */
  exe: string;
  /** Whether the process has a handler for the signal (SigCgt). */
  caught: boolean;
}

async function signalState(pid: number, sig: string): Promise<SignalState | undefined> {
  const num = /^\d+$/.test(sig) ? Number(sig) : (osConstants.signals as Record<string, number>)[sig.startsWith('SIG') ? sig : `SIG${sig}`];
  if (!pid || !num) return undefined;
  try {
    const [status, exe] = await Promise.all([fs.readFile(`/proc/${pid}/status`, 'utf8'), fs.readlink(`/proc/${pid}/exe`)]);
    const m = /^SigCgt:\s*([0-9a-f]+)$/m.exec(status);
    if (!m) return undefined;
    return { exe, caught: ((BigInt('0x' + m[1]) >> BigInt(num - 1)) & 1n) === 1n };
  } catch {
    return undefined;
  }
}

/**
 * SIGTERM -> SIGNAL_SIGTERM, SIGRTMAX-14 -> SIGNAL_SIGRTMAXMINUS14 (the CRI Signal enum);
 * anything else is reported as the runtime default rather than as a value the enum lacks.
 */
function criSignal(sig: string): string {
  const known = sig in osConstants.signals || /^SIGRT(MIN\+([1-9]|1[0-5])|MAX-([1-9]|1[0-4]))$/.test(sig);
  return known ? `SIGNAL_${sig.replace('-', 'MINUS').replace('+', 'PLUS')}` : 'SIGNAL_RUNTIME_DEFAULT';
}

function criState(s: ContainerState): string {
  return `CONTAINER_${s}`;
}

async function isMountPoint(path: string): Promise<boolean> {
  try {
    const [a, b] = await Promise.all([fs.stat(path), fs.stat(join(path, '..'))]);
    if (a.dev !== b.dev) return true;
    // a bind mount of the same filesystem keeps st_dev: look it up in mountinfo
    const mi = await fs.readFile('/proc/self/mountinfo', 'utf8');
    return mi.split('\n').some((l) => l.split(' ')[4] === path);
  } catch (err) {
    if (isENOENT(err)) return false;
    throw err;
  }
}

/** The mounts as requested; an image volume's image carries the image_ref it resolved to. */
function statusMounts(m: ContainerMeta): any[] {
  const vols = m.imageVolumes ?? [];
  return (m.config?.mounts ?? []).map((x: any) => {
    const v = isImageVolume(x) ? vols.find((r) => r.containerPath === x.container_path) : undefined;
    return v ? { ...x, image: { ...x.image, image_ref: v.imageRef } } : { ...x };
  });
}

const realSpecBuilder: SpecPort = { buildContainerSpec, buildExecProcess };
