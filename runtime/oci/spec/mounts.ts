/**
 * Mounts: the runtime's standard file systems (/proc, /dev, /sys, ...), the pod's files
 * (/etc/hosts, /etc/resolv.conf, /etc/hostname, /dev/shm) and the CRI mounts.
 */
import { isAbsolute, normalize } from 'node:path';
import { errnoCode, errorMessage, InvalidArgumentError } from '../../errors.js';
import type { Mount__Output } from '../../../proto/gen/runtime/v1/Mount.js';
import type { SpecContext, SpecOpt } from './context.js';
import { isPrivileged, securityContext } from './context.js';
import type { OciMount } from './types.js';

/** A private /dev/shm when the pod has none of its own (64 MiB, Docker's default). */
const SHM_SIZE = '65536k';

export function defaultMounts(privileged: boolean): OciMount[] {
  // Privileged containers get writable /sys and /sys/fs/cgroup (CRI: "any sysfs and procfs
  // mounts are mounted RW").
  const sysMode = privileged ? 'rw' : 'ro';
  return [
    { destination: '/proc', type: 'proc', source: 'proc', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/dev', type: 'tmpfs', source: 'tmpfs', options: ['nosuid', 'strictatime', 'mode=755', 'size=65536k'] },
    { destination: '/dev/pts', type: 'devpts', source: 'devpts', options: ['nosuid', 'noexec', 'newinstance', 'ptmxmode=0666', 'mode=0620', 'gid=5'] },
    { destination: '/dev/mqueue', type: 'mqueue', source: 'mqueue', options: ['nosuid', 'noexec', 'nodev'] },
    { destination: '/sys', type: 'sysfs', source: 'sysfs', options: ['nosuid', 'noexec', 'nodev', sysMode] },
    { destination: '/sys/fs/cgroup', type: 'cgroup', source: 'cgroup', options: ['nosuid', 'noexec', 'nodev', 'relatime', sysMode] },
  ];
}

/** Path depth, so that a parent is mounted before what is mounted inside it. */
function depth(p: string): number {
  return normalize(p).split('/').filter(Boolean).length;
}

function propagationOf(m: Mount__Output): 'private' | 'slave' | 'shared' {
  const p = m.propagation as unknown;
  if (p === 'PROPAGATION_BIDIRECTIONAL' || p === 2) return 'shared';
  if (p === 'PROPAGATION_HOST_TO_CONTAINER' || p === 1) return 'slave';
  if (p === undefined || p === null || p === 'PROPAGATION_PRIVATE' || p === 0) return 'private';
  throw new InvalidArgumentError(`mount ${m.container_path}: unknown propagation ${String(p)}`);
}

/** Bind options a pod may ask for (CRI Mount.mount_options); anything else is refused. */
const ALLOWED_MOUNT_OPTIONS = new Set(['noexec', 'nodev', 'nosuid', 'noatime', 'nodiratime', 'relatime', 'strictatime', 'nosymfollow']);

/** Turns one CRI mount into an OCI bind mount, checking the host side. Undefined: skipped. */
export async function criMount(m: Mount__Output, ctx: SpecContext): Promise<OciMount | undefined> {
  const dest = m.container_path;
  if (!m.host_path) {
    // Image volumes are mounted on the host by the container service, which hands them over
    // here as binds of the view; one that gets here was never prepared.
    if (m.image?.image) throw new InvalidArgumentError(`mount ${dest || '(no container_path)'}: image volume ${m.image.image} was not prepared`);
    throw new InvalidArgumentError(`mount ${dest || '(no container_path)'}: host_path is empty`);
  }
  if (!isAbsolute(m.host_path) || m.host_path.includes('\0')) throw new InvalidArgumentError(`mount host_path ${JSON.stringify(m.host_path.slice(0, 200))} is not an absolute path`);
  if (!dest || !isAbsolute(dest) || dest.includes('\0')) throw new InvalidArgumentError(`mount container_path ${JSON.stringify(dest?.slice(0, 200))} is not an absolute path`);
  const destination = normalize(dest).replace(/\/+$/, '');
  if (!destination) throw new InvalidArgumentError(`mount ${m.host_path}: container_path "/" cannot be mounted over`);

  // The kubelet creates hostPath DirectoryOrCreate/FileOrCreate sources itself before
  // CreateContainer; a source that is still missing is the request's mistake.
  try {
    await ctx.deps.stat(m.host_path);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') {
      throw new InvalidArgumentError(`mount host_path ${m.host_path} (for ${dest}) does not exist`);
    }
    throw new InvalidArgumentError(`mount host_path ${m.host_path} (for ${dest}): ${errorMessage(err)}`);
  }
  // The runtime follows symlinks in the source anyway; resolving here makes the propagation
  // report name the real directory and keeps the spec honest about what is mounted.
  const source = await ctx.deps.realpath(m.host_path);

  const prop = propagationOf(m);
  if (m.recursive_read_only) {
    if (!m.readonly) throw new InvalidArgumentError(`mount ${dest}: recursive_read_only requires readonly`);
    if (prop !== 'private') throw new InvalidArgumentError(`mount ${dest}: recursive_read_only requires propagation PROPAGATION_PRIVATE`);
  }
  const options = ['rbind', `r${prop}`, m.readonly ? 'ro' : 'rw'];
  if (m.recursive_read_only) options.push('rro');
  for (const o of m.mount_options ?? []) {
    if (!ALLOWED_MOUNT_OPTIONS.has(o)) throw new InvalidArgumentError(`mount ${dest}: mount option ${JSON.stringify(o)} is not supported`);
    if (!options.includes(o)) options.push(o);
  }
  // selinux_relabel is ignored: corral does not label (the kubelet only sets it on SELinux hosts).
  const om: OciMount = { destination, type: 'bind', source, options };
  if (m.uidMappings?.length || m.gidMappings?.length) {
    // The kubelet maps every volume of a pod with its own user namespace, so that the files
    // it made as root are the container root's: an idmapped bind mount.
    if (!ctx.input.sandbox.namespaces.user) {
      ctx.warnings.push(`mount ${dest}: id mappings ignored (the pod has no user namespace of its own)`);
    } else {
      if (!m.uidMappings?.length || !m.gidMappings?.length) throw new InvalidArgumentError(`mount ${dest}: uidMappings and gidMappings go together`);
      const oci = (x: { container_id: number | string; host_id: number | string; length: number | string }) => ({ containerID: Number(x.container_id), hostID: Number(x.host_id), size: Number(x.length) });
      om.uidMappings = m.uidMappings.map(oci);
      om.gidMappings = m.gidMappings.map(oci);
    }
  }
  if (prop === 'shared') ctx.hostPropagation.push({ path: source, mode: 'shared' });
  if (prop === 'slave') ctx.hostPropagation.push({ path: source, mode: 'slave' });
  return om;
}

