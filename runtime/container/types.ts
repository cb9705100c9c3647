/**
 * The container record and its state machine (the one place it is drawn):
 *
 *   CreateContainer ──> CREATED ──StartContainer──> RUNNING ──exit file──> EXITED
 *                          │                                                 ^
 *                          └──── exit file (killed before or during start) ──┘
 *
 *   UNKNOWN: after a daemon restart, a container recorded CREATED or RUNNING of which the
 *   OCI runtime has no record and for which conmon left no exit file (e.g. the host
 *   rebooted). StopContainer moves UNKNOWN to EXITED. RemoveContainer works from every
 *   state and ends the record (meta.json, status.json and the directory go).
 *
 * Only the exit watcher moves a container to EXITED (from conmon's exit file: the one
 * authority on the exit code); stop only sends signals and waits for that.
 * meta.json is written once at create; status.json changes through ObjectStore.update.
 */
import type { OciSpec } from '../oci/spec/types.js';
import type { CriLinuxResources } from './resources.js';
import type { ImageVolumeRecord } from './image-volumes.js';

export type ContainerState = 'CREATED' | 'RUNNING' | 'EXITED' | 'UNKNOWN';

export interface ContainerMeta {
  id: string;
  podId: string;
  /** The reserved name: k8s_<container>_<pod>_<namespace>_<uid>_<attempt>. */
  name: string;
  metadata: { name: string; attempt: number };
  /** The CRI ContainerConfig as received (proto-loader shape). */
  config: any;
  image: {
    /** The image as the kubelet asked for it (ImageSpec). */
    spec: any;
    id: string;
    /** A repo digest when the store has one, else the id. */
    ref: string;
    /** What ContainerStatus.image.image shows: the request, or the first tag for an id. */
    name: string;
  };
  runtimeHandler: string;
  runtimePath: string;
  runtimeRoot: string;
  bundleDir: string;
  rootfs: string;
  logPath: string;
  /** What the kubelet sees as log_path ('' when the pod has no log directory). */
  criLogPath: string;
  attachSocketPath: string;
  ctlFifoPath: string;
  /** uid, gid, supplemental groups of the process, as resolved at create. */
  user: { uid: number; gid: number; groups: number[] };
  stopSignal: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  /** ns since the epoch, decimal. */
  createdAt: string;
  /** The image volumes mounted for it (absent: none). */
  imageVolumes?: ImageVolumeRecord[];
}

export interface ContainerStatusRecord {
  state: ContainerState;
  pid: number;
  conmonPid: number;
  /** ns since the epoch, decimal; '0' when not yet. */
  startedAt: string;
  finishedAt: string;
  exitCode: number;
  reason: string;
  message: string;
  /** Current CRI resources (create's, overlaid by every update). */
  resources: CriLinuxResources | null;
  /** How long each phase of CreateContainer (and 'start') took, in ms. */
  startPhases?: Record<string, number>;
}

/** What other services see of a container (stats, streaming, the sandbox service). */
export interface ContainerView {
  id: string;
  podId: string;
  name: string;
  metadata: { name: string; attempt: number };
  state: ContainerState;
  pid: number;
  conmonPid: number;
  runtimeHandler: string;
  runtimePath: string;
  /** What corral executes for the runtime itself: a sealed copy of runtimePath (oci/runtime.ts). */
  runtimeExecPath: string;
  runtimeRoot: string;
  bundleDir: string;
  rootfs: string;
  logPath: string;
  spec: OciSpec | undefined;
  attachSocketPath: string;
  ctlFifoPath: string;
  user: { uid: number; gid: number; groups: number[] };
  tty: boolean;
  stdin: boolean;
  stdinOnce: boolean;
  imageId: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  createdAt: string;
  startedAt: string;
  finishedAt: string;
  exitCode: number;
}

import type { ContainerEventType } from '../events/index.js';
export type { ContainerEventType };

export interface ContainerEvent {
  type: ContainerEventType;
  containerId: string;
  podId: string;
  /** ns since the epoch, decimal. */
  at: string;
}
