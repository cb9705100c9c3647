/**
 * The per-pod arguments a runtime hands to CNI plugins: CNI_ARGS and the runtimeConfig
 * capability arguments (portMappings, ipRanges, bandwidth, dns). A plugin only receives the
 * capabilities it declares in its config's "capabilities" map, as libcni does.
 */
import { InvalidArgumentError } from '../errors.js';
import type { PluginConf } from './cni-config.js';

export interface PortMappingIn { protocol?: string; container_port: number; host_port: number; host_ip?: string }

export interface CniPortMapping { hostPort: number; containerPort: number; protocol: string; hostIP?: string }

export interface CniBandwidth { ingressRate?: number; ingressBurst?: number; egressRate?: number; egressBurst?: number }

export interface CniDns { servers: string[]; searches: string[]; options: string[] }

/** Capability arguments for a pod; only the keys present are offered to plugins. */
export interface CapabilityArgs {
  portMappings?: CniPortMapping[];
  ipRanges?: Array<Array<{ subnet: string }>>;
  bandwidth?: CniBandwidth;
  dns?: CniDns;
}

/** CNI_ARGS as the kubelet's runtimes spell them; IgnoreUnknown lets plugins that parse strictly accept the K8S_ keys. */
export function buildCniArgs(pod: { id: string; name: string; namespace: string; uid: string }): string {
  return [
    'IgnoreUnknown=1',
    `K8S_POD_NAMESPACE=${pod.namespace}`,
    `K8S_POD_NAME=${pod.name}`,
    `K8S_POD_INFRA_CONTAINER_ID=${pod.id}`,
    `K8S_POD_UID=${pod.uid}`,
  ].join(';');
}

/**
 * CRI PortMappings to the portmap plugin's form. A mapping without a host port only
 * documents the container port (the kubelet sends those too) and maps nothing.
 */
export function toCniPortMappings(ports: PortMappingIn[]): CniPortMapping[] {
  const out: CniPortMapping[] = [];
  for (const p of ports) {
    if (!p.host_port || p.host_port <= 0) continue;
    const protocol = (p.protocol ?? 'TCP').toLowerCase();
    if (!['tcp', 'udp', 'sctp'].includes(protocol)) {
      throw new InvalidArgumentError(`port mapping ${p.host_port}->${p.container_port}: unknown protocol ${JSON.stringify(p.protocol)}`);
    }
    out.push({
      hostPort: p.host_port,
      containerPort: p.container_port,
      protocol,
      ...(p.host_ip ? { hostIP: p.host_ip } : {}),
    });
  }
  return out;
}

export const INGRESS_BANDWIDTH_ANNOTATION = 'kubernetes.io/ingress-bandwidth';
export const EGRESS_BANDWIDTH_ANNOTATION = 'kubernetes.io/egress-bandwidth';

const DECIMAL_SUFFIX: Record<string, number> = { '': 1, n: 1e-9, u: 1e-6, m: 1e-3, k: 1e3, M: 1e6, G: 1e9, T: 1e12, P: 1e15, E: 1e18 };
const BINARY_SUFFIX: Record<string, number> = { Ki: 2 ** 10, Mi: 2 ** 20, Gi: 2 ** 30, Ti: 2 ** 40, Pi: 2 ** 50, Ei: 2 ** 60 };

/** A Kubernetes resource quantity ("10M", "1Gi", "1.5e6") as a number, rounded up like Quantity.Value(). */
export function parseQuantity(s: string): number {
  const m = /^([+-]?(?:\d+\.?\d*|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)$/.exec(s.trim());
  if (!m) throw new InvalidArgumentError(`invalid quantity ${JSON.stringify(s)}`);
  const base = Number(m[1]);
  const value = m[2] !== undefined ? base * 10 ** Number(m[2].slice(1)) : base * (BINARY_SUFFIX[m[3] ?? ''] ?? DECIMAL_SUFFIX[m[3] ?? '']!);
  return Math.ceil(value);
}

// The kubelet refuses shaping outside these bounds (bits per second).
const MIN_BANDWIDTH = 1e3;
const MAX_BANDWIDTH = 1e15;
// The bandwidth plugin requires a burst with every rate; the kubelet's runtimes pass the largest the plugin accepts.
const UNLIMITED_BURST = 2 ** 32 - 1;

/** Bandwidth from the pod's annotations, or undefined when neither is set. */
export function bandwidthFromAnnotations(annotations: Record<string, string>): CniBandwidth | undefined {
  const one = (key: string): number | undefined => {
    const v = annotations[key];
    if (v === undefined) return undefined;
    let n: number;
    try {
      n = parseQuantity(v);
    } catch {
      throw new InvalidArgumentError(`annotation ${key}: invalid quantity ${JSON.stringify(v)}`);
    }
    if (n < MIN_BANDWIDTH || n > MAX_BANDWIDTH) {
      throw new InvalidArgumentError(`annotation ${key}: ${v} is outside 1k..1P bits per second`);
    }
    return n;
  };
  const ingress = one(INGRESS_BANDWIDTH_ANNOTATION);
  const egress = one(EGRESS_BANDWIDTH_ANNOTATION);
  if (ingress === undefined && egress === undefined) return undefined;
  return {
    ...(ingress !== undefined ? { ingressRate: ingress, ingressBurst: UNLIMITED_BURST } : {}),
    ...(egress !== undefined ? { egressRate: egress, egressBurst: UNLIMITED_BURST } : {}),
  };
}

/** Every capability argument for a pod. */
export function buildCapabilityArgs(pod: {
  portMappings: PortMappingIn[];
  annotations: Record<string, string>;
  dns?: CniDns | undefined;
}, podCidr: string): CapabilityArgs {
  const caps: CapabilityArgs = { portMappings: toCniPortMappings(pod.portMappings) };
  if (podCidr) caps.ipRanges = podCidr.split(',').map((c) => c.trim()).filter(Boolean).map((subnet) => [{ subnet }]);
  const bw = bandwidthFromAnnotations(pod.annotations);
  if (bw) caps.bandwidth = bw;
  if (pod.dns) caps.dns = { servers: [...pod.dns.servers], searches: [...pod.dns.searches], options: [...pod.dns.options] };
  return caps;
}

/** The runtimeConfig for one plugin: the capabilities it declares that the pod has. */
export function runtimeConfigFor(plugin: PluginConf, caps: CapabilityArgs): Record<string, unknown> | undefined {
  const declared = plugin.capabilities;
  if (!declared) return undefined;
  const rc: Record<string, unknown> = {};
  for (const [name, on] of Object.entries(declared)) {
    const v = (caps as Record<string, unknown>)[name];
    if (on && v !== undefined) rc[name] = v;
  }
  return Object.keys(rc).length ? rc : undefined;
}
