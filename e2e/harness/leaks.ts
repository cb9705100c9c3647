/**
 * What a daemon under test may leave on the host, found by comparing a snapshot taken before it
 * started with one taken after it stopped (the logic of shared/tools/leaks, made relative so that
 * the host's own state never counts):
 *   mounts under the harness dir (pinned namespaces, rootfs overlays, shm) and new overlay/nsfs
 *   mounts anywhere; processes that carry the harness' environment marker or mention its dir, and
 *   their descendants (containers are children of conmon); new cgroup directories; new network
 *   links and named netns; new iptables chains of CNI; new SysV shm segments.
 *
 * Things that CNI plugins leave by design (the bridge, the shared CNI-HOSTPORT-* chains,
 * net.ipv4.ip_forward) are not leaks: cleanup() removes them when no other harness is alive, so
 * that the host ends as it began.
 */
import { readFileSync, readdirSync, statSync, existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { run } from './exec.js';

export interface Snapshot {
  mounts: Set<string>;
  /** "pid:starttime" of every process, so that a recycled pid is not mistaken for an old one. */
  procs: Set<string>;
  cgroups: Set<string>;
  links: Set<string>;
  netns: Set<string>;
  chains: Set<string>;
  shm: Set<string>;
  ipForward: string;
  defaultDirs: Set<string>;
}

export interface Leak {
  kind: 'mount' | 'process' | 'cgroup' | 'link' | 'netns' | 'iptables' | 'shm' | 'dir' | 'daemon';
  what: string;
  /** Not attributable to this run (exclusive mode off): reported, neither failed nor removed. */
  note?: boolean;
}

export interface LeakScope {
  /** The harness' temporary directory: everything under it belongs to this run. */
  dir: string;
  /** Value of the CORRAL_E2E_RUN variable given to the daemon (inherited by conmon, crun...). */
  marker: string;
  /** The harness' CNI bridge: expected to exist after pods ran; removed by cleanup. */
  bridge: string;
  /** Pod/container ids this daemon handled: cgroups and chains naming them are this run's. */
  ids: string[];
  /**
   * Nothing else creates pods on this host now (CI, no other harness alive): everything new is
   * this run's. Otherwise (a developer's machine, other tests running) only what can be
   * attributed by dir, marker, id or bridge counts, and the rest is reported as a note.
   */
  exclusive: boolean;
  /** Mounts the harness made itself (the state dir's tmpfs): not leaks, though cleanup detaches them too. */
  ownMounts?: string[];
}

const CGROUP_ROOT = '/sys/fs/cgroup';
/**
 * Directories the daemon would use without a config (the harness points it elsewhere), and the
 * one a kubelet makes whatever its root dir (the kubelet harnesses remove it after themselves).
 */
const DEFAULT_DIRS = ['/run/corral', '/var/lib/corral', '/var/lib/kubelet'];

function unescapeMount(s: string): string {
  return s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
}

interface MountEntry { point: string; fstype: string }

export function readMounts(): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    if (!line) continue;
    const f = line.split(' ');
    const sep = f.indexOf('-');
    out.push({ point: unescapeMount(f[4]!), fstype: f[sep + 1] ?? '' });
  }
  return out;
}

interface ProcEntry { pid: number; ppid: number; start: string; comm: string; cmdline: string }

function readProcs(): ProcEntry[] {
  const out: ProcEntry[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      // comm may contain spaces and parentheses: fields after the last ')' are fixed.
      const close = stat.lastIndexOf(')');
      const comm = stat.slice(stat.indexOf('(') + 1, close);
      const rest = stat.slice(close + 2).split(' ');
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0/g, ' ').trim();
      out.push({ pid: Number(name), ppid: Number(rest[1]), start: rest[19]!, comm, cmdline });
    } catch {
      // exited while we looked
    }
  }
  return out;
}

function readEnviron(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8');
  } catch {
    return '';
  }
}

function cgroupHierarchies(): string[] {
  const roots: string[] = [];
  if (existsSync(join(CGROUP_ROOT, 'cgroup.procs'))) roots.push(CGROUP_ROOT);
  else {
    for (const d of safeReaddir(CGROUP_ROOT)) {
      const p = join(CGROUP_ROOT, d);
      if (existsSync(join(p, 'cgroup.procs'))) roots.push(p);
    }
  }
  return roots;
}