export const withMounts: SpecOpt = async (spec, ctx: SpecContext) => {
  const { config, sandbox } = ctx.input;
  const sc = securityContext(ctx.input);
  const privileged = isPrivileged(ctx.input);

  const cri: OciMount[] = [];
  for (const m of config.mounts ?? []) {
    const om = await criMount(m, ctx);
    if (om) cri.push(om);
  }
  const criDests = new Set(cri.map((m) => m.destination));
  const criHasDev = criDests.has('/dev');
  const overridden = (dest: string) => criDests.has(dest) || (criHasDev && dest.startsWith('/dev/'));

  const mounts: OciMount[] = defaultMounts(privileged).filter((m) => !overridden(m.destination));

  // The pod's files are writable unless the rootfs is read-only (as CRI-O and containerd); a
  // CRI mount at the same place (the kubelet manages /etc/hosts itself for most pods) wins.
  const fileMode = sc.readonly_rootfs ? 'ro' : 'rw';
  const files: Array<[string, string | undefined]> = [
    ['/etc/hosts', sandbox.files.hosts],
    ['/etc/resolv.conf', sandbox.files.resolvConf],
    ['/etc/hostname', sandbox.files.hostname],
  ];
  for (const [dest, src] of files) {
    if (src && !overridden(dest)) mounts.push({ destination: dest, type: 'bind', source: src, options: ['rbind', 'rprivate', fileMode] });
  }
  if (!overridden('/dev/shm')) {
    if (sandbox.files.shm) {
      mounts.push({ destination: '/dev/shm', type: 'bind', source: sandbox.files.shm, options: ['rbind', 'rprivate', 'rw', 'nosuid', 'nodev', 'noexec'] });
    } else if (!sandbox.namespaces.ipc) {
      // Host IPC: System V shm is the host's, so POSIX shm should be too.
      mounts.push({ destination: '/dev/shm', type: 'bind', source: '/dev/shm', options: ['rbind', 'rprivate', 'rw', 'nosuid', 'nodev', 'noexec'] });
    } else {
      mounts.push({ destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', `size=${SHM_SIZE}`] });
    }
  }
  mounts.push(...cri);

  // Stable: equal depths keep their order, so the standard mounts stay ahead of the pod's.
  spec.mounts = mounts
    .map((m, i) => ({ m, i, d: depth(m.destination) }))
    .sort((a, b) => a.d - b.d || a.i - b.i)
    .map((x) => x.m);

  // A slave or shared bind only propagates if the container's copy of the host mount tree
  // keeps its peer groups: rshared for bidirectional mounts, rslave for host-to-container.
  const props = ctx.hostPropagation.map((h) => h.mode);
  if (props.includes('shared')) spec.linux.rootfsPropagation = 'rshared';
  else if (props.includes('slave')) spec.linux.rootfsPropagation = 'rslave';
};
