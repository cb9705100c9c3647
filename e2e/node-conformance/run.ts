/**
 * The Kubernetes node conformance suite (k8s.io/kubernetes test/e2e_node v1.37.2, built by
 * e2e/kube/build.sh --e2e-node) against corral, or against any CRI endpoint for comparison.
 *
 *   node dist/e2e/node-conformance/run.js [--set conformance|slow|features|ci] [--procs N] [--timeout 60m]
 *        [--focus RE] [--skip RE] [--runtime crun|runc|containerd] [--endpoint unix:///path.sock]
 *        [--report-dir DIR] [--summary FILE] [--update-floor] [--run-known]
 *
 * Sets (ginkgo label filters; Serial specs restart or reconfigure the kubelet through systemd,
 * which is not PID 1 on these hosts, so no set has them):
 *   conformance  NodeConformance && !Serial && !Slow && !Flaky          (the full run)
 *   slow         NodeConformance && Slow && !Serial && !Flaky           (pod resize, mostly)
 *   features     the Feature-labelled specs of what corral implements beyond NodeConformance
 *                (Feature:ImageVolume, Feature:UserNamespacesSupport)
 *   ci           conformance and features without the specs ci-excluded lists (long waits;
 *                e2e/test-all.sh)
 * --run-known runs the listed ones too (they are skipped by default in every set: each costs
 * up to its timeout, and the list says why it cannot pass here).
 *
 * What the run needs and does:
 * - A corral of its own (e2e harness: private socket, root, state, CNI bridge, registry mirrors
 *   that serve the suite's images under their upstream names from the test registry). With
 *   --runtime containerd, a containerd of its own instead (e2e/harness/containerd.ts: the same
 *   registry and mirrors, CNI plugins and runc; e2e/containerd/build.sh builds it), for the
 *   side-by-side; --endpoint points at a runtime someone else runs. Neither is held to the
 *   floor: their results are printed and written to the summary for comparison.
 * - The suite starts its own etcd and kube-apiserver on 127.0.0.1:6443 and the kubelet (the
 *   file named kubelet beside the test binary; both are linked into the work dir). The kubelet
 *   gets deploy/kubelet/kubelet-config.yaml as its base configuration, a drop-in with the
 *   suite's usual values and cgroup root "/" (its specs look for /kubepods; none may exist
 *   before, and the one made goes after), and flags that keep it out of other host cgroups
 *   (--system-cgroups= and friends: without systemd the suite would put every host process
 *   into a /system cgroup). systemd-run is kept off PATH: PID 1 is not systemd.
 * - --prepull-images=false: the suite's pre-pull list pins images by upstream digests.
 * - A runtime handler "test-handler" (the default OCI runtime under a second name), as the
 *   suite's CI gives containerd: the RuntimeClass and PodOverhead specs run their pods with it.
 * - Afterwards: every pod removed through the runtime, mounts under the work dir and
 *   /var/lib/kubelet undone, cgroups, tunables and kube-proxy hint chains put back, and the
 *   harness' leak check.
 *
 * Results: every spec's outcome, the failed ones with their first error line, the known
 * failures with their reason; passed/failed/skipped. The floor (e2e/node-conformance/floor) is
 * the list of spec names that passed: one of them failing fails the run. A failure that is
 * neither in the floor nor in known-failures also fails the run (every failure is explained).
 * --update-floor adds this run's passing specs to the floor (it only rises).
 * Reports: <report-dir>/<set>[-containerd]/junit.xml, e2e_node.log, kubelet.log, daemon.log.
 */
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, readlinkSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { startHarness, type Harness } from '../harness/index.js';
import { startContainerd, type Containerd } from '../harness/containerd.js';
import { httpGet, KUBELET_CONFIG } from '../harness/kubelet.js';
import { NodeHostState, removeAllPods } from '../harness/node-host.js';
import { durationMs, sleep } from '../harness/exec.js';
import { REPO, TOOLS_BIN } from '../harness/paths.js';
import { isSpec, parseJUnit, type SpecResult } from '../critest/junit.js';
import { matchesLabelFilter, namesRegex, readCiExcluded, specLabels, readFloor, readKnown, writeFloor, FLOOR_FILE, KNOWN_FILE, type Known } from './lists.js';