function safeReaddir(p: string): string[] {
  try {
    return readdirSync(p);
  } catch {
    return [];
  }
}

function readCgroups(): Set<string> {
  const out = new Set<string>();
  const walk = (dir: string, depth: number) => {
    if (depth > 8) return;
    for (const e of safeReaddir(dir)) {
      if (e === 'process_api') continue;
      const p = join(dir, e);
      try {
        if (!statSync(p).isDirectory() || !existsSync(join(p, 'cgroup.procs'))) continue;
      } catch {
        continue;
      }
      out.add(p);
      walk(p, depth + 1);
    }
  };
  for (const h of cgroupHierarchies()) walk(h, 1);
  return out;
}

async function readLinks(): Promise<Set<string>> {
  const r = await run('ip', ['-o', 'link', 'show'], { timeoutMs: 10_000 });
  const out = new Set<string>();
  for (const line of r.stdout.split('\n')) {
    const m = /^\d+: ([^:@]+)/.exec(line);
    if (m) out.add(m[1]!);
  }
  return out;
}

async function readNetns(): Promise<Set<string>> {
  const r = await run('ip', ['netns', 'list'], { timeoutMs: 10_000 });
  return new Set(r.stdout.split('\n').map((l) => l.split(' ')[0]!).filter(Boolean));
}

/** "table/chain" for every chain of CNI or corral in every iptables table. */
async function readChains(): Promise<Set<string>> {
  return new Set((await readChainRules()).keys());
}

/** Chains of CNI or corral ("table/chain") with the rules that jump to them or sit in them. */
async function readChainRules(): Promise<Map<string, string[]>> {
  const out = new Map<string, string[]>();
  const r = await run('iptables-save', [], { timeoutMs: 20_000 }).catch(() => null);
  if (!r) return out;
  let table = '';
  const rules: string[] = [];
  for (const line of r.stdout.split('\n')) {
    if (line.startsWith('*')) table = line.slice(1);
    const m = /^:((?:CNI|CORRAL)\S*)/.exec(line);
    if (m) out.set(`${table}/${m[1]}`, []);
    if (line.startsWith('-A ')) rules.push(`${table} ${line}`);
  }
  for (const rule of rules) {
    const [table, , chain] = rule.split(' ');
    const jump = /\s-[jg] (\S+)/.exec(rule)?.[1];
    for (const c of [chain, jump]) out.get(`${table}/${c}`)?.push(rule);
  }
  return out;
}

function readShm(): Set<string> {
  const out = new Set<string>();
  try {
    const lines = readFileSync('/proc/sysvipc/shm', 'utf8').split('\n').slice(1);
    for (const l of lines) {
      const f = l.trim().split(/\s+/);
      if (f.length > 2) out.add(f[1]!); // shmid
    }
  } catch {
    // no SysV IPC
  }
  return out;
}

export async function takeSnapshot(): Promise<Snapshot> {
  return {
    mounts: new Set(readMounts().map((m) => `${m.fstype} ${m.point}`)),
    procs: new Set(readProcs().map((p) => `${p.pid}:${p.start}`)),
    cgroups: readCgroups(),
    links: await readLinks(),
    netns: await readNetns(),
    chains: await readChains(),
    shm: readShm(),
    ipForward: readIpForward(),
    defaultDirs: new Set(DEFAULT_DIRS.filter((d) => existsSync(d))),
  };
}

function readIpForward(): string {
  try {
    return readFileSync('/proc/sys/net/ipv4/ip_forward', 'utf8').trim();
  } catch {
    return '';
  }
}

const under = (p: string, dir: string) => p === dir || p.startsWith(dir + '/');

/** Processes of this run: marked or naming its dir, and all their descendants. */
function ourProcesses(scope: LeakScope): ProcEntry[] {
  const procs = readProcs().filter((p) => p.pid !== process.pid);
  const mine = new Set<number>();
  for (const p of procs) {
    if (p.cmdline.includes(scope.dir) || readEnviron(p.pid).split('\0').includes(`CORRAL_E2E_RUN=${scope.marker}`)) {
      mine.add(p.pid);
    }
  }
  let grew = true;
  while (grew) {
    grew = false;
    for (const p of procs) {
      if (!mine.has(p.pid) && mine.has(p.ppid)) {
        mine.add(p.pid);
        grew = true;
      }
    }
  }
  return procs.filter((p) => mine.has(p.pid));
}

