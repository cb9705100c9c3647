/**
 * The per-pod /etc files: hosts, resolv.conf and hostname. They are files of the sandbox
 * that the container service bind-mounts into each container, so that all containers of a
 * pod see the same content. Rendering is pure; writing is a thin wrapper.
 */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export interface PodFiles {
  hosts: string;
  resolvConf: string;
  hostname: string;
}

/** /etc/hosts of a pod with its own network: loopback names plus the pod's addresses. */
export function renderHosts(hostname: string, ips: string[]): string {
  const lines = [
    '127.0.0.1\tlocalhost',
    '::1\tlocalhost ip6-localhost ip6-loopback',
    'fe00::0\tip6-localnet',
    'fe00::0\tip6-mcastprefix',
    'fe00::1\tip6-allnodes',
    'fe00::2\tip6-allrouters',
  ];
  for (const ip of ips) lines.push(`${ip}\t${hostname}`);
  return lines.join('\n') + '\n';
}

/** resolv.conf from a DNSConfig; undefined when it says nothing (the host's file is used). */
export function renderResolvConf(dns: { servers?: string[]; searches?: string[]; options?: string[] } | null | undefined): string | undefined {
  const servers = dns?.servers ?? [];
  const searches = dns?.searches ?? [];
  const options = dns?.options ?? [];
  if (servers.length === 0 && searches.length === 0 && options.length === 0) return undefined;
  const lines: string[] = [];
  if (searches.length) lines.push(`search ${searches.join(' ')}`);
  for (const s of servers) lines.push(`nameserver ${s}`);
  if (options.length) lines.push(`options ${options.join(' ')}`);
  return lines.join('\n') + '\n';
}

export interface WriteFilesInput {
  dir: string;
  hostname: string;
  ips: string[];
  hostNetwork: boolean;
  dns?: { servers?: string[]; searches?: string[]; options?: string[] } | null;
  /** Injectable for tests. */
  hostHosts?: string;
  hostResolvConf?: string;
}

function readOr(path: string, fallback: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return fallback;
  }
}

/**
 * Writes hosts, resolv.conf and hostname into dir (0644: containers may run as any user).
 * Synchronously, as the other small metadata writes of a pod (state/store.ts has the numbers):
 * through the thread pool these were ten round trips.
 */
export async function writePodFiles(input: WriteFilesInput): Promise<PodFiles> {
  const files: PodFiles = {
    hosts: join(input.dir, 'hosts'),
    resolvConf: join(input.dir, 'resolv.conf'),
    hostname: join(input.dir, 'hostname'),
  };
  const hosts = input.hostNetwork
    ? input.hostHosts ?? readOr('/etc/hosts', renderHosts(input.hostname, []))
    : renderHosts(input.hostname, input.ips);
  const resolv = renderResolvConf(input.dns) ?? input.hostResolvConf ?? readOr('/etc/resolv.conf', '');
  // No fsync: after a crash the sandbox is rebuilt or torn down, never served from these.
  for (const [path, data] of [[files.hosts, hosts], [files.resolvConf, resolv], [files.hostname, `${input.hostname}\n`]] as const) {
    writeFileSync(path, data);
    // Explicitly: the mode given at creation is subject to the daemon's umask.
    chmodSync(path, 0o644);
  }
  return files;
}