export type SetName = 'conformance' | 'slow' | 'features' | 'ci';

/** Feature-labelled specs (not NodeConformance) of what corral implements. */
const FEATURES = 'Feature:ImageVolume || Feature:UserNamespacesSupport';

const FILTERS: Record<SetName, string> = {
  conformance: 'NodeConformance && !Serial && !Slow && !Flaky',
  slow: 'NodeConformance && Slow && !Serial && !Flaky',
  features: `(${FEATURES}) && !Serial && !Slow && !Flaky`,
  ci: `(NodeConformance || ${FEATURES}) && !Serial && !Slow && !Flaky`,
};

interface Options {
  set: SetName;
  procs: number;
  timeout: string;
  focus?: string;
  skip?: string;
  runtime: 'crun' | 'runc' | 'containerd';
  endpoint?: string;
  reportDir: string;
  summary?: string;
  updateFloor: boolean;
  runKnown: boolean;
}

function parseArgs(argv: string[]): Options {
  const o: Options = {
    set: 'conformance', procs: 8, timeout: '60m', runtime: 'crun',
    reportDir: join(REPO, '.tools', 'reports', 'node-conformance'), updateFloor: false, runKnown: false,
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const v = () => {
      const x = argv[++i];
      if (x === undefined) throw new Error(`${a} needs a value`);
      return x;
    };
    switch (a) {
      case '--set': {
        const s = v();
        if (!(s in FILTERS)) throw new Error(`--set: ${Object.keys(FILTERS).join(', ')}; not ${s}`);
        o.set = s as SetName;
        break;
      }
      case '--procs': o.procs = Math.max(1, Number(v())); break;
      case '--timeout': o.timeout = v(); break;
      case '--focus': o.focus = v(); break;
      case '--skip': o.skip = v(); break;
      case '--runtime': {
        const r = v();
        if (r !== 'crun' && r !== 'runc' && r !== 'containerd') throw new Error('--runtime: crun, runc or containerd');
        o.runtime = r;
        break;
      }
      case '--endpoint': o.endpoint = v(); break;
      case '--report-dir': o.reportDir = v(); break;
      case '--summary': o.summary = v(); break;
      case '--update-floor': o.updateFloor = true; break;
      case '--run-known': o.runKnown = true; break;
      default: throw new Error(`unknown argument ${a}`);
    }
  }
  return o;
}

/**
 * PATH with systemd-run left out: each PATH dir that holds it is replaced by a dir of links to
 * everything else in it. The suite runs the kubelet through systemd-run whenever it finds one.
 */
function pathWithoutSystemdRun(work: string): string {
  const out: string[] = [];
  (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter).forEach((d, i) => {
    if (!d || !existsSync(join(d, 'systemd-run'))) {
      if (d) out.push(d);
      return;
    }
    const view = join(work, 'path', String(i));
    mkdirSync(view, { recursive: true });
    for (const n of readdirSync(d)) if (n !== 'systemd-run') symlinkSync(join(d, n), join(view, n));
    out.push(view);
  });
  return [TOOLS_BIN, ...out].join(delimiter);
}

/** The kubelet the suite started, if it is still running (by its working dir: ours). */
function suiteKubelets(work: string): number[] {
  const pids: number[] = [];
  for (const p of readdirSync('/proc')) {
    if (!/^\d+$/.test(p)) continue;
    try {
      if (readlinkSync(`/proc/${p}/cwd`) !== work) continue;
      const cmd = readFileSync(`/proc/${p}/cmdline`, 'utf8').split('\0');
      if (cmd[0]?.endsWith('/kubelet') || cmd[0]?.endsWith('e2e_node.test')) pids.push(Number(p));
    } catch { /* gone */ }
  }
  return pids;
}

async function portAnswers(url: string): Promise<boolean> {
  return httpGet(url, 2000).then(() => true, () => false);
}

interface RunResult {
  specs: SpecResult[];
  problems: string[];
  seconds: number;
}

