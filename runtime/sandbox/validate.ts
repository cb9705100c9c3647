/**
 * Checks on a PodSandboxConfig that must pass before anything is created: metadata,
 * namespace modes, sysctls, hostname and DNS. Each failure is InvalidArgument naming the
 * field, since the kubelet surfaces the message in the pod's events.
 */
import { isIP } from 'node:net';
import { FailedPreconditionError, InvalidArgumentError } from '../errors.js';

export type NamespaceMode = 'POD' | 'CONTAINER' | 'NODE' | 'TARGET';

/** One line of a uid_map or gid_map: container ids [containerId, +length) are host ids [hostId, +length). */
export interface IdMap {
  containerId: number;
  hostId: number;
  length: number;
}

export interface NamespaceModes {
  network: NamespaceMode;
  pid: NamespaceMode;
  ipc: NamespaceMode;
  targetId: string;
  /** userns_options mode POD: the pod's own user namespace with these maps. Absent: the host's. */
  userns?: { uids: IdMap[]; gids: IdMap[] };
}

interface IdMappingIn {
  host_id?: number | string;
  container_id?: number | string;
  length?: number | string;
}

const MAX_ID = 2 ** 32 - 1;

/**
 * The pod's maps, checked as the kubelet's peers do: exactly one line each, container id 0
 * mapped (the container's root must be somebody), never the host's root, within 32 bits.
 */
function idMaps(lines: IdMappingIn[] | undefined, field: string): IdMap[] {
  const f = `namespace_options.userns_options.${field}`;
  if (!lines || lines.length !== 1) throw new InvalidArgumentError(`${f}: exactly one mapping is supported, got ${lines?.length ?? 0}`);
  const l = lines[0]!;
  const m: IdMap = { containerId: Number(l.container_id ?? 0), hostId: Number(l.host_id ?? 0), length: Number(l.length ?? 0) };
  for (const [k, v] of Object.entries(m)) {
    if (!Number.isInteger(v) || v < 0 || v > MAX_ID) throw new InvalidArgumentError(`${f}: ${k} ${v} is not a 32-bit id`);
  }
  if (m.containerId !== 0) throw new InvalidArgumentError(`${f}: container id 0 must be mapped (the mapping starts at ${m.containerId})`);
  if (m.length === 0) throw new InvalidArgumentError(`${f}: length must be greater than 0`);
  if (m.hostId === 0) throw new InvalidArgumentError(`${f}: host id 0 (the node's root) must not be mapped into a pod`);
  if (m.hostId + m.length - 1 > MAX_ID) throw new InvalidArgumentError(`${f}: host ids ${m.hostId}+${m.length} exceed 32 bits`);
  return [m];
}

export interface PodMetadataIn {
  name?: string;
  uid?: string;
  namespace?: string;
  attempt?: number;
}

/** Kubernetes' longest object name (a DNS subdomain); uids are far shorter. */
export const MAX_NAME = 253;
/** Labels and annotations of one object, keys and values together: Kubernetes' own limit. */
export const MAX_ANNOTATIONS_BYTES = 256 * 1024;

/**
 * Labels and annotations: what Kubernetes allows of them in total, so that a record stays a
 * record (a huge one would not fit the record log's frame) and a List answer stays small.
 */
export function validateKeyValues(kv: Record<string, string> | null | undefined, what: string): void {
  let bytes = 0;
  for (const [k, v] of Object.entries(kv ?? {})) {
    if (k === '' || k.includes('\0')) throw new InvalidArgumentError(`${what}: the key ${JSON.stringify(k.slice(0, 64))} is empty or contains NUL`);
    bytes += Buffer.byteLength(k) + Buffer.byteLength(v ?? '');
  }
  if (bytes > MAX_ANNOTATIONS_BYTES) throw new InvalidArgumentError(`${what}: ${bytes} bytes in total (at most ${MAX_ANNOTATIONS_BYTES})`);
}

/** The pod's log directory: absent, or an absolute path (the kubelet's /var/log/pods/<ns>_<name>_<uid>). */
export function validateLogDirectory(dir: string | null | undefined): void {
  if (!dir) return;
  if (!dir.startsWith('/') || dir.includes('\0') || dir.length > 4096) {
    throw new InvalidArgumentError(`pod sandbox config: log_directory ${JSON.stringify(dir.slice(0, 200))} must be an absolute path without NUL`);
  }
}

export interface PortMappingCheck { protocol?: string | number; container_port?: number; host_port?: number; host_ip?: string }