function isPodChain(chain: string): boolean {
  // CNI-HOSTPORT-* are shared by every pod and stay after the last DEL by design.
  return !/^CNI-HOSTPORT-/.test(chain.split('/')[1]!);
}

/** Everything present now that was not before and that this run caused (or may have). */
export async function findLeaks(before: Snapshot, scope: LeakScope): Promise<Leak[]> {
  const leaks: Leak[] = [];
  const note = !scope.exclusive;
  const mentionsId = (s: string) => scope.ids.some((id) => s.includes(id));
  for (const m of readMounts()) {
    if (scope.ownMounts?.includes(m.point)) continue;
    if (under(m.point, scope.dir) || mentionsId(m.point)) leaks.push({ kind: 'mount', what: `${m.fstype} ${m.point}` });
    else if ((m.fstype === 'overlay' || m.fstype === 'nsfs') && !before.mounts.has(`${m.fstype} ${m.point}`)) {
      leaks.push({ kind: 'mount', what: `${m.fstype} ${m.point}`, note });
    }
  }
  for (const p of ourProcesses(scope)) {
    leaks.push({ kind: 'process', what: `${p.pid} ${p.comm}: ${p.cmdline.slice(0, 160)}` });
  }
  for (const c of readCgroups()) {
    if (before.cgroups.has(c)) continue;
    leaks.push({ kind: 'cgroup', what: c, note: note && !mentionsId(c) });
  }
  const ports = await bridgePorts(scope.bridge);
  for (const l of ports) leaks.push({ kind: 'link', what: `${l} (port of ${scope.bridge})` });
  for (const l of await readLinks()) {
    if (before.links.has(l) || l === scope.bridge || ports.includes(l)) continue;
    leaks.push({ kind: 'link', what: l, note });
  }
  for (const n of await readNetns()) {
    if (!before.netns.has(n)) leaks.push({ kind: 'netns', what: n, note: note && !mentionsId(n) });
  }
  for (const [c, rules] of await readChainRules()) {
    if (before.chains.has(c) || !isPodChain(c)) continue;
    leaks.push({ kind: 'iptables', what: c, note: note && !rules.some(mentionsId) });
  }
  for (const d of DEFAULT_DIRS) {
    if (!before.defaultDirs.has(d) && existsSync(d)) {
      leaks.push({ kind: 'dir', what: `${d} (created by this run)`, note });
    }
  }
  return leaks;
}

async function bridgePorts(bridge: string): Promise<string[]> {
  const r = await run('ip', ['-o', 'link', 'show', 'master', bridge], { timeoutMs: 10_000 });
  if (r.code !== 0) return [];
  return r.stdout.split('\n').map((l) => /^\d+: ([^:@]+)/.exec(l)?.[1]).filter((x): x is string => !!x);
}

/**
 * Puts the host back as `before` found it, as far as this run is concerned: kills this run's
 * processes (by pid), detaches mounts under its dir, removes new cgroups, links, chains and
 * shm segments that can be attributed to it, the bridge, and restores ip_forward. Returns what it
 * could not undo.
 */
