/**
 * `corral doctor`: what an operator wants to know before pointing a kubelet at this
 * host. One line per check with OK / WARN / FAIL and, when not OK, the fix. Exits 1
 * when a hard requirement fails.
 */
import { execFile } from 'node:child_process';
import { promises as fs } from 'node:fs';
import { release } from 'node:os';
import { dirname, join } from 'node:path';
import { promisify } from 'node:util';
import type { Config } from './config.js';
import { detectCgroups, type CgroupInfo } from './cgroups/detect.js';
import { kernelAtLeast, probeHandler } from './oci/features.js';
import { limitControllers } from './cgroups/enforceable.js';
import { fsops } from './linux/fsops.js';
import { linux } from './linux/syscalls.js';
import { probeIdmap } from './linux/userns.js';

const run = promisify(execFile);

export type Level = 'OK' | 'WARN' | 'FAIL';
export interface Check { name: string; level: Level; detail: string; fix?: string }

async function firstLine(cmd: string, args: string[]): Promise<string> {
  const { stdout, stderr } = await run(cmd, args, { timeout: 5000 });
  return (stdout || stderr).split('\n')[0]!.trim();
}

async function exists(p: string): Promise<boolean> {
  return fs.access(p).then(() => true, () => false);
}

/** crun 1.8 refuses a hybrid host whose cgroup2 mount has any controller (HOST-NOTES: hugetlb here). */
export function crunRefusesHere(cg: CgroupInfo): boolean {
  return cg.mode === 'hybrid' && cg.unifiedControllers.length > 0;
}

