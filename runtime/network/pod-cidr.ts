/**
 * The node's pod CIDR, as the kubelet sends it through UpdateRuntimeConfig: "10.244.1.0/24",
 * or one range per family for dual stack ("10.244.1.0/24,fd00:1::/64").
 *
 * A node's pod CIDR can change under running pods: a standalone node that joins a cluster gets
 * one for the first time, and a node re-registered gets another. The bridge plugin refuses a
 * bridge that already carries another IPv4 gateway ("already has an IP address different
 * from ..."), so one bridge cannot serve both ranges. corral's default network therefore names
 * its bridge after the range: pods started before the change keep their bridge, gateway and
 * routes until they go, new pods get a new bridge on the new range, and the superseded bridge
 * is deleted when its last pod is torn down (manager.ts). The alternative, the plugin's
 * forceAddress, would move the gateway away from every pod already on the node.
 */
import { createHash } from 'node:crypto';
import { isIP } from 'node:net';
import { InvalidArgumentError } from '../errors.js';
import { DEFAULT_BRIDGE } from './cni-config.js';

/** Parses and checks a pod CIDR list; returns the ranges, or throws InvalidArgumentError. */
export function parsePodCidr(value: string): string[] {
  const parts = value.split(',').map((c) => c.trim());
  if (parts.length === 0 || parts.some((p) => p === '')) {
    throw new InvalidArgumentError(`pod_cidr ${JSON.stringify(value)}: expected one CIDR per IP family, separated by a comma`);
  }
  if (parts.length > 2) throw new InvalidArgumentError(`pod_cidr ${JSON.stringify(value)}: at most one IPv4 and one IPv6 range`);
  const families = new Set<number>();
  for (const p of parts) {
    const m = /^([^/]+)\/(\d{1,3})$/.exec(p);
    const family = m ? isIP(m[1]!) : 0;
    const bits = m ? Number(m[2]) : -1;
    if (!m || family === 0 || bits > (family === 4 ? 32 : 128) || bits < (family === 4 ? 8 : 16)) {
      throw new InvalidArgumentError(`pod_cidr ${JSON.stringify(value)}: ${JSON.stringify(p)} is not an IPv${family === 6 ? 6 : 4} CIDR with a usable prefix length`);
    }
    if (!isNetworkAddress(m[1]!, family, bits)) {
      throw new InvalidArgumentError(`pod_cidr ${JSON.stringify(value)}: ${JSON.stringify(p)} has host bits set (the plugins refuse it; the range's own address is expected)`);
    }
    if (families.has(family)) throw new InvalidArgumentError(`pod_cidr ${JSON.stringify(value)}: two IPv${family} ranges`);
    families.add(family);
  }
  return parts;
}

/** True when the address has no bit set past the prefix (and no zone). */
function isNetworkAddress(addr: string, family: number, bits: number): boolean {
  if (addr.includes('%')) return false;
  let n = 0n;
  let width = 32;
  if (family === 4) {
    for (const o of addr.split('.')) n = (n << 8n) | BigInt(Number(o));
  } else {
    width = 128;
    const [head, tail] = addr.includes('::') ? addr.split('::') as [string, string] : [addr, undefined];
    const h = head ? head.split(':') : [];
    const t = tail ? tail.split(':') : [];
    if (h.concat(t).some((g) => g.includes('.'))) return bits <= 96; // an embedded IPv4 tail: only the prefix is checked
    const groups = tail === undefined ? h : [...h, ...Array(8 - h.length - t.length).fill('0'), ...t];
    for (const g of groups) n = (n << 16n) | BigInt(parseInt(g || '0', 16));
  }
  const hostMask = (1n << BigInt(width - bits)) - 1n;
  return (n & hostMask) === 0n;
}

/**
 * The default network's bridge for a pod CIDR: "corral" and 8 hex digits of the ranges' hash
 * (14 characters, under IFNAMSIZ). Without a pod CIDR it stays corral0.
 */
export function bridgeForPodCidr(cidrs: readonly string[]): string {
  if (cidrs.length === 0) return DEFAULT_BRIDGE;
  return 'corral' + createHash('sha256').update(cidrs.join(',')).digest('hex').slice(0, 8);
}