export async function cleanup(before: Snapshot, scope: LeakScope): Promise<string[]> {
  const problems: string[] = [];
  // Processes first: they hold mounts and cgroups busy.
  const procs = ourProcesses(scope);
  for (const p of procs) {
    try {
      process.kill(p.pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
  for (let i = 0; i < 50 && ourProcesses(scope).length > 0; i++) await new Promise((r) => setTimeout(r, 100));
  for (const p of ourProcesses(scope)) problems.push(`process ${p.pid} ${p.comm} survived SIGKILL`);

  // Mounts under our dir, deepest first; MNT_DETACH so a busy mount does not stop the rest.
  const mine = readMounts().filter((m) => under(m.point, scope.dir)).map((m) => m.point);
  mine.sort((a, b) => b.length - a.length);
  for (const p of mine) {
    const r = await run('umount', ['-l', p], { timeoutMs: 10_000 });
    if (r.code !== 0 && readMounts().some((m) => m.point === p)) problems.push(`umount ${p}: ${r.stderr.trim()}`);
  }

  // Links: ports of our bridge (veths of pods that were never torn down), then the bridge.
  for (const l of await bridgePorts(scope.bridge)) await run('ip', ['link', 'del', l], { timeoutMs: 10_000 });
  if ((await readLinks()).has(scope.bridge)) {
    const r = await run('ip', ['link', 'del', scope.bridge], { timeoutMs: 10_000 });
    if (r.code !== 0) problems.push(`ip link del ${scope.bridge}: ${r.stderr.trim()}`);
  }

  // Cgroups: new ones that are ours, deepest first (a parent cannot go before its children).
  const mentionsId = (s: string) => scope.ids.some((id) => s.includes(id));
  const cgs = [...readCgroups()].filter((c) => !before.cgroups.has(c) && (scope.exclusive || mentionsId(c)));
  cgs.sort((a, b) => b.length - a.length);
  for (const c of cgs) {
    // EBUSY for a moment after the last task exited is normal: the kernel frees it lazily.
    for (let i = 0; i < 20; i++) {
      const r = await run('rmdir', [c], { timeoutMs: 10_000 });
      if (r.code === 0 || !existsSync(c)) break;
      if (i === 19) problems.push(`rmdir ${c}: ${r.stderr.trim()}`);
      await new Promise((res) => setTimeout(res, 100));
    }
  }

  const chainRules = await readChainRules();
  const podChains = [...chainRules].filter(([c, rules]) => !before.chains.has(c) && isPodChain(c)
    && (scope.exclusive || rules.some(mentionsId))).map(([c]) => c);
  problems.push(...(await removeChains(podChains)));

  if (scope.exclusive) {
    const chains = [...(await readChains())].filter((c) => !before.chains.has(c));
    // Pod chains before the shared ones: the shared ones are targets of pod rules.
    chains.sort((a, b) => Number(isPodChain(b)) - Number(isPodChain(a)));
    const err = await removeChains(chains);
    problems.push(...err);
    for (const id of readShm()) {
      if (!before.shm.has(id)) await run('ipcrm', ['-m', id], { timeoutMs: 10_000 });
    }
    for (const n of await readNetns()) {
      if (!before.netns.has(n)) await run('ip', ['netns', 'del', n], { timeoutMs: 10_000 });
    }
    if (before.ipForward && readIpForward() !== before.ipForward) {
      try {
        writeFileSync('/proc/sys/net/ipv4/ip_forward', before.ipForward);
      } catch (e) {
        problems.push(`restore ip_forward: ${(e as Error).message}`);
      }
    }
  }
  return problems;
}

/** Deletes every rule that jumps to one of `chains` ("table/chain"), then the chains. */
async function removeChains(chains: string[]): Promise<string[]> {
  if (chains.length === 0) return [];
  const problems: string[] = [];
  const byTable = new Map<string, string[]>();
  for (const c of chains) {
    const [t, n] = c.split('/') as [string, string];
    byTable.set(t, [...(byTable.get(t) ?? []), n]);
  }
  for (const [table, names] of byTable) {
    const dump = await run('iptables-save', ['-t', table], { timeoutMs: 20_000 });
    const doomed = new Set(names);
    for (const line of dump.stdout.split('\n')) {
      if (!line.startsWith('-A ')) continue;
      const f = line.split(' ');
      const jump = f[f.indexOf('-j') + 1] ?? f[f.indexOf('-g') + 1];
      if (jump && doomed.has(jump) && !doomed.has(f[1]!)) {
        // iptables-save output is shell-quoted; only comments carry quotes, and splitting on
        // spaces inside a quoted comment would mangle it, so let a shell re-split the line.
        await run('sh', ['-c', `iptables -w -t ${table} -D ${line.slice(3)}`], { timeoutMs: 10_000 });
      }
    }
    for (const n of names) await run('iptables', ['-w', '-t', table, '-F', n], { timeoutMs: 10_000 });
    for (const n of names) {
      const r = await run('iptables', ['-w', '-t', table, '-X', n], { timeoutMs: 10_000 });
      if (r.code !== 0) problems.push(`iptables -t ${table} -X ${n}: ${r.stderr.trim()}`);
    }
  }
  return problems;
}

export function formatLeaks(leaks: Leak[]): string {
  return leaks.map((l) => `  ${l.kind}: ${l.what}`).join('\n');
}
