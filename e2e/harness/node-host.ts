/**
 * What a kubelet changes on a host, recorded before it starts and put back after it stopped.
 * Both the kubelet harness (kubelet.ts) and the node conformance runner (which lets the suite
 * start the kubelet) use it:
 *
 *   const host = new NodeHostState();      // snapshot; makes the cgroup root in every hierarchy
 *   ... kubelet with cgroupRoot: host.cgroupRoot ...
 *   await host.restore([dirs whose mounts go]);
 *
 * - the kernel tunables the kubelet sets when protectKernelDefaults is off (vm.overcommit_memory,
 *   vm.panic_on_oom, kernel.panic, kernel.panic_on_oops, kernel.keys.root_max*);
 * - a cgroup root of its own (/corral-e2e-<id>) in every hierarchy, so that the kubelet's kubepods
 *   tree never mixes with the host's cgroups and is removed whole; or, for the node conformance
 *   suite, which looks for /kubepods itself (`{ hostCgroupRoot: true }`), the host's root: then no
 *   /kubepods may exist before (another kubelet's) and the one the kubelet makes goes after;
 * - mounts under the given dirs (the rshared bind of the root dir, tmpfs of secret, projected and
 *   Memory volumes), innermost first;
 * - the iptables chains the kubelet makes for kube-proxy (KUBE-IPTABLES-HINT, KUBE-KUBELET-CANARY);
 * - /var/lib/kubelet, which a kubelet creates whatever its --root-dir says (the device plugin
 *   socket dir is fixed there) and the node suite uses as its root dir: removed when it was not
 *   there before.
 */
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, rmdirSync, statSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { run } from './exec.js';
import { readMounts } from './leaks.js';

const TUNABLES = ['vm/overcommit_memory', 'vm/panic_on_oom', 'kernel/panic', 'kernel/panic_on_oops', 'kernel/keys/root_maxkeys', 'kernel/keys/root_maxbytes'];
const CGROUP_FS = '/sys/fs/cgroup';
export const KUBELET_DEFAULT_ROOT = '/var/lib/kubelet';

/** Every cgroup hierarchy root of this host: v1 controllers (each once) and the cgroup2 mount. */
export function cgroupHierarchies(): string[] {
  const out: string[] = [];
  const seen = new Set<string>();
  for (const m of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const f = m.split(' ');
    const sep = f.indexOf('-');
    if (sep < 0) continue;
    const fstype = f[sep + 1];
    const point = f[4]!;
    if ((fstype === 'cgroup' || fstype === 'cgroup2') && point.startsWith(CGROUP_FS) && !seen.has(f[2]!)) {
      seen.add(f[2]!);
      out.push(point);
    }
  }
  return out;
}

/** Removes a cgroup directory and everything below it, innermost first (rmdir(2) only). */
export function removeCgroupTree(dir: string): void {
  let entries: string[] = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return;
  }
  for (const e of entries) {
    const p = join(dir, e);
    try {
      if (statSync(p).isDirectory()) removeCgroupTree(p);
    } catch { /* gone */ }
  }
  // A cgroup whose last process is still exiting answers EBUSY for a moment.
  for (let i = 0; i < 50; i++) {
    try {
      rmdirSync(dir);
      return;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return;
    }
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 100);
  }
}

/** Unmounts everything mounted at or under each dir, innermost first (lazily: a pod may still hold one). */
export async function unmountUnder(dirs: string[]): Promise<void> {
  const points = readMounts().map((m) => m.point).filter((p) => dirs.some((d) => p === d || p.startsWith(d + '/')));
  for (const p of [...new Set(points)].sort((a, b) => b.length - a.length)) {
    await run('umount', ['-l', p], { timeoutMs: 10_000 }).catch(() => undefined);
  }
}

type Crictl = (args: readonly string[], opts?: { timeoutMs?: number }) => Promise<{ stdout: string }>;

/**
 * Removes every pod through the runtime until none is left (a hundred pods outlast one
 * `rmp -a`; a spec that failed may have skipped its cleanup). A kubelet's cgroups can go only
 * once every container has left them, so this comes before restore().
 */
export async function removeAllPods(crictl: Crictl, timeoutMs = 300_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  do {
    await crictl(['rmp', '-a', '-f'], { timeoutMs: 120_000 }).catch(() => undefined);
  } while (Date.now() < deadline && (await crictl(['pods', '-q'], { timeoutMs: 30_000 }).then((r) => r.stdout.trim() !== '', () => false)));
}