/** Port mappings the portmap plugin can apply: ports in range, a known protocol, an IP or nothing. */
export function validatePortMappings(ports: PortMappingCheck[] | null | undefined): void {
  for (const p of ports ?? []) {
    const where = `port mapping ${p.host_port ?? 0}->${p.container_port ?? 0}`;
    const protocol = p.protocol ?? 'TCP';
    if (typeof protocol !== 'string' || !['TCP', 'UDP', 'SCTP'].includes(protocol.toUpperCase())) {
      throw new InvalidArgumentError(`${where}: unknown protocol ${JSON.stringify(p.protocol)}`);
    }
    const host = Number(p.host_port ?? 0);
    const ctr = Number(p.container_port ?? 0);
    if (!Number.isInteger(host) || host < 0 || host > 65535) throw new InvalidArgumentError(`${where}: host_port must be 0..65535 (0: no mapping)`);
    if (host > 0 && (!Number.isInteger(ctr) || ctr < 1 || ctr > 65535)) throw new InvalidArgumentError(`${where}: container_port must be 1..65535`);
    if (p.host_ip && isIP(p.host_ip) === 0) throw new InvalidArgumentError(`${where}: host_ip ${JSON.stringify(p.host_ip.slice(0, 64))} is not an IP address`);
  }
}

export function validateMetadata(md: PodMetadataIn | null | undefined): Required<PodMetadataIn> {
  if (!md) throw new InvalidArgumentError('pod sandbox config: metadata is required');
  for (const field of ['name', 'uid', 'namespace'] as const) {
    if (!md[field]) throw new InvalidArgumentError(`pod sandbox config: metadata.${field} is required`);
    if (/[\0\n/]/.test(md[field]!)) throw new InvalidArgumentError(`pod sandbox config: metadata.${field} ${JSON.stringify(md[field]!.slice(0, 64))} contains invalid characters`);
    if (md[field]!.length > MAX_NAME) throw new InvalidArgumentError(`pod sandbox config: metadata.${field} is ${md[field]!.length} bytes long (at most ${MAX_NAME})`);
  }
  return { name: md.name!, uid: md.uid!, namespace: md.namespace!, attempt: md.attempt ?? 0 };
}

/** The sandbox's unique name, the same scheme as dockershim, containerd and CRI-O. */
export function sandboxName(md: Required<PodMetadataIn>): string {
  return `k8s_POD_${md.name}_${md.namespace}_${md.uid}_${md.attempt}`;
}

const MODES = new Set<NamespaceMode>(['POD', 'CONTAINER', 'NODE', 'TARGET']);

function mode(v: unknown, field: string): NamespaceMode {
  if (v === undefined || v === null) return 'POD';
  const m = typeof v === 'number' ? (['POD', 'CONTAINER', 'NODE', 'TARGET'] as const)[v] : v;
  if (!MODES.has(m as NamespaceMode)) throw new InvalidArgumentError(`namespace_options.${field}: unknown mode ${JSON.stringify(v)}`);
  return m as NamespaceMode;
}

/**
 * The pod's namespace modes. Without namespace_options at all (crictl with a bare config),
 * pid is CONTAINER: proto3 cannot tell an explicit POD from an absent field there, and
 * the kubelet always sends the options (CONTAINER unless shareProcessNamespace).
 */
export function namespaceModes(nsOpts: {
  network?: unknown; pid?: unknown; ipc?: unknown; target_id?: string;
  userns_options?: { mode?: unknown; uids?: IdMappingIn[]; gids?: IdMappingIn[] } | null;
} | null | undefined): NamespaceModes {
  if (!nsOpts) return { network: 'POD', pid: 'CONTAINER', ipc: 'POD', targetId: '' };
  const m: NamespaceModes = {
    network: mode(nsOpts.network, 'network'),
    pid: mode(nsOpts.pid, 'pid'),
    ipc: mode(nsOpts.ipc, 'ipc'),
    targetId: nsOpts.target_id ?? '',
  };
  if (m.network !== 'POD' && m.network !== 'NODE') throw new InvalidArgumentError(`namespace_options.network: ${m.network} is not valid for a pod (POD or NODE)`);
  if (m.ipc !== 'POD' && m.ipc !== 'NODE') throw new InvalidArgumentError(`namespace_options.ipc: ${m.ipc} is not valid for a pod (POD or NODE)`);
  if (m.pid === 'TARGET') throw new InvalidArgumentError('namespace_options.pid: TARGET is only valid for containers');
  const u = nsOpts.userns_options;
  if (u) {
    const um = mode(u.mode, 'userns_options.mode');
    if (um === 'NODE') {
      if (u.uids?.length || u.gids?.length) throw new InvalidArgumentError('namespace_options.userns_options: mode NODE (the host\'s user namespace) takes no uids or gids');
    } else if (um === 'POD') {
      m.userns = { uids: idMaps(u.uids, 'uids'), gids: idMaps(u.gids, 'gids') };
      // The pod's user namespace owns its net, ipc and uts namespaces; the host's cannot join
      // it (RuntimeFeatures.user_namespaces_host_network is false, as the kubelet checks).
      for (const k of ['network', 'ipc', 'pid'] as const) {
        if (m[k] === 'NODE') throw new InvalidArgumentError(`namespace_options.${k}: NODE cannot be combined with a pod user namespace (userns_options mode POD)`);
      }
    } else {
      throw new InvalidArgumentError(`namespace_options.userns_options.mode: ${um} is not valid for a pod (POD or NODE)`);
    }
  }
  return m;
}

