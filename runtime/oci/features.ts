/**
 * What each configured OCI runtime handler can do, probed once at start:
 * whether its binary runs, its version, and the mount options it supports
 * (`<runtime> features`, which runc 1.1+ has and crun 1.8 lacks). Recursive read-only
 * mounts need "rro" there and a kernel >= 5.12 (mount_setattr with AT_RECURSIVE).
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
    const f = JSON.parse(stdout) as { mountOptions?: string[] };
    probe.recursiveReadOnly = kernelAtLeast(5, 12) && (f.mountOptions ?? []).includes('rro');
  } catch {
    // no `features` command: assume no rro rather than promise what may fail at create.
  }
  return probe;
}

export async function probeHandlers(handlers: Record<string, RuntimeHandlerConfig>): Promise<HandlerProbe[]> {
  return Promise.all(Object.entries(handlers).map(([n, h]) => probeHandler(n, h)));
}