async function runSuite(o: Options, dir: string, work: string, endpoint: string, host: NodeHostState, skipNames: string[]): Promise<RunResult> {
  const problems: string[] = [];
  const junit = join(dir, 'junit.xml');
  // The test binary and the kubelet side by side in the work dir: the suite looks for the
  // kubelet beside itself, and ginkgo runs a precompiled suite in the binary's directory,
  // where the suite writes its kubelet config and static pod dir.
  symlinkSync(join(TOOLS_BIN, 'e2e_node.test'), join(work, 'e2e_node.test'));
  symlinkSync(join(TOOLS_BIN, 'kubelet'), join(work, 'kubelet'));
  // The base config as a node runs it; a drop-in adds the suite's usual values (what it sets when
  // given no config file) and this run's cgroup root.
  mkdirSync(join(work, 'kubelet.conf.d'), { recursive: true });
  writeFileSync(join(work, 'kubelet.conf.d', '50-node-e2e.conf'), JSON.stringify({
    apiVersion: 'kubelet.config.k8s.io/v1beta1',
    kind: 'KubeletConfiguration',
    cgroupRoot: host.cgroupRoot,
    cgroupsPerQOS: true,
    volumeStatsAggPeriod: '10s',
    serializeImagePulls: false,
    fileCheckFrequency: '10s',
    evictionPressureTransitionPeriod: '30s',
    evictionHard: { 'memory.available': '250Mi', 'nodefs.available': '10%', 'nodefs.inodesFree': '5%' },
    evictionMinimumReclaim: { 'nodefs.available': '5%', 'nodefs.inodesFree': '5%' },
  }, null, 2));
  const kubeletFlags = [
    // Without systemd the suite gives the kubelet /system, /kubelet and /docker-daemon cgroups,
    // and the kubelet would move every host process into /system.
    '--system-cgroups=', '--kubelet-cgroups=', '--runtime-cgroups=',
    `--cert-dir=${join(work, 'pki')}`,
  ];
  const suiteArgs = [
    `--container-runtime-endpoint=${endpoint}`,
    `--image-service-endpoint=${endpoint}`,
    `--kubelet-config-file=${KUBELET_CONFIG}`,
    `--kubelet-flags=${kubeletFlags.join(' ')}`,
    '--prepull-images=false',
    `--report-dir=${dir}`,
    '--v=2',
  ];
  const skips = [...(o.skip ? [o.skip] : []), ...(skipNames.length ? [namesRegex(skipNames)] : [])];
  const ginkgoArgs = [
    `--procs=${o.procs}`,
    `--label-filter=${FILTERS[o.set]}`,
    `--timeout=${o.timeout}`,
    `--junit-report=${junit}`,
    '--no-color',
    '--silence-skips',
    ...(o.focus ? [`--focus=${o.focus}`] : []),
    ...skips.map((s) => `--skip=${s}`),
    join(work, 'e2e_node.test'),
    '--',
    ...suiteArgs,
  ];
  const log = join(dir, 'e2e_node.log');
  console.log(`node-conformance ${o.set}: ginkgo ${ginkgoArgs.join(' ')}`);
  const t0 = Date.now();
  const fd = openSync(log, 'w');
  const child = spawn(join(TOOLS_BIN, 'ginkgo'), ginkgoArgs, {
    cwd: work, stdio: ['ignore', fd, fd], detached: true,
    env: { ...process.env, PATH: pathWithoutSystemdRun(work), KUBE_TEST_REPO_LIST: '' },
  });
  closeSync(fd);
  // Killed from outside (test-all's timeout): the suite and its kubelet go with us. The harness'
  // own handler then removes the pods and stops corral. `on`, not `once`: a second signal (a
  // wrapper passing its own on) must not end this process before that teardown.
  const killGroup = () => { try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ } };
  process.on('SIGTERM', killGroup);
  process.on('SIGINT', killGroup);
  const limit = durationMs(o.timeout) + 5 * 60_000;
  const exit = await new Promise<{ code: number | null; signal: NodeJS.Signals | null; timedOut: boolean }>((resolve) => {
    const timer = setTimeout(() => {
      // The whole process group: ginkgo, its suite processes and the kubelet they started.
      try { process.kill(-child.pid!, 'SIGKILL'); } catch { /* gone */ }
      resolve({ code: null, signal: 'SIGKILL', timedOut: true });
    }, limit);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      process.off('SIGTERM', killGroup);
      process.off('SIGINT', killGroup);
      resolve({ code, signal, timedOut: false });
    });
  });
  const seconds = Math.round((Date.now() - t0) / 1000);
  console.log(`node-conformance ${o.set}: ginkgo exit ${exit.code ?? exit.signal}${exit.timedOut ? ' (killed: timeout)' : ''} after ${seconds} s; log ${log}`);
  // The suite stops the kubelet it started; after a crash or a kill it may not have.
  for (let i = 0; i < 20 && suiteKubelets(work).length > 0; i++) {
    for (const pid of suiteKubelets(work)) try { process.kill(pid, i < 10 ? 'SIGTERM' : 'SIGKILL'); } catch { /* gone */ }
    await sleep(500);
  }
  if (!existsSync(junit)) problems.push(`the suite wrote no JUnit report: ${readFileSync(log, 'utf8').trimEnd().split('\n').slice(-20).join('\n')}`);
  return { specs: existsSync(junit) ? parseJUnit(readFileSync(junit, 'utf8')) : [], problems, seconds };
}

