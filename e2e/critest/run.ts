/**
 * critest runner: runs critest v1.37.0 (the CRI conformance suite of cri-tools) against a corral
 * started by the e2e harness, prints every spec's result and a summary, and holds the line at the
 * committed floor (e2e/critest-floor): fewer passing specs than the floor fails the run; failing
 * specs above the floor do not (most RPCs are still being built).
 *
 *   node dist/e2e/critest/run.js [--mode spdy|websocket|both] [--parallel N] [--timeout 20m]
 *        [--focus RE] [--skip RE] [--runtime crun|runc] [--report-dir DIR] [--summary FILE]
 *        [--floor-key KEY] [--update-floor]
 *
 * Modes: spdy runs the whole suite with the default SPDY streaming; websocket runs only the
 * streaming specs with --websocket-exec/-attach/-portforward. Each mode gets its own daemon.
 * Images: critest's default names (registry.k8s.io/e2e-test-images/...) are served by the test
 * registry through the harness' mirrors; --test-images-file names the two overridable ones.
 * Reports: <report-dir>/<mode>/junit.xml, critest.log and daemon.log (default
 * <repo>/.tools/reports/critest).
 * --summary FILE writes {passed, failed, skipped, ok, modes} for e2e/test-all.sh, where failing
 * specs count as skipped while the floor holds. Exit status: 0 when every floor holds and the
 * harness found nothing left behind.
 */
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startHarness, type Harness } from '../harness/index.js';
import { durationMs, run } from '../harness/exec.js';
import { REPO, TOOLS_BIN, tool } from '../harness/paths.js';
import { isSpec, parseJUnit, type SpecResult } from './junit.js';
import { FLOOR_FILE, readFloor, writeFloor } from './floor.js';


/** The two images critest lets a runtime override; both are served through the mirrors. */
export const TEST_IMAGES = {
  defaultTestContainerImage: 'registry.k8s.io/e2e-test-images/busybox:1.29-2',
  webServerTestImage: 'registry.k8s.io/e2e-test-images/nginx:1.14-2',
};

export type Mode = 'spdy' | 'websocket';

export interface ModeResult {
  mode: Mode;
  floorKey: string;
  specs: SpecResult[];
  passed: number;
  failed: number;
  skipped: number;
  floor: number;
  floorOk: boolean;
  /** Only some specs were selected (--focus, or the websocket mode's streaming specs). */
  focused: boolean;
  /** critest did not produce a report, or the harness found leftovers. */
  problems: string[];
}

