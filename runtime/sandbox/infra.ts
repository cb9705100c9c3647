/**
 * The infra process of a pod whose containers share one pid namespace (pid POD): the
 * namespace's init, which reaps orphans and holds the namespace while containers come and
 * go (CRI-O's infra container, Debian's catatonit in pause mode). It runs like any container
 * (OCI runtime under conmon) but needs no image: its root is an empty read-only directory
 * with the host's static infra binary bind-mounted in.
 *
 * Its runtime id is the pod id (pod and container ids never collide: both are random
 * 256-bit ids). Its bundle lives in the pod's run dir, with conmon's exit and persist
 * files, apart from the container service's exit directory.
 */
import { promises as fs } from 'node:fs';
import { join, posix } from 'node:path';
import type { Config } from '../config.js';
import type { CgroupInfo } from '../cgroups/detect.js';
import type { Logger } from '../util/log.js';
import { InvalidArgumentError, errorMessage } from '../errors.js';
import { writeFileAtomic } from '../state/store.js';
import { createWithConmon, type ConmonCreateOptions, type ConmonCreateResult } from '../oci/conmon.js';
import type { OciRuntimes } from '../oci/runtime.js';
import type { InfraRunner, InfraSpec } from './ports.js';
import { grantSearch } from '../util/search-path.js';
import { ociIdMapping } from '../oci/spec/namespaces.js';

