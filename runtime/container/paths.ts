/**
 * Host-side paths a container needs: its cgroupsPath in the driver's spelling, and the
 * propagation of the host mounts behind Bidirectional / HostToContainer volumes.
 */
import { promises as fs } from 'node:fs';
import { posix } from 'node:path';
import type { Syscalls } from '../linux/syscalls.js';
import { MS_SHARED } from '../linux/syscalls.js';
import type { Logger } from '../util/log.js';
import { InternalError, errorMessage } from '../errors.js';

/**
 * linux.cgroupsPath of a container: below the pod's cgroup when the kubelet gave one.
 * systemd spells it slice:prefix:name (runc and crun make <prefix>-<name>.scope).
 */
export function containerPath(id: string, cgroupParent: string, driver: 'cgroupfs' | 'systemd'): string {
  if (driver === 'systemd') {
    const slice = cgroupParent ? posix.basename(cgroupParent) : 'system.slice';
    return `${slice}:corral:${id}`;
  }
  if (!cgroupParent) return `/corral-${id}`;
  const parent = cgroupParent.endsWith('.slice') && !cgroupParent.includes('/') ? expand(cgroupParent) : cgroupParent;
  return posix.join('/', parent, `corral-${id}`);
}

function expand(slice: string): string {
  const parts = slice.slice(0, -'.slice'.length).split('-');
  let prefix = '';
  return parts.map((p) => (prefix = prefix ? `${prefix}-${p}` : p) + '.slice').join('/');
}

export interface MountInfo { mountPoint: string; optional: string[] }

export function parseMountInfo(text: string): MountInfo[] {
  const out: MountInfo[] = [];
  for (const line of text.split('\n')) {
    if (!line) continue;
    const f = line.split(' ');
    const sep = f.indexOf('-');
    out.push({ mountPoint: unescapeMount(f[4] ?? ''), optional: f.slice(6, sep < 0 ? undefined : sep) });
  }
  return out;
}

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_m, o: string) => String.fromCharCode(Number.parseInt(o, 8)));
}

/** The mount (last mounted wins) that contains path. */
export function mountOf(mounts: MountInfo[], path: string): MountInfo | undefined {
  let best: MountInfo | undefined;
  for (const m of mounts) {
    const mp = m.mountPoint;
    const inside = path === mp || mp === '/' || path.startsWith(mp.endsWith('/') ? mp : mp + '/');
    if (inside && (!best || mp.length >= best.mountPoint.length)) best = m;
  }
  return best;
}

/**
 * A Bidirectional volume needs its host mount shared, a HostToContainer one needs it
 * shared or slave: a private mount propagates nothing. Where it is private, the mount
 * that holds the path is made shared (only that mount, not its children).
 */
export async function applyHostPropagation(
  wanted: Array<{ path: string; mode: 'shared' | 'slave' }> | undefined | unknown,
  syscalls: Syscalls,
  logger: Logger,
): Promise<void> {
  const list = Array.isArray(wanted) ? (wanted as Array<{ path: string; mode: 'shared' | 'slave' }>) : [];
  if (!list.length) return;
  const mounts = parseMountInfo(await fs.readFile('/proc/self/mountinfo', 'utf8'));
  for (const w of list) {
    const m = mountOf(mounts, w.path);
    if (!m) continue;
    const shared = m.optional.some((o) => o.startsWith('shared:'));
    const slave = m.optional.some((o) => o.startsWith('master:'));
    if (shared || (w.mode === 'slave' && slave)) continue;
    try {
      syscalls.mount(null, m.mountPoint, null, MS_SHARED, null);
      m.optional.push('shared:?');
      logger.info(`made the host mount ${m.mountPoint} shared for the ${w.mode} volume ${w.path}`);
    } catch (err) {
      throw new InternalError(`volume ${w.path} needs ${w.mode} propagation, but its host mount ${m.mountPoint} is private and could not be made shared: ${errorMessage(err)}`);
    }
  }
}
