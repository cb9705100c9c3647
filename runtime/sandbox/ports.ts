/**
 * What the sandbox service needs from other services, as interfaces it owns, so that each
 * side can be built and tested alone and the composition root (runtime/index.ts) joins them.
 */

/** A CRI PortMapping as proto-loader gives it. */
export interface PortMappingIn {
  protocol?: string;
  container_port: number;
  host_port: number;
  host_ip?: string;
}

export interface PodDns {
  servers: string[];
  searches: string[];
  options: string[];
}

export interface PodNetworkRef {
  /** The sandbox id (CNI_CONTAINERID). */
  id: string;
  name: string;
  namespace: string;
  uid: string;
}

/**
 * The pod network (CNI). runtime/network's NetworkManager has this shape. Only called for
 * pods with their own network namespace.
 */
export interface PodNetwork {
  setUpPod(pod: PodNetworkRef & {
    netnsPath: string;
    portMappings: PortMappingIn[];
    annotations: Record<string, string>;
    dns?: PodDns;
    signal?: AbortSignal;
  }): Promise<{ ips: string[]; result: unknown; timings?: Array<{ plugin: string; ms: number }> }>;
  /** Idempotent; works from the cached ADD result when the netns is gone. */
  tearDownPod(pod: PodNetworkRef & { netnsPath?: string; signal?: AbortSignal }): Promise<void>;
  status(): Promise<{ ready: boolean; reason: string; message: string }>;
}

/**
 * The containers of a pod, provided by the container service (SandboxService.setContainers).
 * Until it is set, a pod is treated as having no containers.
 */
export interface PodContainers {
  /** Stops every running container of the pod: SIGTERM, then SIGKILL after timeoutSec. */
  stopAllInPod(podId: string, timeoutSec: number): Promise<void>;
  /** Removes every container of the pod (stopping any still running). */
  removeAllInPod(podId: string): Promise<void>;
}

/** What an infra process gets to start in: the pod's pinned namespaces and cgroup. */
export interface InfraSpec {
  podId: string;
  /** The command holding the pid namespace (config.pod.infra_command, e.g. catatonit -P). */
  command: string[];
  runtimeHandler: string;
  /** Pinned namespaces to join; undefined = the host's. */
  namespaces: { net?: string; ipc?: string; uts?: string; user?: string };
  /** The maps of namespaces.user (with it). */
  idMaps?: { uids: Array<{ containerId: number; hostId: number; length: number }>; gids: Array<{ containerId: number; hostId: number; length: number }> };
  /** The pod cgroup parent in the driver's spelling ('' = none). */
  cgroupParent: string;
  hostname: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  logDirectory: string;
  /** LinuxPodSandboxConfig.security_context as received. */
  securityContext: unknown;
}

/**
 * The infra process of a pod whose containers share one pid namespace (pid POD): it is the
 * namespace's init and holds it. It runs through the OCI runtime under conmon, which is
 * runtime/oci's machinery; the composition root provides it.
 */
export interface InfraRunner {
  start(spec: InfraSpec): Promise<{ pidNsPath: string; pid?: number }>;
  /** Idempotent: an infra process already gone succeeds. */
  stop(podId: string): Promise<void>;
  /** Deletes what start() made (container state, bundle); idempotent. */
  remove(podId: string): Promise<void>;
  /** After a daemon restart: false when the infra process died (the pod is then NOTREADY). */
  isRunning?(podId: string): Promise<boolean>;
}