/** Spec names as the floor and the known list keep them: ginkgo's full text without the [It] prefix. */
const specName = (s: SpecResult) => s.name.replace(/^\[It\]\s*/, '');

export async function main(argv: string[]): Promise<number> {
  const o = parseArgs(argv);
  for (const bin of ['e2e_node.test', 'kubelet', 'ginkgo']) {
    if (!existsSync(join(TOOLS_BIN, bin))) throw new Error(`${join(TOOLS_BIN, bin)} is missing: bash e2e/kube/build.sh --e2e-node (and e2e/setup-test-tools.sh for ginkgo)`);
  }
  if (await portAnswers('http://127.0.0.1:10248/healthz')) throw new Error('a kubelet is running on this host (127.0.0.1:10248 answers); one kubelet at a time');
  const known = readKnown();
  const floor = readFloor();
  const dir = join(o.reportDir, isCorral(o) ? o.set : `${o.set}-${o.endpoint ? 'endpoint' : o.runtime}`);
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dir, { recursive: true });

  let h: Harness | undefined;
  let ctd: Containerd | undefined;
  let host: NodeHostState | undefined;
  let work = '';
  let result: RunResult = { specs: [], problems: [], seconds: 0 };
  try {
    // The RuntimeClass specs (PodOverhead) run pods with handler "test-handler", which the
    // suite's own CI configures in containerd as a second name for runc: the same here.
    if (o.runtime === 'containerd' && !o.endpoint) ctd = await startContainerd({ extraHandlers: ['test-handler'] });
    else if (!o.endpoint) {
      const runtime = o.runtime === 'runc' ? 'runc' : 'crun';
      h = await startHarness({
        runtime, logLevel: 'info', allowLeftoverObjects: true,
        config: { runtimes: { 'test-handler': { path: runtime === 'runc' ? '/usr/sbin/runc' : '/usr/bin/crun' } } },
      });
    }
    work = h ? join(h.dir, 'node-e2e') : ctd ? join(ctd.dir, 'node-e2e') : mkdtempSync(join(tmpdir(), 'corral-node-e2e-'));
    mkdirSync(work, { recursive: true });
    // cgroupRoot "/": the suite's QoS and pod cgroup specs look for /kubepods/... themselves.
    host = new NodeHostState({ hostCgroupRoot: true });
    const skipNames = [...(o.runKnown ? [] : known.keys()), ...(o.set === 'ci' ? readCiExcluded().keys() : [])];
    result = await runSuite(o, dir, work, o.endpoint ?? ctd?.endpoint ?? h!.endpoint, host, skipNames);
  } catch (e) {
    result.problems.push(`runner: ${(e as Error).message}`);
  } finally {
    // The suite writes kubelet.log to the report dir itself. Pods it left go through the runtime.
    const runtime = h ?? ctd;
    if (runtime) await removeAllPods((args, opts) => runtime.crictl(args, opts));
    await host?.restore(work ? [work] : []).catch((e: Error) => result.problems.push(`restore: ${e.message}`));
    if (h) {
      writeFileSync(join(dir, 'daemon.log'), h.daemonLog());
      await h.stop().catch((e: Error) => result.problems.push(`teardown: ${e.message}`));
    } else if (ctd) {
      writeFileSync(join(dir, 'containerd.log'), ctd.log());
      await ctd.stop().catch((e: Error) => result.problems.push(`teardown: ${e.message}`));
    } else if (work) rmSync(work, { recursive: true, force: true });
  }

  const all = result.specs;
  const specs = all.filter(isSpec);
  for (const s of all.filter((x) => !isSpec(x) && x.status === 'failed')) result.problems.push(`suite node ${s.name} failed: ${s.message}`);
  return report(o, specs, result, floor, known);
}

