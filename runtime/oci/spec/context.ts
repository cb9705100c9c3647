/**
 * Inputs of the container spec builder and the context its option functions share.
 *
 * Every option is `(spec, ctx) => void | Promise<void>`: it reads the CRI request, the
 * image config and the sandbox from `ctx.input`, asks the host only through `ctx.deps`
 * (so that tests pass fakes), and records non-fatal problems in `ctx.warnings`.
 */
import type { ContainerConfig__Output } from '../../../proto/gen/runtime/v1/ContainerConfig.js';
import type { PodSandboxConfig__Output } from '../../../proto/gen/runtime/v1/PodSandboxConfig.js';
import type { LinuxContainerSecurityContext__Output } from '../../../proto/gen/runtime/v1/LinuxContainerSecurityContext.js';
import type { ResolvedUser } from '../user.js';
import type { OciSpec } from './types.js';
import type { LimitPolicy } from '../../cgroups/enforceable.js';

/** Namespace files of the pod, pinned by the sandbox service. Undefined: the host's namespace. */
export interface SandboxNamespaces {
  net?: string;
  ipc?: string;
  uts?: string;
  /** Present only when the pod shares one pid namespace (NamespaceMode POD). */
  pid?: string;
  /** The pod's own user namespace (userns_options mode POD); absent: the host's. */
  user?: string;
}

/** One uid_map / gid_map line of the pod's user namespace. */
export interface SandboxIdMap {
  containerId: number;
  hostId: number;
  length: number;
}

/** Host files the sandbox service wrote for the pod; each is bind-mounted when present. */
export interface SandboxFiles {
  hosts?: string;
  resolvConf?: string;
  hostname?: string;
  /** The pod's /dev/shm (a tmpfs mount point on the host). */
  shm?: string;
}

export interface SandboxInfo {
  id: string;
  config: PodSandboxConfig__Output;
  namespaces: SandboxNamespaces;
  hostname: string;
  files: SandboxFiles;
  cgroupParent: string;
  /** The maps of namespaces.user (required with it). */
  idMaps?: { uids: SandboxIdMap[]; gids: SandboxIdMap[] };
}

/** The OCI image config JSON; `.config` holds Env, Entrypoint, Cmd, WorkingDir, User, StopSignal. */
export interface ImageInfo {
  id: string;
  config: any;
}

export interface ContainerSpecInput {
  containerId: string;
  /** The CRI ContainerConfig as proto-loader gives it (snake_case, int64 as strings, enums as strings). */
  config: ContainerConfig__Output;
  sandbox: SandboxInfo;
  image: ImageInfo;
  /** Mounted rootfs path: root.path, and where /etc/passwd and /etc/group are read. */
  rootfs: string;
  /** linux.cgroupsPath, already spelled for the cgroup driver by the caller. */
  cgroupsPath: string;
  cgroupMode: 'v2' | 'hybrid' | 'v1';
  /** Which limits the host can enforce; absent: all of them (tests, hosts with every controller). */
  limitPolicy?: LimitPolicy;
  /** For pid NamespaceMode TARGET: /proc/<pid>/ns/pid of the target container. */
  targetPidNs?: string;
  /**
   * Capabilities the daemon holds (CAP_ names). A container can never get more: asking the
   * runtime for one the daemon lacks makes capset(2) fail. Default: read from /proc/self/status.
   */
  hostCaps?: string[];
  /**
   * Sysctls to put into every container's spec. Pod sysctls (LinuxPodSandboxConfig.sysctls)
   * are NOT copied here: they belong to the pod's shared namespaces, which the sandbox service
   * creates and configures once (as CRI-O's pinns does); every container joins them as they are.
   */
  defaultSysctls?: Record<string, string>;
  /**
   * runAsNonRoot of the pod spec. CRI v1 does not carry it (the kubelet checks it against the
   * image's user before CreateContainer); callers that know it may ask for the check against
   * the uid resolved in the rootfs.
   */
  runAsNonRoot?: boolean;
}

/** File status as the builder needs it (a subset of fs.Stats). */
export interface StatInfo {
  isDirectory(): boolean;
  isCharacterDevice(): boolean;
  isBlockDevice(): boolean;
  isFile(): boolean;
  rdev: number;
  mode: number;
  uid: number;
  gid: number;
}

/** Everything the builder asks the host. The defaults (./host.ts) use the real machine. */
export interface SpecDeps {
  /** stat(2), following symlinks. Rejects with an ENOENT error when the path is missing. */
  stat(path: string): Promise<StatInfo>;
  /** lstat(2): does not follow a final symlink (host /dev walks skip /dev/stdin and friends). */
  lstat(path: string): Promise<StatInfo>;
  realpath(path: string): Promise<string>;
  readdir(path: string): Promise<string[]>;
  readFile(path: string): Promise<string>;
  /** The daemon's bounding capability set, CAP_ names. */
  hostCapabilities(): Promise<string[]>;
  /** The daemon's own oom_score_adj: the lowest value it may give a child without CAP_SYS_RESOURCE. */
  currentOomScoreAdj(): Promise<number>;
  /** The daemon's hard RLIMIT_NOFILE: children cannot be given more without CAP_SYS_RESOURCE. */
  nofileHardLimit(): Promise<number>;
  apparmorEnabled(): Promise<boolean>;
  /** Names of the loaded AppArmor profiles. */
  apparmorProfiles(): Promise<string[]>;
  selinuxEnabled(): Promise<boolean>;
  /** Whether the memory controller accounts swap (memory.memsw.* on v1). */
  swapAccounting(mode: 'v2' | 'hybrid' | 'v1'): Promise<boolean>;
  /** Node's process.arch: 'x64', 'arm64', ... (chooses the seccomp architectures). */
  arch: string;
}

/** Which host mounts a container's mounts need to be shared or slave for their propagation to work. */
export interface HostPropagation {
  path: string;
  mode: 'shared' | 'slave';
}

export interface SpecContext {
  input: ContainerSpecInput;
  deps: SpecDeps;
  warnings: string[];
  hostPropagation: HostPropagation[];
  /** Set by withUser; later options (none today) may read it. */
  user?: ResolvedUser;
}

export type SpecOpt = (spec: OciSpec, ctx: SpecContext) => void | Promise<void>;

export function securityContext(input: ContainerSpecInput): Partial<LinuxContainerSecurityContext__Output> {
  return input.config.linux?.security_context ?? {};
}

export function isPrivileged(input: ContainerSpecInput): boolean {
  return securityContext(input).privileged === true;
}

/** The `.config` part of an OCI image config, tolerating a missing one (scratch images built by hand). */
export function imageRuntimeConfig(input: ContainerSpecInput): {
  Env?: string[]; Entrypoint?: string[] | null; Cmd?: string[] | null; WorkingDir?: string; User?: string; StopSignal?: string;
} {
  const c = input.image.config;
  return (c && typeof c === 'object' && c.config && typeof c.config === 'object') ? c.config : {};
}

/** int64 fields arrive as decimal strings; an absent or empty one is 0. */
export function int64(v: string | number | undefined | null): number {
  if (v === undefined || v === null || v === '') return 0;
  const n = Number(v);
  return Number.isFinite(n) ? n : 0;
}
