/**
 * Devices: the CRI's devices (node created in the container's /dev plus a device cgroup rule
 * with the requested permissions) and, for privileged containers, every device of the host.
 * Unprivileged containers start from "deny all"; the runtime adds its standard allowlist
 * (null, zero, full, random, urandom, tty, ptmx, pts) itself, as runc and crun do.
 */
import { join, normalize } from 'node:path';
import { errnoCode, InvalidArgumentError } from '../../errors.js';
import type { SpecContext, SpecOpt, StatInfo } from './context.js';
import { isPrivileged } from './context.js';
import type { OciDevice, OciDeviceCgroupRule } from './types.js';

/** glibc's major()/minor() on a 64-bit dev_t. */
export function majorMinor(rdev: number): { major: number; minor: number } {
  const d = BigInt(rdev);
  const major = ((d >> 8n) & 0xfffn) | ((d >> 32n) & ~0xfffn);
  const minor = (d & 0xffn) | ((d >> 12n) & ~0xffn);
  return { major: Number(major), minor: Number(minor) };
}

function toDevice(path: string, st: StatInfo): OciDevice | undefined {
  const type = st.isCharacterDevice() ? 'c' : st.isBlockDevice() ? 'b' : undefined;
  if (!type) return undefined;
  const { major, minor } = majorMinor(st.rdev);
  return { type, path, major, minor, fileMode: st.mode & 0o777, uid: st.uid, gid: st.gid };
}

/** Directories of the host's /dev that are per-mount-namespace file systems or not devices. */
const SKIP_DIRS = new Set(['pts', 'shm', 'fd', 'mqueue', '.lxc', '.lxd-mounts', '.udev']);

async function walkDevices(ctx: SpecContext, hostDir: string, containerDir: string, skipDirs: boolean, out: OciDevice[]): Promise<void> {
  let names: string[];
  try {
    names = await ctx.deps.readdir(hostDir);
  } catch {
    return;
  }
  for (const name of names.sort()) {
    const hostPath = join(hostDir, name);
    let st: StatInfo;
    try {
      st = await ctx.deps.lstat(hostPath);
    } catch {
      continue; // vanished while walking
    }
    if (st.isDirectory()) {
      if (skipDirs && SKIP_DIRS.has(name)) continue;
      await walkDevices(ctx, hostPath, join(containerDir, name), skipDirs, out);
      continue;
    }
    // /dev/console is the runtime's to set up (it becomes the container's terminal).
    if (skipDirs && hostPath === '/dev/console') continue;
    const dev = toDevice(join(containerDir, name), st);
    if (dev) out.push(dev);
  }
}

/** The host's devices for a privileged container, as they appear in /dev. */
export async function hostDevices(ctx: SpecContext): Promise<OciDevice[]> {
  const out: OciDevice[] = [];
  await walkDevices(ctx, '/dev', '/dev', true, out);
  return out;
}

/** One CRI Device: a device node, or a directory of them (e.g. /dev/snd). */
export async function criDevices(ctx: SpecContext, hostPath: string, containerPath: string): Promise<OciDevice[]> {
  let st: StatInfo;
  if (!hostPath.startsWith('/') || hostPath.includes('\0')) throw new InvalidArgumentError(`device host_path ${JSON.stringify(hostPath.slice(0, 200))} is not an absolute path`);
  try {
    st = await ctx.deps.stat(hostPath);
  } catch (err) {
    if (errnoCode(err) === 'ENOENT' || errnoCode(err) === 'ENOTDIR') throw new InvalidArgumentError(`device ${hostPath} does not exist on the host`);
    // ENAMETOOLONG, ELOOP, EACCES: the path the request names cannot be a device.
    if (errnoCode(err)) throw new InvalidArgumentError(`device ${hostPath.slice(0, 200)}: ${errnoCode(err)}`);
    throw err;
  }
  if (st.isDirectory()) {
    const out: OciDevice[] = [];
    await walkDevices(ctx, hostPath, containerPath, false, out);
    return out;
  }
  const dev = toDevice(containerPath, st);
  if (!dev) throw new InvalidArgumentError(`device ${hostPath} is not a character or block device`);
  return [dev];
}

export const withDevices: SpecOpt = async (spec, ctx: SpecContext) => {
  const devices: OciDevice[] = [];
  const rules: OciDeviceCgroupRule[] = [];
  for (const d of ctx.input.config.devices ?? []) {
    const perms = d.permissions || 'rwm';
    if (!/^[rwm]+$/.test(perms)) throw new InvalidArgumentError(`device ${d.host_path}: permissions ${JSON.stringify(d.permissions)} must be made of r, w and m`);
    if (!d.host_path) throw new InvalidArgumentError('device with an empty host_path');
    const containerPath = normalize(d.container_path || d.host_path);
    if (!containerPath.startsWith('/')) throw new InvalidArgumentError(`device container_path ${JSON.stringify(d.container_path)} is not an absolute path`);
    for (const dev of await criDevices(ctx, d.host_path, containerPath)) {
      devices.push(dev);
      rules.push({ allow: true, type: dev.type as 'c' | 'b', major: dev.major, minor: dev.minor, access: perms });
    }
  }
  if (ctx.input.config.CDI_devices?.length) {
    ctx.warnings.push(`CDI devices ignored (corral has no CDI registry): ${ctx.input.config.CDI_devices.map((d) => d.name).join(', ')}`);
  }
  spec.linux.resources ??= {};
  if (isPrivileged(ctx.input)) {
    const taken = new Set(devices.map((d) => d.path));
    for (const dev of await hostDevices(ctx)) if (!taken.has(dev.path)) devices.push(dev);
    spec.linux.resources.devices = [{ allow: true, access: 'rwm' }];
  } else {
    spec.linux.resources.devices = [{ allow: false, access: 'rwm' }, ...rules];
  }
  if (devices.length) spec.linux.devices = devices;
};