/** The OCI config of the infra process. Pure. */
export function infraOciSpec(s: InfraSpec, cgroupsPath: string): Record<string, unknown> {
  const binary = s.command[0];
  if (!binary || !posix.isAbsolute(binary)) {
    throw new InvalidArgumentError(`pod.infra_command must start with an absolute path, got ${JSON.stringify(s.command)}`);
  }
  const namespaces: Array<{ type: string; path?: string }> = [{ type: 'pid' }, { type: 'mount' }];
  // A namespace the pod shares with the host is left out: the process stays in the host's.
  if (s.namespaces.net) namespaces.push({ type: 'network', path: s.namespaces.net });
  if (s.namespaces.ipc) namespaces.push({ type: 'ipc', path: s.namespaces.ipc });
  if (s.namespaces.uts) namespaces.push({ type: 'uts', path: s.namespaces.uts });
  // In a pod with its own user namespace the infra process is in it too: the pid namespace it
  // holds must belong to that user namespace for the containers' /proc mounts.
  const userns: Record<string, unknown> = {};
  if (s.namespaces.user) {
    if (!s.idMaps) throw new InvalidArgumentError(`pod ${s.podId}: a user namespace without its maps`);
    namespaces.push({ type: 'user', path: s.namespaces.user });
    userns.uidMappings = s.idMaps.uids.map(ociIdMapping);
    userns.gidMappings = s.idMaps.gids.map(ociIdMapping);
  }
  return {
    ociVersion: '1.0.2-dev',
    process: {
      terminal: false,
      user: { uid: 0, gid: 0 },
      args: s.command,
      env: ['PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'],
      cwd: '/',
      capabilities: { bounding: [], effective: [], permitted: [], inheritable: [], ambient: [] },
      noNewPrivileges: true,
    },
    root: { path: 'rootfs', readonly: true },
    mounts: [
      { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
      { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
      { destination: binary, type: 'bind', source: binary, options: ['bind', 'ro', 'nosuid', 'nodev'] },
    ],
    annotations: {
      'io.kubernetes.cri.container-type': 'sandbox',
      'io.kubernetes.cri.sandbox-id': s.podId,
    },
    linux: {
      namespaces,
      ...userns,
      cgroupsPath,
      resources: { devices: [{ allow: false, access: 'rwm' }] },
      maskedPaths: ['/proc/acpi', '/proc/kcore', '/proc/keys', '/proc/latency_stats', '/proc/timer_list', '/proc/timer_stats', '/proc/sched_debug', '/proc/scsi', '/sys/firmware'],
      readonlyPaths: ['/proc/asound', '/proc/bus', '/proc/fs', '/proc/irq', '/proc/sys', '/proc/sysrq-trigger'],
    },
  };
}

/** cgroupsPath of the infra process: a child of the pod cgroup, in the driver's spelling. */
export function infraCgroupsPath(podId: string, cgroupParent: string, driver: 'cgroupfs' | 'systemd'): string {
  if (driver === 'systemd') return `${cgroupParent ? posix.basename(cgroupParent) : 'system.slice'}:corral:infra-${podId}`;
  return posix.join('/', cgroupParent || '/', `corral-infra-${podId}`);
}

export interface OciInfraRunnerDeps {
  config: Config;
  runtimes: OciRuntimes;
  cgroups: CgroupInfo;
  logger: Logger;
  /** Injectable for tests. */
  monitor?: (o: ConmonCreateOptions) => Promise<ConmonCreateResult>;
}

export class OciInfraRunner implements InfraRunner {
  /** pod id -> runtime handler, so stop/remove use the runtime that created it. */
  private readonly handlers = new Map<string, string>();

  constructor(private readonly deps: OciInfraRunnerDeps) {}

  private get socketDir(): string {
    return join(this.deps.config.state_dir, 'attach');
  }

  private bundle(podId: string): string {
    return join(this.deps.config.state_dir, 'sandboxes', podId, 'infra');
  }

  private async handlerOf(podId: string): Promise<string> {
    const known = this.handlers.get(podId);
    if (known !== undefined) return known;
    // After a restart: the handler was written next to the bundle.
    return (await fs.readFile(join(this.bundle(podId), 'handler'), 'utf8').catch(() => '')).trim();
  }

  async start(s: InfraSpec): Promise<{ pidNsPath: string; pid: number }> {
    const rt = this.deps.runtimes.get(s.runtimeHandler);
    const bundle = this.bundle(s.podId);
    await fs.mkdir(join(bundle, 'rootfs'), { recursive: true, mode: 0o755 });
    await fs.writeFile(join(bundle, 'handler'), rt.name);
    this.handlers.set(s.podId, rt.name);
    const spec = infraOciSpec(s, infraCgroupsPath(s.podId, s.cgroupParent, this.deps.cgroups.driver));
    // The mount points, made here: in a pod with its own user namespace the runtime works in
    // the root-owned, read-only rootfs as an unprivileged uid and could not make them.
    const binary = s.command[0]!;
    for (const d of ['proc', 'dev', posix.dirname(binary).slice(1)]) await fs.mkdir(join(bundle, 'rootfs', d), { recursive: true, mode: 0o755 });
    await fs.writeFile(join(bundle, 'rootfs', binary.slice(1)), '', { flag: 'a', mode: 0o755 });
    if (s.namespaces.user) await grantSearch(join(bundle, 'rootfs'), { includeSelf: true });
    await writeFileAtomic(join(bundle, 'config.json'), JSON.stringify(spec));
    const monitor = this.deps.monitor ?? createWithConmon;
    try {
      const res = await monitor({
        conmonPath: this.deps.config.conmon,
        id: s.podId,
        name: `infra-${s.podId}`,
        bundleDir: bundle,
        runtime: rt.handler,
        exitDir: join(bundle, 'exits'),
        persistDir: bundle,
        // conmon makes <socketDir>/<id> a link to the bundle and binds <link>/attach: the
        // path must fit a unix socket's 108 bytes, so it is the short shared directory.
        socketDir: this.socketDir,
        cgroup: this.deps.config.conmon_cgroup ? { path: this.deps.config.conmon_cgroup, info: this.deps.cgroups } : undefined,
        systemdCgroup: this.deps.cgroups.driver === 'systemd',
        timeoutMs: 60_000,
        containerPidFile: join(bundle, 'pidfile'),
        conmonPidFile: join(bundle, 'conmon.pid'),
        logPath: join(bundle, 'infra.log'),
        logSizeMax: 1 << 20,
      });
      await rt.start(s.podId);
      return { pidNsPath: `/proc/${res.pid}/ns/pid`, pid: res.pid };
    } catch (err) {
      await rt.delete(s.podId, true).catch((e) => this.deps.logger.warn(`infra ${s.podId}: delete after a failed start: ${errorMessage(e)}`));
      await fs.rm(join(this.socketDir, s.podId), { recursive: true, force: true });
      throw err;
    }
  }

  async stop(podId: string): Promise<void> {
    const handler = await this.handlerOf(podId);
    const rt = this.deps.runtimes.get(handler);
    if (!(await rt.kill(podId, 'SIGKILL'))) return;
    // The kernel tears a pid namespace down when its init dies; wait until it is gone.
    for (let i = 0; i < 100; i++) {
      const st = await rt.state(podId).catch(() => undefined);
      if (!st || st.status === 'stopped') return;
      await new Promise((r) => setTimeout(r, 20));
    }
    this.deps.logger.warn(`infra ${podId}: still not stopped 2 s after SIGKILL`);
  }

  async remove(podId: string): Promise<void> {
    const handler = await this.handlerOf(podId);
    await this.deps.runtimes.get(handler).delete(podId, true);
    this.handlers.delete(podId);
    await fs.rm(join(this.socketDir, podId), { recursive: true, force: true });
    await fs.rm(this.bundle(podId), { recursive: true, force: true });
  }

  async isRunning(podId: string): Promise<boolean> {
    const handler = await this.handlerOf(podId);
    const st = await this.deps.runtimes.get(handler).state(podId).catch(() => undefined);
    return st?.status === 'running';
  }
}