export async function collectChecks(config: Config): Promise<Check[]> {
  const checks: Check[] = [];
  const rel = release();
  checks.push(kernelAtLeast(5, 4, rel)
    ? { name: 'kernel', level: 'OK', detail: rel }
    : { name: 'kernel', level: 'WARN', detail: `${rel} is older than 5.4`, fix: 'upgrade the kernel: overlay and cgroup features corral uses are tested on 5.4+' });

  const filesystems = await fs.readFile('/proc/filesystems', 'utf8').catch(() => '');
  checks.push(/\boverlay\b/.test(filesystems)
    ? { name: 'overlayfs', level: 'OK', detail: 'overlay in /proc/filesystems' }
    : { name: 'overlayfs', level: 'FAIL', detail: 'overlay filesystem not available', fix: 'modprobe overlay' });

  const missing: string[] = [];
  for (const ns of ['user', 'pid', 'net', 'mnt', 'uts', 'ipc', 'cgroup']) {
    if (!(await exists(`/proc/self/ns/${ns}`))) missing.push(ns);
  }
  checks.push(missing.length === 0
    ? { name: 'namespaces', level: 'OK', detail: 'user pid net mnt uts ipc cgroup' }
    : { name: 'namespaces', level: 'FAIL', detail: `missing: ${missing.join(' ')}`, fix: 'a kernel built with CONFIG_*_NS for each' });

  const cg = await detectCgroups(config.cgroup_driver);
  const ctl = cg.controllers.join(' ') || 'none';
  if (cg.mode === 'v2') {
    const need = ['cpu', 'memory', 'pids'].filter((c) => !cg.controllers.includes(c));
    checks.push(need.length === 0
      ? { name: 'cgroups', level: 'OK', detail: `v2, controllers: ${ctl}` }
      : { name: 'cgroups', level: 'WARN', detail: `v2, controllers: ${ctl}; missing ${need.join(' ')}`, fix: 'enable them in the root cgroup.subtree_control' });
  } else {
    checks.push({
      name: 'cgroups',
      level: 'WARN',
      detail: `${cg.mode}: v1 controllers ${ctl}${cg.mode === 'hybrid' ? `; cgroup2 at unified/ with ${cg.unifiedControllers.join(' ') || 'no'} controllers` : ''}`,
      fix: 'boot with systemd.unified_cgroup_hierarchy=1 for cgroup v2 (limits, PSI and OOM events are better there)',
    });
  }
  // The kubelet sets hugepage (and, with the static CPU manager, cpuset) limits on pods.
  const absent = ['cpu', 'cpuset', 'memory', 'pids', 'hugetlb'].filter((c) => !limitControllers(cg).includes(c));
  const policy = config.cgroups.unenforceable_limits;
  checks.push(absent.length === 0
    ? { name: 'limits', level: 'OK', detail: 'every controller the kubelet sets limits for is where the OCI runtime writes them' }
    : {
        name: 'limits',
        level: 'WARN',
        detail: `no ${absent.join(' ')} controller where the OCI runtime writes limits${cg.mode === 'hybrid' && cg.unifiedControllers.length ? ` (${cg.unifiedControllers.join(' ')} only on the cgroup2 mount)` : ''}: ` +
          (policy === 'drop' ? 'those limits are dropped with a warning ([cgroups] unenforceable_limits = "drop")' : 'creates asking for them fail ([cgroups] unenforceable_limits = "fail"; the kubelet\'s zero hugepage limits are still dropped)'),
        fix: policy === 'drop' ? 'use cgroup v2 with those controllers enabled to enforce them' : 'set [cgroups] unenforceable_limits = "drop", or enable the controllers',
      });
  checks.push(cg.driver === 'systemd' && !(await exists('/run/systemd/system'))
    ? { name: 'cgroup driver', level: 'FAIL', detail: 'systemd driver configured but systemd is not PID 1', fix: 'set cgroup_driver = "cgroupfs" or "auto"' }
    : { name: 'cgroup driver', level: 'OK', detail: `${cg.driver} (configured: ${config.cgroup_driver})` });

  let usable = 0;
  const userns: string[] = [];
  for (const [name, h] of Object.entries(config.runtimes)) {
    const p = await probeHandler(name, h);
    if (p.available && p.userNamespaces) userns.push(name);
    if (!p.available) {
      checks.push({ name: `runtime ${name}`, level: name === config.default_runtime ? 'WARN' : 'WARN', detail: `${h.path}: ${p.error}`, fix: `apt-get install ${name} (or fix runtimes.${name}.path)` });
      continue;
    }
    if (name === 'crun' && crunRefusesHere(cg)) {
      usable++;
      checks.push({
        name: `runtime ${name}`,
        level: 'WARN',
        detail: `${p.version}; refuses this hybrid host (cgroup2 has ${cg.unifiedControllers.join(' ')}): corral runs its create step in a private mount namespace that hides cgroup2`,
        fix: 'use cgroup v2, or runc as default_runtime',
      });
      continue;
    }
    usable++;
    checks.push({ name: `runtime ${name}`, level: 'OK', detail: `${p.version}${p.recursiveReadOnly ? ', rro mounts' : ''}${p.userNamespaces ? ', idmapped mounts (user namespaces)' : ''}` });
  }
  if (usable === 0) checks.push({ name: 'runtimes', level: 'FAIL', detail: 'no OCI runtime handler works', fix: 'apt-get install crun runc' });
  // Pods with hostUsers: false need idmapped mounts from the handler (the kubelet maps every
  // volume), a kernel with idmapped overlay layers, and util-linux's unshare to make the namespace.
  const unshare = await firstLine('unshare', ['--version']).catch(() => '');
  const layers = join(config.root_dir, 'snapshots');
  const idmap = userns.length && unshare && (await exists(layers)) ? await probeIdmap(layers, linux, fsops.mountIdmapped) : { ok: true as const };
  if (!idmap.ok) {
    checks.push({ name: 'user namespaces', level: 'WARN', detail: `${layers} cannot be idmapped (${idmap.reason}): pods with hostUsers: false are refused`, fix: 'keep root_dir on a file system that supports idmapped mounts (ext4, xfs, btrfs; tmpfs from Linux 6.3)' });
  } else checks.push(userns.length && unshare
    ? { name: 'user namespaces', level: 'OK', detail: `pods with their own user namespace (hostUsers: false) run on: ${userns.join(', ')}` }
    : {
        name: 'user namespaces',
        level: 'WARN',
        detail: !unshare ? 'no unshare (util-linux) on PATH: pods with hostUsers: false are refused'
          : 'no handler reports idmapped mounts (runc >= 1.2 or crun >= 1.8, kernel >= 5.19): pods with hostUsers: false are refused',
        fix: !unshare ? 'apt-get install util-linux' : 'install crun >= 1.8 or runc >= 1.2 and add it as a handler',
      });

  try {
    checks.push({ name: 'conmon', level: 'OK', detail: await firstLine(config.conmon, ['--version']) });
  } catch (err) {
    checks.push({ name: 'conmon', level: 'FAIL', detail: `${config.conmon}: ${(err as Error).message.split('\n')[0]}`, fix: 'apt-get install conmon' });
  }

  const plugins = ['bridge', 'host-local', 'loopback', 'portmap'];
  const found: Record<string, string> = {};
  for (const p of plugins) {
    for (const d of config.cni.bin_dirs) {
      if (await exists(join(d, p))) { found[p] = d; break; }
    }
  }
  const lacking = plugins.filter((p) => !found[p]);
  checks.push(lacking.length === 0
    ? { name: 'cni plugins', level: 'OK', detail: `${plugins.join(' ')} in ${[...new Set(Object.values(found))].join(' ')}` }
    : { name: 'cni plugins', level: 'FAIL', detail: `missing ${lacking.join(' ')} in ${config.cni.bin_dirs.join(':')}`, fix: 'apt-get install containernetworking-plugins' });

  try {
    checks.push({ name: 'iptables', level: 'OK', detail: await firstLine('iptables', ['--version']) });
  } catch {
    checks.push({ name: 'iptables', level: 'WARN', detail: 'iptables not found: port mappings will fail', fix: 'apt-get install iptables' });
  }

  let dir = config.root_dir;
  while (!(await exists(dir)) && dir !== '/') dir = dirname(dir);
  try {
    const st = await fs.statfs(dir);
    const free = Number(st.bavail) * Number(st.bsize);
    const gib = (free / 2 ** 30).toFixed(1);
    checks.push(free > 10 * 2 ** 30
      ? { name: 'free space', level: 'OK', detail: `${gib} GiB free under ${dir}` }
      : { name: 'free space', level: free > 2 ** 30 ? 'WARN' : 'FAIL', detail: `${gib} GiB free under ${dir}`, fix: 'images and writable layers need room: free space or move root_dir' });
  } catch (err) {
    checks.push({ name: 'free space', level: 'WARN', detail: `statfs ${dir}: ${(err as Error).message}` });
  }
  return checks;
}

export function renderChecks(checks: Check[]): string {
  const w = Math.max(...checks.map((c) => c.name.length), 5);
  const lines = checks.map((c) => `${c.level.padEnd(4)}  ${c.name.padEnd(w)}  ${c.detail}${c.fix ? `\n      ${' '.repeat(w)}  fix: ${c.fix}` : ''}`);
  return lines.join('\n') + '\n';
}

export async function runDoctor(config: Config, out: NodeJS.WritableStream): Promise<number> {
  const checks = await collectChecks(config);
  out.write(renderChecks(checks));
  const failed = checks.filter((c) => c.level === 'FAIL').length;
  out.write(failed ? `\n${failed} hard requirement(s) failed\n` : '\nready to run corral\n');
  return failed ? 1 : 0;
}