export class NodeHostState {
  /** The kubelet's cgroupRoot: "/corral-e2e-<id>", present in every hierarchy, or "/". */
  readonly cgroupRoot: string;
  private readonly tunables = new Map<string, string>();
  private readonly cgroupDirs: string[] = [];
  private readonly hadKubeletRoot = existsSync(KUBELET_DEFAULT_ROOT);

  constructor(opts: { hostCgroupRoot?: boolean } = {}) {
    if (opts.hostCgroupRoot) {
      this.cgroupRoot = '/';
      const taken = cgroupHierarchies().map((h) => join(h, 'kubepods')).filter((d) => existsSync(d));
      if (taken.length) throw new Error(`a kubelet's cgroups are on this host (${taken[0]}): one kubelet at a time`);
      this.cgroupDirs.push(...cgroupHierarchies().map((h) => join(h, 'kubepods')));
    } else {
      this.cgroupRoot = `/corral-e2e-${randomBytes(4).toString('hex')}`;
      this.makeCgroupRoot();
    }
    for (const t of TUNABLES) {
      try {
        this.tunables.set(t, readFileSync(join('/proc/sys', t), 'utf8').trim());
      } catch { /* not on this kernel */ }
    }
  }

  /** cgroupRoot must exist before the kubelet starts; a new v1 cpuset cgroup gets its parent's cpus and mems. */
  private makeCgroupRoot(): void {
    for (const root of cgroupHierarchies()) {
      const d = join(root, this.cgroupRoot);
      mkdirSync(d, { recursive: true });
      this.cgroupDirs.push(d);
      for (const f of ['cpuset.cpus', 'cpuset.mems']) {
        if (!existsSync(join(d, f)) || readFileSync(join(d, f), 'utf8').trim()) continue;
        writeFileSync(join(d, f), readFileSync(join(root, f), 'utf8').trim() || readFileSync(join(root, `${f.replace('cpuset.', 'cpuset.effective_')}`), 'utf8'));
      }
    }
    // cgroup v2: the controllers the kubelet needs must be on in the root's subtree for its cgroup root.
    if (existsSync(join(CGROUP_FS, 'cgroup.controllers'))) {
      const offered = readFileSync(join(CGROUP_FS, 'cgroup.controllers'), 'utf8').trim().split(/\s+/).filter(Boolean);
      const d = join(CGROUP_FS, this.cgroupRoot);
      try {
        writeFileSync(join(d, 'cgroup.subtree_control'), offered.map((c) => `+${c}`).join(' '));
      } catch { /* the kubelet reports what it misses */ }
    }
  }

  /**
   * Call once the kubelet has stopped and corral has removed every pod: mounts under `mountDirs`
   * (and under /var/lib/kubelet), the cgroup root, tunables, chains, /var/lib/kubelet.
   */
  async restore(mountDirs: string[]): Promise<void> {
    await unmountUnder([...mountDirs, KUBELET_DEFAULT_ROOT]);
    for (const d of [...this.cgroupDirs].reverse()) removeCgroupTree(d);
    for (const [t, v] of this.tunables) {
      try {
        if (readFileSync(join('/proc/sys', t), 'utf8').trim() !== v) writeFileSync(join('/proc/sys', t), v);
      } catch { /* read-only here */ }
    }
    for (const bin of ['iptables', 'ip6tables']) {
      for (const table of ['mangle', 'nat', 'filter']) {
        for (const chain of ['KUBE-IPTABLES-HINT', 'KUBE-KUBELET-CANARY']) {
          const r = await run(bin, ['-w', '-t', table, '-L', chain, '-n'], { timeoutMs: 10_000 }).catch(() => undefined);
          if (r?.code !== 0) continue;
          await run(bin, ['-w', '-t', table, '-F', chain], { timeoutMs: 10_000 }).catch(() => undefined);
          await run(bin, ['-w', '-t', table, '-X', chain], { timeoutMs: 10_000 }).catch(() => undefined);
        }
      }
    }
    if (!this.hadKubeletRoot && existsSync(KUBELET_DEFAULT_ROOT)) {
      // Nothing may be mounted below it any more: rmSync never crosses into a mount it cannot see.
      if (!readMounts().some((m) => m.point.startsWith(KUBELET_DEFAULT_ROOT + '/') || m.point === KUBELET_DEFAULT_ROOT)) {
        rmSync(KUBELET_DEFAULT_ROOT, { recursive: true, force: true });
      }
    }
  }
}
