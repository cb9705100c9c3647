/**
 * What the container service needs from the image and sandbox services, as interfaces it
 * owns: unit tests pass fakes, and the composition root (runtime/index.ts) passes the real
 * ImageService and SandboxService, whose methods have these shapes.
 */
import type { OciProcess, OciSpec } from '../oci/spec/types.js';
import type { ContainerSpecInput, SandboxIdMap } from '../oci/spec/context.js';
import type { RootfsIdmap } from '../snapshot/snapshotter.js';

/** An image as the image store records it. */
export interface ImageRecordLike {
  id: string;
  repoTags: string[];
  repoDigests: string[];
  /** The OCI image config JSON (`.config` holds Env, Entrypoint, Cmd, User, StopSignal...). */
  config: any;
}

export interface ImagePort {
  /** By id, id prefix, tag or digest reference; undefined when the store has no such image. */
  resolve(ref: string): ImageRecordLike | undefined;
  /** Mounts a writable snapshot of the image at target (an existing or creatable dir). */
  prepareRootfs(containerId: string, imageId: string, target: string, opts?: { readonly?: boolean; idmap?: RootfsIdmap }): Promise<unknown>;
  /** Unmounts target and drops the container's snapshot; idempotent. */
  releaseRootfs(containerId: string, target: string): Promise<void>;
  /** Mounts a read-only view of the image's layers at target (an image volume) under key. */
  prepareImageVolume(key: string, imageId: string, target: string, opts?: { idmap?: RootfsIdmap }): Promise<void>;
  /** Unmounts the view and lets GC have its layers; idempotent. */
  releaseImageVolume(key: string): Promise<void>;
  /** Keys of the image volumes mounted, those starting with prefix. */
  imageVolumeKeys(prefix?: string): string[];
}

/** A pod as the sandbox service shows it. */
export interface SandboxViewLike {
  id: string;
  name: string;
  /** The CRI PodSandboxConfig as received. */
  config: any;
  state: 'READY' | 'NOTREADY';
  /** Pinned namespace files; undefined: the host's. */
  namespaces: { net?: string; ipc?: string; uts?: string; pid?: string; user?: string };
  /** userns: the maps of namespaces.user. */
  namespaceModes?: { userns?: { uids: SandboxIdMap[]; gids: SandboxIdMap[] } };
  hostname: string;
  files: { hosts?: string; resolvConf?: string; hostname?: string; shm?: string };
  /** The pod cgroup parent in the driver's spelling ('' = none). */
  cgroupParent: string;
  runtimeHandler: string;
  ips?: string[];
}

export interface SandboxPort {
  /** Throws NotFound (or returns undefined) for an unknown pod. */
  get(idOrPrefix: string): SandboxViewLike | undefined;
}

/** The OCI spec builder (runtime/oci/spec): injected so that unit tests can skip it. */
export interface SpecPort {
  buildContainerSpec(input: ContainerSpecInput): Promise<{ spec: OciSpec; user?: unknown; warnings?: string[]; hostPropagation?: unknown }>;
  buildExecProcess(spec: OciSpec, cmd: string[], tty: boolean): OciProcess;
}
