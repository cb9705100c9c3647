/**
 * Annotations in the spec: the request's own (as CRI-O passes them; runtimes and hooks read
 * them), then the io.kubernetes.cri.* keys containerd writes, which tools such as
 * crun/runc hooks, Kata and NRI plugins key on to tell a pod's containers apart.
 */
import type { SpecContext, SpecOpt } from './context.js';

export const ANNOTATION = {
  containerType: 'io.kubernetes.cri.container-type',
  containerName: 'io.kubernetes.cri.container-name',
  sandboxId: 'io.kubernetes.cri.sandbox-id',
  sandboxName: 'io.kubernetes.cri.sandbox-name',
  sandboxNamespace: 'io.kubernetes.cri.sandbox-namespace',
  sandboxUid: 'io.kubernetes.cri.sandbox-uid',
  imageName: 'io.kubernetes.cri.image-name',
  imageId: 'io.kubernetes.cri.image-id',
} as const;

/**
 * Annotations the OCI runtime reads as instructions (crun's run.oci.*: hook output files,
 * cgroup delegation, seccomp and group handling; criu's org.criu.*): a pod's annotations are
 * its users' to set, so these do not reach the spec, as CRI-O allows none of them by default.
 */
const RUNTIME_PREFIXES = ['run.oci.', 'org.criu.', 'io.containers.'];

function ownAnnotations(a: Record<string, string> | null | undefined, warnings: string[] | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(a ?? {})) {
    if (RUNTIME_PREFIXES.some((p) => k.startsWith(p))) warnings?.push(`annotation ${k} dropped: it would instruct the OCI runtime`);
    else out[k] = v;
  }
  return out;
}

export const withAnnotations: SpecOpt = (spec, ctx: SpecContext) => {
  const { config, sandbox, image } = ctx.input;
  const meta = sandbox.config.metadata;
  spec.annotations = {
    ...ownAnnotations(config.annotations, ctx.warnings),
    [ANNOTATION.containerType]: 'container',
    [ANNOTATION.containerName]: config.metadata?.name ?? '',
    [ANNOTATION.sandboxId]: sandbox.id,
    [ANNOTATION.sandboxName]: meta?.name ?? '',
    [ANNOTATION.sandboxNamespace]: meta?.namespace ?? '',
    [ANNOTATION.sandboxUid]: meta?.uid ?? '',
    [ANNOTATION.imageName]: config.image?.user_specified_image || config.image?.image || '',
    [ANNOTATION.imageId]: image.id,
  };
};
