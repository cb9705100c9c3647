/**
 * The benchmark runner (not part of the test suite: it takes minutes).
 *
 *   node dist/e2e/bench/run.js [--only pods,containers,streaming,stats,pull] [--out FILE] [--quick]
 *
 * Every figure is compared with a floor measured in the same run (see README.md). Each bench
 * gets its own daemon (e2e harness: temp dirs, its own CNI conflist and bridge, registry
 * mirrors); one registry with the test images serves them all. Prints a table per bench and
 * writes all results as JSON (default bench-results.json). A part that cannot run prints
 * "skipped: <reason>" and the others go on; the exit code is 1 when a bench failed outright
 * or left something behind.
 */
import { existsSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { startHarness, type Harness } from '../harness/index.js';
import { DIST, REPO } from '../harness/paths.js';
import { registryEnv, sharedRegistry, startRegistryWithImages, type RegistryHandle } from '../harness/registry.js';
import { benchContainers } from './containers.js';
import { CriClient, interrupt, newResult, round, sh, type BenchResult, type Row } from './lib.js';
import { benchPods } from './pods.js';
import { benchStats } from './stats.js';
import { benchStreaming } from './streaming.js';

const ALL = ['pods', 'containers', 'streaming', 'stats', 'pull'] as const;
type Name = (typeof ALL)[number];

interface Args { only: Name[]; out: string; quick: boolean }

function parseArgs(argv: string[]): Args {
  const a: Args = { only: [...ALL], out: 'bench-results.json', quick: false };
  for (let i = 0; i < argv.length; i++) {
    const k = argv[i];
    if (k === '--only') {
      const names = (argv[++i] ?? '').split(',').filter(Boolean);
      for (const n of names) if (!(ALL as readonly string[]).includes(n)) throw new Error(`unknown bench ${n} (known: ${ALL.join(', ')})`);
      a.only = names as Name[];
    } else if (k === '--out') a.out = argv[++i] ?? a.out;
    else if (k === '--quick') a.quick = true;
    else throw new Error(`usage: run.js [--only ${ALL.join(',')}] [--out FILE] [--quick]`);
  }
  return a;
}

/** The host leak checker (shared/tools/leaks beside the repo, or $CORRAL_LEAKS_TOOL), if present. */
async function leaksTool(): Promise<Set<string> | undefined> {
  const tool = process.env.CORRAL_LEAKS_TOOL || join(REPO, '..', 'shared', 'tools', 'leaks');
  if (!existsSync(tool)) return undefined;
  const r = await sh('bash', [tool], 60_000).catch((e: Error) => ({ stdout: e.message.split('\n').slice(1).join('\n') }));
  // A process line without a command line is one that was exiting while the tool looked.
  return new Set(r.stdout.split('\n').filter((l) => /^\w+: /.test(l) && !/^process: \d+\s*$/.test(l)));
}

function fmt(x: number | undefined): string {
  return x === undefined || Number.isNaN(x) ? '' : String(x);
}

function printTable(r: BenchResult): void {
  const head = ['metric', 'corral', 'floor', 'ratio', 'unit', 'goal', 'ok'];
  const lines = r.rows.map((x: Row) => [x.metric, fmt(x.corral), fmt(x.floor), x.ratio === undefined ? '' : `${x.ratio}x`, x.unit, x.goal ?? '', x.ok === undefined ? '' : x.ok ? 'yes' : 'NO']);
  const w = head.map((h, i) => Math.max(h.length, ...lines.map((l) => l[i]!.length)));
  const line = (cols: string[]) => cols.map((c, i) => (i === 0 ? c.padEnd(w[i]!) : c.padStart(w[i]!))).join('  ').trimEnd();
  console.log(`\n== ${r.name}`);
  if (lines.length) {
    console.log(line(head));
    for (const l of lines) console.log(line(l));
  }
  for (const s of r.skipped) console.log(`skipped: ${s}`);
  for (const n of (r.raw.notes as string[] | undefined) ?? []) console.log(`note: ${n}`);
}

/** pull.ts (written with the image service) runs as its own process; its last line is the summary. */
async function benchPull(quick: boolean): Promise<BenchResult> {
  const res = newResult('pull');
  const r = await sh(process.execPath, [join(DIST, 'e2e', 'bench', 'pull.js'), '--runs', quick ? '1' : '3'], 30 * 60_000);
  const lines = r.stdout.trim().split('\n').filter((l) => l.startsWith('{'));
  const s = JSON.parse(lines[lines.length - 1] ?? '{}') as Record<string, number | string>;
  res.raw = { summary: s, runs: lines.slice(0, -1).map((l) => JSON.parse(l)) };
  const fl = Number(s.floorMBps);
  const co = Number(s.corralMBps);
  res.rows.push({ metric: `cold pull ${s.compressedMB} MB (${s.layers} layers)`, corral: co, floor: fl, ratio: round(co / fl), unit: 'MB/s', goal: '>= 1.5x', ok: co / fl >= 1.5 });
  res.rows.push({ metric: 'second pull (present) p50', corral: Number(s.secondPullMs), unit: 'ms', goal: '< 50 ms', ok: Number(s.secondPullMs) < 50 });
  return res;
}

const harnessMarks: string[] = [];

type DaemonBench = (h: Harness, cri: CriClient, quick: boolean) => Promise<BenchResult>;

const DAEMON_BENCHES: Record<Exclude<Name, 'pull'>, DaemonBench> = {
  pods: (h, cri, q) => benchPods(h, cri, { sequential: q ? 10 : 50, parallel: q ? 10 : 50, concurrency: 10 }),
  containers: (h, cri, q) => benchContainers(h, cri, { sequential: q ? 10 : 50, parallel: q ? 10 : 50, concurrency: 10, running: q ? 10 : 50 }),
  streaming: (h, cri, q) => benchStreaming(h, cri, { execRuns: q ? 10 : 30, transferMB: q ? 20 : 100, transferRuns: q ? 1 : 5 }),
  stats: (h, cri, q) => benchStats(h, cri, { containers: q ? 20 : 100, calls: q ? 10 : 30, stormMs: q ? 2000 : 5000 }),
};

const results: BenchResult[] = [];

async function main(): Promise<number> {
  const args = parseArgs(process.argv.slice(2));
  const onSignal = (sig: NodeJS.Signals) => {
    if (interrupt.requested) process.exit(130);
    interrupt.requested = true;
    console.error(`${sig}: cleaning up (again to quit at once, leaving things behind)`);
    // Runs before the harness' handler (registered later), which stops the daemons and exits.
    for (const c of interrupt.cleanups) c();
    try {
      writeFileSync(args.out, JSON.stringify({ interrupted: sig, results }, null, 2) + '\n');
    } catch {
      // nothing more to do on the way out
    }
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  const leaksBefore = await leaksTool();
  let failed = false;
  let reg: RegistryHandle | undefined;
  const started = new Date().toISOString();
  try {
    for (const name of args.only) {
      if (interrupt.requested) break;
      const t0 = Date.now();
      const load0 = loadavg().map((x) => round(x, 1));
      let r: BenchResult;
      try {
        if (name === 'pull') r = await benchPull(args.quick);
        else {
          if (!sharedRegistry()) {
            reg = await startRegistryWithImages();
            Object.assign(process.env, registryEnv(reg));
          }
          r = await withDaemon(name, DAEMON_BENCHES[name], args.quick);
        }
      } catch (e) {
        failed = true;
        r = newResult(name);
        r.skipped.push(`failed: ${(e as Error).stack ?? e}`.slice(0, 3000));
      }
      r.raw.seconds = round((Date.now() - t0) / 1000, 1);
      // The figures are ratios within one run, but a busy host still widens them: say how busy.
      r.raw.loadavg = { start: load0, end: loadavg().map((x) => round(x, 1)) };
      (r.raw.notes as string[] | undefined ?? (r.raw.notes = [] as string[]) as string[]).push(`load average ${load0[0]} at the start, ${round(loadavg()[0]!, 1)} at the end (${cpus().length} CPUs)`);
      if (r.raw.teardown) failed = true;
      printTable(r);
      results.push(r);
    }
  } finally {
    if (reg) await reg.stop().catch(() => {});
  }
  const leaksAfter = await leaksTool();
  const appeared = leaksBefore && leaksAfter ? [...leaksAfter].filter((l) => !leaksBefore.has(l)) : undefined;
  // Other work on the host comes and goes during a run: what names this run's harness dirs,
  // bridges, pod/container ids or floor containers is ours; the rest is only counted.
  const marks = [...harnessMarks, ...CriClient.seenIds];
  const newLeaks = appeared?.filter((l) => marks.some((m) => l.includes(m)) || /floor\d{4}/.test(l));
  if (newLeaks?.length) {
    failed = true;
    console.log(`\nleaks: left by this run:\n  ${newLeaks.join('\n  ')}`);
  } else if (newLeaks) console.log('\nleaks: nothing left by this run');
  if (appeared && newLeaks && appeared.length > newLeaks.length) {
    console.log(`leaks: ${appeared.length - newLeaks.length} other new item(s) on the host name nothing of this run (other work; see ${args.out})`);
  }
  writeFileSync(args.out, JSON.stringify({ started, finished: new Date().toISOString(), host: { cpus: cpus().length }, results, newLeaks, otherNewOnHost: appeared?.filter((l) => !newLeaks?.includes(l)) }, null, 2) + '\n');
  console.log(`results: ${args.out}`);
  return failed ? 1 : 0;
}

async function withDaemon(name: string, bench: DaemonBench, quick: boolean): Promise<BenchResult> {
  // info, the daemon's default: debug logging would be part of what is measured.
  const h = await startHarness({ logLevel: 'info' });
  harnessMarks.push(h.dir, h.bridge);
  const cri = new CriClient(h.socket);
  let r: BenchResult | undefined;
  try {
    r = await bench(h, cri, quick);
    return r;
  } finally {
    cri.close();
    try {
      await h.stop();
    } catch (e) {
      const msg = `teardown of ${name}: ${(e as Error).message}`.slice(0, 3000);
      if (r) {
        r.skipped.push(msg);
        r.raw.teardown = msg;
      } else console.error(msg);
    }
  }
}

main().then(
  (code) => { process.exitCode = code; },
  (e: Error) => {
    console.error(e.stack ?? e.message);
    process.exitCode = 2;
  },
);