const isCorral = (o: Options) => !o.endpoint && o.runtime !== 'containerd';
const runtimeLabel = (o: Options) => o.endpoint ?? (o.runtime === 'containerd' ? 'containerd' : `corral/${o.runtime}`);

function report(o: Options, specs: SpecResult[], r: RunResult, floor: Set<string>, known: Map<string, Known>): number {
  const ran = specs.filter((s) => s.status !== 'skipped');
  const passed = ran.filter((s) => s.status === 'passed');
  const failed = ran.filter((s) => s.status === 'failed');
  const skippedCount = specs.length - ran.length;
  const broken = failed.filter((s) => floor.has(specName(s)));
  const unexplained = failed.filter((s) => !floor.has(specName(s)) && !known.has(specName(s)));
  const knownFailing = failed.filter((s) => !floor.has(specName(s)) && known.has(specName(s)));
  console.log(`\n=== node conformance (${o.set} on ${runtimeLabel(o)}): per spec ===`);
  for (const s of [...ran].sort((a, b) => a.status.localeCompare(b.status) || specName(a).localeCompare(specName(b)))) {
    const tag = s.status === 'passed' ? 'PASS' : floor.has(specName(s)) ? 'FAIL (floor)' : known.has(specName(s)) ? 'FAIL (known)' : 'FAIL';
    const msg = s.status === 'failed' ? `  -- ${s.message.split(' | ')[0]!.slice(0, 240)}` : '';
    console.log(`${tag}  ${specName(s)} (${s.seconds.toFixed(1)}s)${msg}`);
  }
  if (!o.runKnown && isCorral(o)) {
    // Those the set selects (the report lists every spec of the suite, selected or not).
    const listed = [...known.entries()].filter(([n]) => specs.some((s) => specName(s) === n) && matchesLabelFilter(FILTERS[o.set], specLabels(n)));
    for (const [n, k] of listed) console.log(`KNOWN  ${n}  -- ${k.reason}`);
  }
  for (const p of r.problems) console.log(`PROBLEM  ${p}`);
  const newPasses = passed.filter((s) => !floor.has(specName(s)));
  console.log(
    `node conformance ${o.set}: ${passed.length} passed, ${failed.length} failed (${knownFailing.length} known, ${broken.length} below the floor, ${unexplained.length} unexplained), `
      + `${skippedCount} skipped or not selected; ${r.seconds} s`
      + (newPasses.length ? `; ${newPasses.length} pass that the floor does not hold yet (--update-floor)` : ''),
  );
  if (o.updateFloor && isCorral(o) && r.problems.length === 0) {
    writeFloor(new Set([...floor, ...passed.map(specName)]));
    console.log(`floor written to ${FLOOR_FILE}`);
  }
  // Another runtime is measured, not held to corral's floor.
  const ok = !isCorral(o) || (broken.length === 0 && unexplained.length === 0 && r.problems.length === 0);
  if (o.summary) {
    writeFileSync(o.summary, JSON.stringify({
      passed: passed.length,
      failed: ok ? 0 : broken.length + unexplained.length + (r.problems.length ? 1 : 0),
      skipped: skippedCount + (ok ? failed.length : 0),
      ok, seconds: r.seconds, set: o.set, runtime: runtimeLabel(o),
      broken: broken.map(specName), unexplained: unexplained.map(specName), known: knownFailing.map(specName),
      passedSpecs: passed.map(specName),
    }, null, 2));
  }
  console.log(`node conformance: ${ok ? 'OK' : 'FAILED'} (floor ${FLOOR_FILE}, known failures ${KNOWN_FILE})`);
  return ok ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => { process.exitCode = code; },
  (e: Error) => {
    console.error(`node-conformance: ${e.message}`);
    process.exitCode = 2;
  },
);
