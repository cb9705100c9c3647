/**
 * The container's OCI runtime spec (config.json) from the CRI request, the image config and
 * the pod: a list of small option functions applied in order to an empty spec. The only
 * I/O is reading the image's /etc/passwd and /etc/group inside the rootfs and asking the
 * host through `deps` (stat of mount sources and devices, the seccomp Localhost file, the
 * daemon's capabilities and limits), so that every option is testable without root.
 *
 * The caller (the container service) writes `spec` into the bundle, reports `user` in
 * ContainerStatus.user, logs `warnings`, and makes sure every `hostPropagation` path sits on
 * a mount with that propagation before it runs the runtime.
 */
import type { ResolvedUser } from '../user.js';
import type { ContainerSpecInput, HostPropagation, SpecContext, SpecDeps, SpecOpt } from './context.js';
import { hostSpecDeps } from './host.js';
import { withAnnotations } from './annotations.js';
import { withCapabilities } from './capabilities.js';
import { withDevices } from './devices.js';
import { withMounts } from './mounts.js';
import { withNamespaces } from './namespaces.js';
import { withProcess, withUser } from './process.js';
import { withCgroupsPath, withOomScoreAdj, withResources, withSysctls } from './resources.js';
import { withApparmor, withMaskedPaths, withRoot, withSeccomp, withSelinux } from './security.js';
import { OCI_VERSION, type OciSpec } from './types.js';

export type { ContainerSpecInput, HostPropagation, SpecContext, SpecDeps, SpecOpt, SandboxInfo, ImageInfo, StatInfo } from './context.js';
export type * from './types.js';
export { OCI_VERSION } from './types.js';
export { buildExecProcess } from './process.js';
export { ociResourcesFromCri } from './resources.js';
export { hostSpecDeps } from './host.js';
export { ANNOTATION } from './annotations.js';
export { DEFAULT_CAPABILITIES, ALL_CAPABILITIES } from './capabilities.js';
export { DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS } from './security.js';
export type { ResolvedUser } from '../user.js';

export interface ContainerSpecResult {
  spec: OciSpec;
  user: { uid: number; gid: number; additionalGids: number[]; username?: string };
  warnings: string[];
  hostPropagation: HostPropagation[];
}

export function emptySpec(): OciSpec {
  return {
    ociVersion: OCI_VERSION,
    process: { terminal: false, user: { uid: 0, gid: 0 }, args: [], env: [], cwd: '/' },
    root: { path: '' },
    mounts: [],
    annotations: {},
    linux: { namespaces: [] },
  };
}

/**
 * Order matters where one option reads another's result: namespaces before process (the
 * hostname), capabilities before seccomp (capability-gated rules).
 */
export const CONTAINER_SPEC_OPTS: readonly SpecOpt[] = [
  withRoot,
  withNamespaces,
  withProcess,
  withUser,
  withCapabilities,
  withMounts,
  withDevices,
  withMaskedPaths,
  withCgroupsPath,
  withResources,
  withOomScoreAdj,
  withSysctls,
  withSeccomp,
  withApparmor,
  withSelinux,
  withAnnotations,
];

export async function applySpecOpts(spec: OciSpec, ctx: SpecContext, opts: readonly SpecOpt[]): Promise<OciSpec> {
  for (const opt of opts) await opt(spec, ctx);
  return spec;
}

export async function buildContainerSpec(input: ContainerSpecInput, deps: Partial<SpecDeps> = {}): Promise<ContainerSpecResult> {
  const ctx: SpecContext = { input, deps: { ...hostSpecDeps(), ...deps }, warnings: [], hostPropagation: [] };
  const spec = await applySpecOpts(emptySpec(), ctx, CONTAINER_SPEC_OPTS);
  const u: ResolvedUser = ctx.user!;
  return {
    spec,
    user: { uid: u.uid, gid: u.gid, additionalGids: [...u.additionalGids], ...(u.username !== undefined ? { username: u.username } : {}) },
    warnings: ctx.warnings,
    hostPropagation: ctx.hostPropagation,
  };
}