interface Options {
  modes: Mode[];
  parallel: number;
  timeout: string;
  focus?: string;
  skip?: string;
  runtime: 'crun' | 'runc';
  reportDir: string;
  summary?: string;
  updateFloor: boolean;
  /** Floor entry to hold (default: the mode's name); a focused run keeps its own, e.g. "v2". */
  floorKey?: string;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    modes: ['spdy', 'websocket'],
    parallel: 1,
    timeout: '20m',
    runtime: 'crun',
    reportDir: join(REPO, '.tools', 'reports', 'critest'),
    updateFloor: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${a} needs a value`);
      return x;
    };
    switch (a) {
      case '--mode': {
        const m = v();
        if (m === 'both') o.modes = ['spdy', 'websocket'];
        else if (m === 'spdy' || m === 'websocket') o.modes = [m];
        else throw new Error(`--mode: spdy, websocket or both, not ${m}`);
        break;
      }
      case '--parallel': o.parallel = Number(v()); break;
      case '--timeout': o.timeout = v(); break;
      case '--focus': o.focus = v(); break;
      case '--skip': o.skip = v(); break;
      case '--runtime': {
        const r = v();
        if (r !== 'crun' && r !== 'runc') throw new Error('--runtime: crun or runc');
        o.runtime = r;
        break;
      }
      case '--report-dir': o.reportDir = v(); break;
      case '--summary': o.summary = v(); break;
      case '--update-floor': o.updateFloor = true; break;
      case '--floor-key': o.floorKey = v(); break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  return o;
}

async function runMode(mode: Mode, o: Options, floorKey: string, floor: number): Promise<ModeResult> {
  const dir = join(o.reportDir, mode);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });
  const imagesFile = join(dir, 'test-images.yaml');
  writeFileSync(imagesFile, Object.entries(TEST_IMAGES).map(([k, v]) => `${k}: ${v}\n`).join(''));
  const junit = join(dir, 'junit.xml');
  const problems: string[] = [];
  // The streaming-only run is small: it gets at most 5 minutes, whatever the full run gets.
  const timeout = mode === 'websocket' && durationMs(o.timeout) > 300_000 ? '5m' : o.timeout;
  let h: Harness | undefined;
  try {
    h = await startHarness({ runtime: o.runtime, logLevel: (process.env.CORRAL_CRITEST_LOG_LEVEL as 'info' | 'debug' | undefined) ?? 'info', allowLeftoverObjects: true });
    const args = [
      `--runtime-endpoint=${h.endpoint}`,
      `--image-endpoint=${h.endpoint}`,
      `--test-images-file=${imagesFile}`,
      `--report-dir=${dir}`,
      // critest v1.37's --report-dir writes nothing itself: ask ginkgo for the JUnit report.
      `--ginkgo.junit-report=${junit}`,
      `--ginkgo.timeout=${timeout}`,
      '--ginkgo.no-color',
    ];
    if (mode === 'websocket') {
      args.push('--websocket-exec', '--websocket-attach', '--websocket-portforward');
      args.push(`--ginkgo.focus=${o.focus ?? 'Streaming'}`);
    } else if (o.focus) args.push(`--ginkgo.focus=${o.focus}`);
    if (o.skip) args.push(`--ginkgo.skip=${o.skip}`);
    // ginkgo refuses a -parallel flag it sees set (even to 1): pass it only to fan out.
    if (o.parallel > 1) args.push(`--parallel=${o.parallel}`);
    console.log(`critest ${mode}: ${tool('critest')} ${args.join(' ')}`);
    const t0 = Date.now();
    const r = await run(tool('critest'), args, {
      cwd: dir,
      timeoutMs: durationMs(timeout) + 3 * 60_000,
      env: { ...process.env, PATH: `${TOOLS_BIN}:${process.env.PATH ?? ''}` },
    });
    writeFileSync(join(dir, 'critest.log'), r.stdout + r.stderr);
    console.log(`critest ${mode}: exit ${r.code ?? r.signal}${r.timedOut ? ' (killed: timeout)' : ''} after ${Math.round((Date.now() - t0) / 1000)} s; log ${join(dir, 'critest.log')}`);
    if (!existsSync(junit)) {
      problems.push(`critest wrote no JUnit report:\n${(r.stdout + r.stderr).trimEnd().split('\n').slice(-30).join('\n')}`);
    }
  } catch (e) {
    problems.push(`harness: ${(e as Error).message}`);
  } finally {
    if (h) {
      writeFileSync(join(dir, 'daemon.log'), h.daemonLog());
      await h.stop().catch((e: Error) => problems.push(`teardown: ${e.message}`));
    }
  }
  const all = existsSync(junit) ? parseJUnit(readFileSync(junit, 'utf8')) : [];
  const specs = all.filter(isSpec);
  for (const s of all.filter((x) => !isSpec(x) && x.status === 'failed')) problems.push(`suite node ${s.name} failed: ${s.message}`);
  const count = (st: string) => specs.filter((s) => s.status === st).length;
  const passed = count('passed');
  const focused = mode === 'websocket' || o.focus !== undefined;
  return { mode, floorKey, focused, specs, passed, failed: count('failed'), skipped: count('skipped'), floor, floorOk: passed >= floor, problems };
}

function report(r: ModeResult): void {
  const label = { passed: 'PASS', failed: 'FAIL', skipped: 'SKIP' } as const;
  const order = { failed: 0, passed: 1, skipped: 2 } as const;
  const specs = [...r.specs].sort((a, b) => order[a.status] - order[b.status] || a.name.localeCompare(b.name));
  console.log(`\n=== critest ${r.mode}: per spec ===`);
  for (const s of specs) {
    if (r.focused && s.status === 'skipped') continue;
    const name = s.name.replace(/^\[It\]\s*/, '');
    const msg = s.status === 'failed' && s.message ? `  -- ${s.message.slice(0, 200)}` : '';
    console.log(`${label[s.status]}  ${name} (${s.seconds.toFixed(1)}s)${msg}`);
  }
  for (const p of r.problems) console.log(`PROBLEM  ${p}`);
  console.log(
    `critest ${r.mode}: ${r.passed} passed, ${r.failed} failed, ${r.skipped} ${r.focused ? 'not selected or skipped' : 'skipped'}; floor (${r.floorKey}) ${r.floor} ${r.floorOk ? 'holds' : 'BROKEN'}`
      + (r.floorKey !== 'none' && r.passed > r.floor ? ` (raise it: ${r.passed} pass now)` : ''),
  );
}

export async function main(argv: string[]): Promise<number> {
  const o = parseArgs(argv);
  const floor = readFloor();
  const results: ModeResult[] = [];
  for (const mode of o.modes) {
    // A run focused by hand has no floor of its own unless it names one (the v2 leg does).
    const key = o.floorKey ?? (o.focus !== undefined ? 'none' : mode);
    const r = await runMode(mode, o, key, key === 'none' ? 0 : floor[key] ?? 0);
    report(r);
    results.push(r);
  }
  if (o.updateFloor) {
    for (const r of results) if (r.problems.length === 0 && r.floorKey !== 'none') floor[r.floorKey] = r.passed;
    writeFloor(floor);
    console.log(`floor written to ${FLOOR_FILE}: ${Object.entries(floor).map(([k, v]) => `${k} ${v}`).join(', ')}`);
  }
  // For the suite-wide count: while a floor holds, its failing specs are known gaps (skipped);
  // a broken floor counts every failing spec; a teardown or report problem counts once.
  let passed = 0;
  let failed = 0;
  let skipped = 0;
  for (const r of results) {
    passed += r.passed;
    // A focused run marks every spec outside its focus as skipped: those are not this run's.
    if (!r.focused) skipped += r.skipped;
    if (r.floorOk) skipped += r.failed;
    else failed += Math.max(r.failed, 1);
    failed += r.problems.length ? 1 : 0;
  }
  const ok = failed === 0;
  if (o.summary) {
    writeFileSync(o.summary, JSON.stringify({ passed, failed, skipped, ok, modes: results.map(({ specs: _s, ...rest }) => rest) }, null, 2));
  }
  console.log(`critest: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  return ok ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e: Error) => {
    console.error(`critest runner: ${e.message}`);
    process.exitCode = 2;
  },
);