/** IPC-namespaced sysctls (the kernel's ipc_sysctls plus mqueue), as runc and the kubelet list them. */
const IPC_SYSCTLS = new Set([
  'kernel.msgmax', 'kernel.msgmnb', 'kernel.msgmni', 'kernel.msg_next_id',
  'kernel.sem', 'kernel.sem_next_id',
  'kernel.shmall', 'kernel.shmmax', 'kernel.shmmni', 'kernel.shm_rmid_forced', 'kernel.shm_next_id',
]);

/**
 * Validates the pod's sysctls against its namespaces and returns them as [path under
 * /proc/sys, value], sorted by name for a stable order. Names use '.' separators, or '/'
 * when a component holds a dot (net/ipv4/conf/eth0.100/forwarding), as Kubernetes allows.
 */
export function validateSysctls(sysctls: Record<string, string> | null | undefined, modes: NamespaceModes): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (const name of Object.keys(sysctls ?? {}).sort()) {
    const value = sysctls![name]!;
    const parts = name.includes('/') ? name.split('/') : name.split('.');
    if (parts.some((p) => p === '' || p === '.' || p === '..') || /[\0\n\s]/.test(name)) {
      throw new InvalidArgumentError(`sysctl ${JSON.stringify(name)}: invalid name`);
    }
    if (/[\0\n]/.test(value)) throw new InvalidArgumentError(`sysctl ${name}: invalid value ${JSON.stringify(value)}`);
    const dotted = parts.join('.');
    if (parts[0] === 'net') {
      if (modes.network === 'NODE') throw new InvalidArgumentError(`sysctl ${name} is not allowed with the host network namespace`);
    } else if (IPC_SYSCTLS.has(dotted) || (parts[0] === 'fs' && parts[1] === 'mqueue' && parts.length > 2)) {
      if (modes.ipc === 'NODE') throw new InvalidArgumentError(`sysctl ${name} is not allowed with the host IPC namespace`);
    } else {
      throw new InvalidArgumentError(`sysctl ${name} is not namespaced and cannot be set for a pod`);
    }
    out.push([parts.join('/'), value]);
  }
  return out;
}

/** The pod's hostname: the configured one, else the host's (host network) or the short id. */
export function podHostname(configured: string | undefined, modes: NamespaceModes, id: string, hostHostname: string): string {
  if (modes.network === 'NODE') return hostHostname;
  const h = configured ?? '';
  if (!h) return id.slice(0, 12);
  // sethostname(2) takes at most HOST_NAME_MAX (64) bytes.
  if (Buffer.byteLength(h) > 64 || /[\0\n\s]/.test(h)) throw new InvalidArgumentError(`hostname ${JSON.stringify(h)} is invalid (at most 64 bytes, no whitespace)`);
  return h;
}

export function validateDns(dns: { servers?: string[]; searches?: string[]; options?: string[] } | null | undefined): void {
  if (!dns) return;
  for (const field of ['servers', 'searches', 'options'] as const) {
    for (const v of dns[field] ?? []) {
      // A newline would let a value add arbitrary resolv.conf lines.
      if (!v || /[\0\n\r\s]/.test(v)) throw new InvalidArgumentError(`dns_config.${field}: invalid entry ${JSON.stringify(v)}`);
    }
  }
}

/** pid POD needs an infra process; without a runner corral cannot hold the namespace. */
export function requireInfra(modes: NamespaceModes, haveRunner: boolean): void {
  if (modes.pid === 'POD' && !haveRunner) {
    throw new FailedPreconditionError('namespace_options.pid POD needs an infra process, and no infra runner is configured');
  }
}
