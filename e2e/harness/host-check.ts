/**
 * The whole test run's promise: the host ends as it began. test-all.sh takes a snapshot before
 * the first suite and compares after the last; whatever is new (mounts, container processes,
 * registries, cgroups, links, netns, CNI chains, ip_forward) is listed; temp dirs named corral-*
 * that tests left are listed apart and not counted. With CI=true (or CORRAL_E2E_EXCLUSIVE=1) each
 * item counts as a failure (unless CORRAL_HOSTCHECK=warn); elsewhere other people's work may be
 * running, so they are printed as notes. Before comparing, what the CNI plugins leave on purpose
 * (ip_forward=1, portmap's shared chains) is undone when the run did not find it there.
 *
 *   node dist/e2e/harness/host-check.js snapshot FILE
 *   node dist/e2e/harness/host-check.js compare FILE     exit 1 when something is new (strict mode)
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { takeSnapshot, type Snapshot } from './leaks.js';

interface Stored {
  snap: Record<keyof Snapshot, string[] | string>;
  procs: string[];
  tmp: string[];
}

const WATCHED = new Set(['conmon', 'crun', 'runc', 'catatonit', 'docker-registry', 'linux.uml', 'critest', 'crictl']);

/** "pid comm" of processes whose name says they belong to a test run. */
function watchedProcs(): string[] {
  const out: string[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      const comm = readFileSync(`/proc/${p}/comm`, 'utf8').trim();
      if (WATCHED.has(comm)) out.push(`${p} ${comm}`);
    } catch {
      // gone
    }
  }
  return out;
}

function tempDirs(): string[] {
  const dirs = [tmpdir(), '/var/tmp'];
  return dirs.flatMap((d) => (existsSync(d) ? readdirSync(d).filter((n) => /^corral-/.test(n)).map((n) => `${d}/${n}`) : []));
}

async function snapshot(file: string): Promise<void> {
  const s = await takeSnapshot();
  const snap = Object.fromEntries(Object.entries(s).map(([k, v]) => [k, v instanceof Set ? [...v] : v])) as Stored['snap'];
  writeFileSync(file, JSON.stringify({ snap, procs: watchedProcs(), tmp: tempDirs() } satisfies Stored));
}

/**
 * Undoes what the CNI plugins leave on a host by design, when the run found the host without it:
 * the bridge plugin's net.ipv4.ip_forward=1 and portmap's shared CNI-HOSTPORT-* chains (with only
 * their fixed rules: a DNAT chain still holding a pod's jump is a real leftover and stays, to be
 * reported). A node keeps both; a test host is left as it was found.
 */
function restorePluginResidues(before: Stored): string[] {
  const done: string[] = [];
  const fwd = '/proc/sys/net/ipv4/ip_forward';
  const was = before.snap.ipForward;
  if (typeof was === 'string' && was !== '' && readFileSync(fwd, 'utf8').trim() !== was) {
    writeFileSync(fwd, was);
    done.push(`net.ipv4.ip_forward back to ${was}`);
  }
  let rules: string[];
  try {
    rules = execFileSync('iptables-save', ['-t', 'nat'], { encoding: 'utf8' }).split('\n');
  } catch {
    return done; // no iptables: nothing of it can be left
  }
  const had = new Set(before.snap.chains as string[]);
  const chains = ['CNI-HOSTPORT-DNAT', 'CNI-HOSTPORT-MASQ', 'CNI-HOSTPORT-SETMARK']
    .filter((c) => !had.has(`nat/${c}`) && rules.some((l) => l.startsWith(`:${c} `)));
  if (chains.length === 0 || rules.some((l) => l.startsWith('-A CNI-HOSTPORT-DNAT '))) return done;
  // iptables-save quotes like a shell, so its rule text can be handed back through sh.
  for (const l of rules) {
    if (l.startsWith('-A ') && chains.some((c) => l.endsWith(` -j ${c}`))) execFileSync('sh', ['-c', `iptables -t nat -D ${l.slice(3)}`]);
  }
  for (const c of chains) {
    execFileSync('iptables', ['-t', 'nat', '-F', c]);
    execFileSync('iptables', ['-t', 'nat', '-X', c]);
  }
  done.push(`removed ${chains.join(', ')}`);
  return done;
}

async function compare(file: string): Promise<number> {
  const before = JSON.parse(readFileSync(file, 'utf8')) as Stored;
  const restored = restorePluginResidues(before);
  if (restored.length) console.log(`host-check: undid what CNI plugins leave by design: ${restored.join('; ')}`);
  const now = await takeSnapshot();
  const was = (k: keyof Snapshot) => new Set(before.snap[k] as string[]);
  const found: string[] = [];
  const diff = (kind: string, k: keyof Snapshot, filter: (x: string) => boolean = () => true) => {
    const old = was(k);
    for (const x of now[k] as Set<string>) if (!old.has(x) && filter(x)) found.push(`${kind}: ${x}`);
  };
  diff('mount', 'mounts', (m) => /^(overlay|nsfs) /.test(m) || m.includes('/corral-'));
  diff('cgroup', 'cgroups');
  diff('link', 'links');
  diff('netns', 'netns');
  diff('iptables', 'chains');
  diff('dir', 'defaultDirs');
  const oldProcs = new Set(before.procs);
  for (const p of watchedProcs()) if (!oldProcs.has(p)) found.push(`process: ${p}`);
  // Temp dirs left by tests are litter, not a changed host: listed, never counted.
  const oldTmp = new Set(before.tmp);
  const litter = tempDirs().filter((d) => !oldTmp.has(d));
  if (litter.length) {
    const byPrefix = new Map<string, number>();
    for (const d of litter) {
      const p = d.replace(/[-.][A-Za-z0-9]{6}$/, '-*');
      byPrefix.set(p, (byPrefix.get(p) ?? 0) + 1);
    }
    console.log(`host-check: temp dirs left by tests (not counted): ${[...byPrefix].map(([p, n]) => `${p} x${n}`).join(', ')}`);
  }
  if (before.snap.ipForward !== now.ipForward) found.push(`sysctl: net.ipv4.ip_forward ${before.snap.ipForward} -> ${now.ipForward}`);
  const strict = (process.env.CI === 'true' || process.env.CORRAL_E2E_EXCLUSIVE === '1') && process.env.CORRAL_HOSTCHECK !== 'warn';
  if (found.length === 0) {
    console.log('host-check: the host is as the run found it');
    return 0;
  }
  console.log(`host-check: new on the host since the run began${strict ? '' : ' (not counted: CI is not set, others may be at work)'}:`);
  for (const f of found) console.log(`  ${f}`);
  return strict ? 1 : 0;
}

async function main(argv: string[]): Promise<number> {
  const [cmd, file] = argv;
  if (!file || (cmd !== 'snapshot' && cmd !== 'compare')) throw new Error('usage: host-check.js snapshot|compare FILE');
  if (cmd === 'snapshot') {
    await snapshot(file);
    return 0;
  }
  return compare(file);
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e: Error) => {
    console.error(`host-check: ${e.message}`);
    process.exitCode = 2;
  },
);
