/**
 * What each configured OCI runtime handler can do, probed once at start:
 * whether its binary runs, its version, and the mount options it supports
 * (`<runtime> features`, which runc 1.1+ has and crun 1.8 lacks). Recursive read-only
 * mounts need "rro" there and a kernel >= 5.12 (mount_setattr with AT_RECURSIVE). Pods with
 * their own user namespace need idmapped mounts from the runtime (the kubelet maps every
 * volume), reported as linux.mountExtensions.idmap.enabled, and a kernel >= 5.19 (overlay on
 * idmapped layers, which corral uses for their rootfs). runc 1.1 has `features` but ignores
 * mount maps (files show as 65534): it reports no idmap, so no user namespaces.
 */
import { execFile } from 'node:child_process';
import { release } from 'node:os';
import { promisify } from 'node:util';
import type { RuntimeHandlerConfig } from '../config.js';

const run = promisify(execFile);

export interface HandlerProbe {
  name: string;
  path: string;
  available: boolean;
  version: string;
  error?: string;
  recursiveReadOnly: boolean;
  userNamespaces: boolean;
}

export function kernelAtLeast(major: number, minor: number, rel = release()): boolean {
  const m = /^(\d+)\.(\d+)/.exec(rel);
  if (!m) return false;
  const [a, b] = [Number(m[1]), Number(m[2])];
  return a > major || (a === major && b >= minor);
}

export async function probeHandler(name: string, h: RuntimeHandlerConfig): Promise<HandlerProbe> {
  const probe: HandlerProbe = { name, path: h.path, available: false, version: '', recursiveReadOnly: false, userNamespaces: false };
  try {
    const { stdout } = await run(h.path, ['--version'], { timeout: 5000 });
    probe.available = true;
    probe.version = stdout.split('\n')[0]?.trim() ?? '';
  } catch (err) {
    probe.error = (err as Error).message.split('\n')[0];
    return probe;
  }
  try {
    const { stdout } = await run(h.path, ['features'], { timeout: 5000 });
    const f = JSON.parse(stdout) as { mountOptions?: string[]; linux?: { mountExtensions?: { idmap?: { enabled?: boolean } } } };
    probe.recursiveReadOnly = kernelAtLeast(5, 12) && (f.mountOptions ?? []).includes('rro');
    probe.userNamespaces = kernelAtLeast(5, 19) && f.linux?.mountExtensions?.idmap?.enabled === true;
  } catch {
    // No `features` command (crun before 1.8.6): what the version is known to do. Other
    // runtimes without it get no rro rather than a promise that may fail at create.
    probe.recursiveReadOnly = kernelAtLeast(5, 12) && crunAppliesRro(probe.version);
    probe.userNamespaces = kernelAtLeast(5, 19) && crunAppliesRro(probe.version);
  }
  return probe;
}

/**
 * crun applies the "rro" mount option (mount_setattr with AT_RECURSIVE) and idmapped bind mounts
 * (a mount's uidMappings/gidMappings) since 1.8, before it had a `features` command to say so:
 * crun 1.8.1 does, measured on Debian bookworm's build (the node conformance suite's recursive
 * read-only specs and critest's user namespace specs pass with it).
 */
export function crunAppliesRro(version: string): boolean {
  const m = /^crun version (\d+)\.(\d+)/.exec(version);
  return !!m && (Number(m[1]) > 1 || (Number(m[1]) === 1 && Number(m[2]) >= 8));
}

export async function probeHandlers(handlers: Record<string, RuntimeHandlerConfig>): Promise<HandlerProbe[]> {
  return Promise.all(Object.entries(handlers).map(([n, h]) => probeHandler(n, h)));
}
