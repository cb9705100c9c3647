/**
 * Namespaces: the pod's pinned net/ipc/uts are joined by path (an absent path is the host's
 * namespace, so the entry is left out); pid per container, per pod, the node's or a target
 * container's; always a new mount namespace; a new cgroup namespace on cgroup v2 only.
 */
import { FailedPreconditionError, InvalidArgumentError } from '../../errors.js';
import type { SpecContext, SpecOpt } from './context.js';
import { securityContext } from './context.js';
import type { OciIdMapping, OciNamespace } from './types.js';
import type { SandboxIdMap } from './context.js';

export function ociIdMapping(m: SandboxIdMap): OciIdMapping {
  return { containerID: m.containerId, hostID: m.hostId, size: m.length };
}

export const withNamespaces: SpecOpt = (spec, ctx: SpecContext) => {
  const { sandbox, cgroupMode, targetPidNs } = ctx.input;
  const opts = securityContext(ctx.input).namespace_options;
  const ns: OciNamespace[] = [];

  // The pod's user namespace, made with the pod (runtime/linux/userns.ts): every container
  // joins it. A container cannot ask for one its pod does not have.
  if (opts?.userns_options && (opts.userns_options.mode as unknown) === 'POD' && !sandbox.namespaces.user) {
    throw new InvalidArgumentError(`namespace_options.userns_options: mode POD, but pod ${sandbox.id} has no user namespace of its own (its config asked for none)`);
  }
  if (sandbox.namespaces.user) {
    if (!sandbox.idMaps) throw new FailedPreconditionError(`pod ${sandbox.id}: the maps of its user namespace are unknown`);
    ns.push({ type: 'user', path: sandbox.namespaces.user });
    // Joining by path, the runtime takes the maps as they are; runc still wants them in the
    // spec (and checks they match), and they say who owns the rootfs.
    spec.linux.uidMappings = sandbox.idMaps.uids.map(ociIdMapping);
    spec.linux.gidMappings = sandbox.idMaps.gids.map(ociIdMapping);
  }

  // An unset NamespaceOption decodes as POD (the enum's zero value), which is also the CRI's
  // documented default; the kubelet always sends CONTAINER explicitly for v1 pods.
  const pidMode = (opts?.pid ?? 'POD') as string;
  switch (pidMode) {
    case 'CONTAINER':
      ns.push({ type: 'pid' });
      break;
    case 'POD':
      if (sandbox.namespaces.pid) {
        ns.push({ type: 'pid', path: sandbox.namespaces.pid });
      } else {
        // A pod created without a shared pid namespace (its own pid mode was CONTAINER or
        // absent in a hand-written request): a private namespace is the closest safe answer.
        ctx.warnings.push(`pod ${sandbox.id} has no shared pid namespace; the container gets its own`);
        ns.push({ type: 'pid' });
      }
      break;
    case 'NODE':
      break;
    case 'TARGET':
      if (!opts?.target_id) throw new InvalidArgumentError('pid namespace mode TARGET without target_id');
      if (!targetPidNs) throw new FailedPreconditionError(`pid namespace of target container ${opts.target_id} is not available (is it running?)`);
      ns.push({ type: 'pid', path: targetPidNs });
      break;
    default:
      throw new InvalidArgumentError(`unknown pid namespace mode ${pidMode}`);
  }

  if (sandbox.namespaces.net) ns.push({ type: 'network', path: sandbox.namespaces.net });
  if (sandbox.namespaces.ipc) ns.push({ type: 'ipc', path: sandbox.namespaces.ipc });
  if (sandbox.namespaces.uts) ns.push({ type: 'uts', path: sandbox.namespaces.uts });
  ns.push({ type: 'mount' });
  // Only on v2, as Docker, runc and crun default to: on v1 and hybrid hosts the runtime builds
  // /sys/fs/cgroup from bind mounts of the host's per-controller paths, and a cgroup namespace
  // would make /proc/self/cgroup relative while those mounts are not, which misleads the
  // tools inside that read both (JVMs, cAdvisor-like agents, systemd).
  if (cgroupMode === 'v2') ns.push({ type: 'cgroup' });
  spec.linux.namespaces = ns;

  // sethostname(2) needs a UTS namespace of the container's own; the runtimes refuse a
  // hostname with the host's. Host-network pods see the node's name there anyway.
  if (sandbox.namespaces.uts && sandbox.hostname) spec.hostname = sandbox.hostname;
  else delete spec.hostname;
};
