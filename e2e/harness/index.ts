/**
 * e2e harness: a real corral daemon on a private socket, root dir and state dir, talked to
 * with crictl, and a teardown that fails the run if the host is not left as it was found.
 *
 * Usage in an ava file (e2e/tests/<area>.e2e.ts, run serially by e2e/test-all.sh):
 *
 *   import test from 'ava';
 *   import { startHarness, type Harness } from '../harness/index.js';
 *   let h: Harness;
 *   test.before(async () => { h = await startHarness(); });
 *   test.after.always(async () => { await h?.stop(); });   // throws (fails the file) on leaks
 *   test.serial('pull and run', async (t) => {
 *     await h.crictlOk(['pull', 'registry.k8s.io/e2e-test-images/busybox:1.29-2'], { timeoutMs: 120_000 });
 *     const pod = (await h.crictlOk(['runp', h.writeJson('pod.json', podConfig)])).trim();
 *     const info = await h.crictlJson<any>(['inspectp', pod]);
 *     ...
 *     await h.crictlOk(['stopp', pod]); await h.crictlOk(['rmp', pod]);   // tests clean up
 *   });
 *
 * startHarness(opts):
 *   registry   true (default): registries.<host>.mirrors send registry.k8s.io, gcr.io, docker.io,
 *              quay.io and public.ecr.aws to the test registry (the one of this e2e run from
 *              CORRAL_E2E_REGISTRY_URL, else one started for this harness), so image names are
 *              the upstream ones: registry.k8s.io/e2e-test-images/busybox:1.29-2 pulls from
 *              <registry>/registry.k8s.io/e2e-test-images/busybox:1.29-2. The registry itself
 *              (h.registry.host) is configured insecure. false: no registry, no mirrors.
 *   runtime    default_runtime ('crun' | 'runc'; default crun).
 *   config     extra TOML keys (an object shaped like corral.toml) merged over the generated
 *              config, e.g. { pull: { progress_timeout_seconds: 5 } }.
 *   logLevel   daemon log level (default debug; the log is h.daemonLog(), printed on failure).
 *   checkLeaks true (default): stop() fails when something is left behind (see leaks.ts).
 *   allowLeftoverObjects  pods/containers still in the daemon at stop() are removed without
 *              failing (critest's failing specs may skip their cleanup); host leftovers still fail.
 *
 * Harness:
 *   dir, socket, endpoint ("unix://..."), rootDir, stateDir, configPath, config (the object
 *   written as TOML), cniConfDir, subnet ("10.X.0.0/16"), bridge, registry, crictlConfig.
 *   crictl(args, {timeoutMs, input}) -> {stdout, stderr, code, signal, timedOut}; never throws
 *     for a non-zero exit. timeoutMs (default 120 s) also bounds every RPC (crictl --timeout).
 *   crictlOk(args, opts) -> stdout; throws CommandError (with stderr) unless exit 0.
 *   crictlJson<T>(args, opts) -> JSON.parse(stdout) of crictlOk (add '-o', 'json' where the
 *     command needs it: ps, pods, images; inspect* print JSON by default).
 *   writeJson(name, obj) -> path of a file in the harness dir (for runp/create configs).
 *   daemonPid, daemonLog(), stopDaemon(signal?, timeoutMs?) -> {code, signal, ms},
 *   startDaemon() (again, after stopDaemon: a restart on the same dirs).
 *   stop(): removes pods/containers the tests left (and reports them as a failure), SIGTERMs the
 *     daemon, checks for leaks, cleans them up, removes the dir; throws listing what was left.
 *
 * Environment: CORRAL_E2E_TMPDIR (where harness dirs go; default os.tmpdir(); the v2 leg points it
 * at a tmpfs), CORRAL_E2E_KEEP=1 (keep the dir), CRICTL (crictl binary; default .tools/bin),
 * CI=true or CORRAL_E2E_EXCLUSIVE=1 (nothing else makes pods on this host: every new cgroup,
 * link, chain or mount counts as this run's; otherwise only what names the harness dir, its
 * daemon's ids, its bridge or its processes counts, and the rest is printed as a note).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { stringify as toToml } from 'smol-toml';
import { CommandError, run, runOk, sleep, type CmdResult, type RunOptions } from './exec.js';
import { cleanup, findLeaks, formatLeaks, readMounts, takeSnapshot, type Leak, type Snapshot } from './leaks.js';
import { DAEMON_MAIN, tool } from './paths.js';
import { mirroredHosts, sharedRegistry, startRegistryWithImages, type RegistryHandle } from './registry.js';

export { CommandError, freePort, run, runOk, sleep, type CmdResult, type RunOptions } from './exec.js';
export { MIRRORED_HOSTS, type RegistryHandle } from './registry.js';

export interface HarnessOptions {
  registry?: boolean;
  runtime?: 'crun' | 'runc';
  config?: Record<string, unknown>;
  logLevel?: 'error' | 'warn' | 'info' | 'debug';
  checkLeaks?: boolean;
  /**
   * Pods and containers still in the daemon at stop() are removed through it and only printed,
   * not failed (critest: a failing spec may skip its cleanup). Host leftovers still fail.
   */
  allowLeftoverObjects?: boolean;
  /** How long the daemon may take to answer Version (default 30 s). */
  startTimeoutMs?: number;
}

export interface StopResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Time from the signal to the exit. */
  ms: number;
}

export interface Harness {
  readonly dir: string;
  readonly socket: string;
  readonly endpoint: string;
  readonly rootDir: string;
  readonly stateDir: string;
  readonly configPath: string;
  readonly config: Record<string, unknown>;
  readonly cniConfDir: string;
  readonly subnet: string;
  readonly bridge: string;
  readonly registry: RegistryHandle | undefined;
  readonly crictlConfig: string;
  readonly daemonPid: number | undefined;
  crictl(args: readonly string[], opts?: RunOptions): Promise<CmdResult>;
  crictlOk(args: readonly string[], opts?: RunOptions): Promise<string>;
  crictlJson<T = unknown>(args: readonly string[], opts?: RunOptions): Promise<T>;
  writeJson(name: string, obj: unknown): string;
  daemonLog(): string;
  startDaemon(): Promise<void>;
  stopDaemon(signal?: NodeJS.Signals, timeoutMs?: number): Promise<StopResult>;
  stop(): Promise<void>;
}

export const PREFIX = 'corral-e2e-';

export function baseDir(): string {
  return process.env.CORRAL_E2E_TMPDIR || tmpdir();
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Other harnesses alive on this host (another test process, another developer's run). */
export function otherHarnessesAlive(self: string): boolean {
  for (const d of safeReaddir(baseDir())) {
    if (!d.startsWith(PREFIX) || join(baseDir(), d) === self) continue;
    try {
      const pid = Number(readFileSync(join(baseDir(), d, 'harness.pid'), 'utf8'));
      if (pid && pid !== process.pid && isAlive(pid)) return true;
      if (pid === process.pid) return true; // a second harness in this very process
    } catch {
      // not a harness dir, or being removed
    }
  }
  return false;
}

function safeReaddir(p: string): string[] {
  try {
    return readdirSync(p);
  } catch {
    return [];
  }
}

/**
 * A /16 for the pods that no route of the host and no other live harness uses: pods of two
 * harnesses must not share a subnet, and the host's own networks must stay reachable.
 */
export async function chooseSubnet(self: string): Promise<string> {
  const used = new Set<number>();
  const routes = await run('ip', ['-4', 'route', 'show', 'table', 'all'], { timeoutMs: 10_000 });
  for (const m of routes.stdout.matchAll(/(?:^|\s)10\.(\d+)\./g)) used.add(Number(m[1]));
  for (const d of safeReaddir(baseDir())) {
    if (!d.startsWith(PREFIX) || join(baseDir(), d) === self) continue;
    try {
      const s = readFileSync(join(baseDir(), d, 'subnet'), 'utf8');
      used.add(Number(s.split('.')[1]));
    } catch {
      // no subnet file
    }
  }
  const candidates = [...Array.from({ length: 11 }, (_, i) => 244 + i), ...Array.from({ length: 44 }, (_, i) => 200 + i)];
  const free = candidates.find((x) => !used.has(x));
  if (free === undefined) throw new Error('no free 10.X.0.0/16 for the pod network');
  return `10.${free}.0.0/16`;
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    if (v && typeof v === 'object' && !Array.isArray(v) && b && typeof b === 'object' && !Array.isArray(b)) {
      out[k] = deepMerge(b as Record<string, unknown>, v as Record<string, unknown>);
    } else out[k] = v;
  }
  return out;
}

/** The pod network of this harness: bridge + portmap, host-local IPAM keeping its leases inside dir. */
export function cniConflist(bridge: string, subnet: string, ipamDir: string): unknown {
  return {
    cniVersion: '1.0.0',
    name: 'corral-e2e',
    plugins: [
      {
        type: 'bridge',
        bridge,
        isGateway: true,
        // No masquerade: pods talk to the host and to each other only; nothing of a test should
        // leave the machine, and no per-pod NAT chains are needed.
        ipMasq: false,
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet }]],
          routes: [{ dst: '0.0.0.0/0' }],
          dataDir: ipamDir,
        },
      },
      { type: 'portmap', capabilities: { portMappings: true }, snat: true },
    ],
  };
}

/**
 * The daemon's state dir is a tmpfs of its own, as /run is on a node (the default state_dir is
 * /run/corral): what corral keeps there (namespace pins, runtime state, exit files, sockets) is
 * meant to vanish with a reboot, and its files cost no disk inodes. On a disk the figures of the
 * benches would depend on the host's filesystem: measured on an ext4 without a journal, whose
 * inode allocator skips every recently deleted inode, a pod cycle spent 5-11 ms in the kernel
 * instead of 0.5-0.9 ms. The harness' teardown detaches it with the rest of its mounts.
 */
async function mountStateTmpfs(stateDir: string): Promise<void> {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  await runOk('mount', ['-t', 'tmpfs', '-o', 'mode=0700,size=2g', 'corral-e2e-state', stateDir], { timeoutMs: 10_000 });
}

/** Harnesses not stopped yet: a test process killed from outside still tears them down. */
const live = new Set<HarnessImpl>();
let handlersInstalled = false;

function installSignalHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  // ava kills a worker that timed out, and test-all's `timeout` kills the run: without this the
  // daemons (and their pods) would outlive the test process.
  const onSignal = (sig: NodeJS.Signals) => {
    console.error(`harness: ${sig}: stopping ${live.size} daemon(s)`);
    const all = Promise.allSettled([...live].map((h) => h.stop().catch((e: Error) => console.error(e.message))));
    const cap = sleep(30_000);
    void Promise.race([all, cap]).then(() => process.exit(sig === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGTERM', onSignal);
  process.once('SIGINT', onSignal);
  // Last resort when the process exits without stop(): no daemon keeps running unowned.
  process.once('exit', () => {
    for (const h of live) h.killDaemonNow();
  });
}

export async function startHarness(opts: HarnessOptions = {}): Promise<Harness> {
  installSignalHandlers();
  mkdirSync(baseDir(), { recursive: true });
  const dir = mkdtempSync(join(baseDir(), PREFIX));
  writeFileSync(join(dir, 'harness.pid'), String(process.pid));
  const marker = randomBytes(8).toString('hex');
  const before = await takeSnapshot();
  let registry: RegistryHandle | undefined;
  let ownRegistry = false;
  try {
    if (opts.registry !== false) {
      registry = sharedRegistry();
      if (!registry) {
        registry = await startRegistryWithImages();
        ownRegistry = true;
      }
    }
    const subnet = await chooseSubnet(dir);
    writeFileSync(join(dir, 'subnet'), subnet);
    const hosts = registry ? await mirroredHosts() : [];
    const h = new HarnessImpl(dir, marker, before, subnet, registry, hosts, ownRegistry, opts);
    live.add(h);
    try {
      await mountStateTmpfs(h.stateDir);
      await h.startDaemon();
    } catch (e) {
      await h.stop().catch(() => {});
      throw e;
    }
    return h;
  } catch (e) {
    if (ownRegistry) await registry?.stop().catch(() => {});
    if (!readMounts().some((m) => m.point.startsWith(dir + '/'))) rmSync(dir, { recursive: true, force: true });
    throw e;
  }
}

class HarnessImpl implements Harness {
  readonly socket: string;
  readonly endpoint: string;
  readonly rootDir: string;
  readonly stateDir: string;
  readonly configPath: string;
  readonly config: Record<string, unknown>;
  readonly cniConfDir: string;
  readonly bridge: string;
  readonly crictlConfig: string;
  private child: ChildProcess | undefined;
  private exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;
  /** Set when the daemon exits without stopDaemon() having asked it to: a crash. */
  private died: { code: number | null; signal: NodeJS.Signals | null } | undefined;
  private stopping = false;
  private stopPromise: Promise<void> | undefined;

  constructor(
    readonly dir: string,
    private readonly marker: string,
    private readonly before: Snapshot,
    readonly subnet: string,
    readonly registry: RegistryHandle | undefined,
    mirrored: string[],
    private readonly ownRegistry: boolean,
    private readonly opts: HarnessOptions,
  ) {
    this.rootDir = join(dir, 'root');
    this.stateDir = join(dir, 'state');
    this.socket = join(this.stateDir, 'corral.sock');
    this.endpoint = `unix://${this.socket}`;
    this.configPath = join(dir, 'corral.toml');
    this.cniConfDir = join(dir, 'cni', 'net.d');
    this.bridge = `crl${marker.slice(0, 8)}`;
    this.crictlConfig = join(dir, 'crictl.yaml');
    mkdirSync(this.cniConfDir, { recursive: true });
    writeFileSync(
      join(this.cniConfDir, '10-corral-e2e.conflist'),
      JSON.stringify(cniConflist(this.bridge, subnet, join(dir, 'cni', 'ipam')), null, 2),
    );
    const registries: Record<string, unknown> = {};
    if (registry) {
      const tls = registry.caFile ? { ca_file: registry.caFile } : { insecure: true };
      for (const host of mirrored) {
        registries[host] = { mirrors: [`${registry.url}/${host}`], ...tls };
      }
      registries[registry.host] = tls;
    }
    let config: Record<string, unknown> = {
      socket: this.socket,
      root_dir: this.rootDir,
      state_dir: this.stateDir,
      log_level: opts.logLevel ?? 'debug',
      default_runtime: opts.runtime ?? 'crun',
      runtimes: {
        crun: { path: '/usr/bin/crun', root: join(this.stateDir, 'crun') },
        runc: { path: '/usr/sbin/runc', root: join(this.stateDir, 'runc') },
      },
      shutdown_grace_seconds: 3,
      cni: { conf_dir: this.cniConfDir, cache_dir: join(this.rootDir, 'cni') },
      streaming: { address: '127.0.0.1', port: 0 },
      registries,
    };
    if (opts.config) config = deepMerge(config, opts.config);
    this.config = config;
    writeFileSync(this.configPath, toToml(config) + '\n');
    writeFileSync(
      this.crictlConfig,
      `runtime-endpoint: ${this.endpoint}\nimage-endpoint: ${this.endpoint}\ntimeout: 30\ndebug: false\npull-image-on-create: false\n`,
    );
  }

  get daemonPid(): number | undefined {
    return this.child?.pid;
  }

  private get logPath(): string {
    return join(this.dir, 'daemon.log');
  }

  daemonLog(): string {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  private logTail(lines = 60): string {
    return this.daemonLog().trimEnd().split('\n').slice(-lines).join('\n');
  }

  async startDaemon(): Promise<void> {
    if (this.child && this.exited && !this.died) throw new Error('the daemon is already running');
    this.died = undefined;
    const log = openSync(this.logPath, 'a');
    // CORRAL_E2E_DAEMON_NODE_ARGS: node options for the daemon only (e.g. --cpu-prof --cpu-prof-dir=DIR).
    const nodeArgs = (process.env.CORRAL_E2E_DAEMON_NODE_ARGS ?? '').split(/\s+/).filter(Boolean);
    const child = spawn(process.execPath, [...nodeArgs, DAEMON_MAIN, 'serve', '--config', this.configPath], {
      stdio: ['ignore', log, log],
      env: { ...process.env, CORRAL_E2E_RUN: this.marker },
    });
    closeSync(log);
    this.child = child;
    this.exited = new Promise((resolve) => {
      child.on('exit', (code, signal) => resolve({ code, signal }));
      child.on('error', () => resolve({ code: -1, signal: null }));
    });
    let exit: { code: number | null; signal: NodeJS.Signals | null } | undefined;
    void this.exited.then((e) => {
      exit = e;
      if (!this.stopping && this.child === child) this.died = e;
    });
    const deadline = Date.now() + (this.opts.startTimeoutMs ?? 30_000);
    let last: CmdResult | undefined;
    while (Date.now() < deadline) {
      if (exit) {
        this.child = undefined;
        this.exited = undefined;
        this.died = undefined; // reported by this throw
        throw new Error(`corral exited (code ${exit.code}, signal ${exit.signal}) before answering Version\n${this.logTail()}`);
      }
      if (existsSync(this.socket)) {
        last = await this.crictl(['version'], { timeoutMs: 5_000 });
        if (last.code === 0) return;
      }
      await sleep(100);
    }
    throw new Error(`corral did not answer Version within ${this.opts.startTimeoutMs ?? 30_000} ms: ${last?.stderr ?? 'no socket'}\n${this.logTail()}`);
  }

  async stopDaemon(signal: NodeJS.Signals = 'SIGTERM', timeoutMs = 10_000): Promise<StopResult> {
    const child = this.child;
    const exited = this.exited;
    if (!child || !exited) return { code: null, signal: null, ms: 0 };
    const t0 = Date.now();
    if (this.died) {
      this.child = undefined;
      this.exited = undefined;
      return { ...this.died, ms: 0 };
    }
    this.stopping = true;
    child.kill(signal);
    let timer: NodeJS.Timeout | undefined;
    const res = await Promise.race([
      exited,
      new Promise<null>((r) => { timer = setTimeout(() => r(null), timeoutMs); }),
    ]);
    clearTimeout(timer);
    const ms = Date.now() - t0;
    this.child = undefined;
    this.exited = undefined;
    this.stopping = false;
    if (res === null) {
      child.kill('SIGKILL');
      const k = await exited;
      this.stopping = false;
      throw new Error(`corral did not exit within ${timeoutMs} ms of ${signal} (killed: ${k.signal})\n${this.logTail()}`);
    }
    return { ...res, ms };
  }

  crictl(args: readonly string[], opts: RunOptions = {}): Promise<CmdResult> {
    const timeoutMs = opts.timeoutMs ?? 120_000;
    const rpcTimeout = Math.max(1, Math.ceil(timeoutMs / 1000) - 1);
    return run(
      tool('crictl'),
      ['--config', this.crictlConfig, '-r', this.endpoint, '-i', this.endpoint, '--timeout', `${rpcTimeout}s`, ...args],
      { ...opts, timeoutMs },
    );
  }

  async crictlOk(args: readonly string[], opts: RunOptions = {}): Promise<string> {
    const r = await this.crictl(args, opts);
    if (r.code !== 0) throw new CommandError('crictl', args, r);
    return r.stdout;
  }

  async crictlJson<T = unknown>(args: readonly string[], opts: RunOptions = {}): Promise<T> {
    const out = await this.crictlOk(args, opts);
    try {
      return JSON.parse(out) as T;
    } catch (e) {
      throw new Error(`crictl ${args.join(' ')}: output is not JSON (${(e as Error).message}):\n${out.slice(0, 2000)}`);
    }
  }

  writeJson(name: string, obj: unknown): string {
    const d = join(this.dir, 'json');
    mkdirSync(d, { recursive: true });
    const p = join(d, name);
    writeFileSync(p, JSON.stringify(obj, null, 2));
    return p;
  }

  /** 64-hex names of the objects the daemon persisted: their cgroups are this run's. */
  private persistedIds(): string[] {
    const ids = new Set<string>();
    const walk = (d: string, depth: number) => {
      if (depth > 4) return;
      for (const e of safeReaddir(d)) {
        if (/^[0-9a-f]{64}$/.test(e)) ids.add(e);
        walk(join(d, e), depth + 1);
      }
    };
    walk(this.stateDir, 0);
    walk(this.rootDir, 0);
    return [...ids];
  }

  /** Every 64-hex id in the daemon's log: pods and containers it handled during the run. */
  private loggedIds(): string[] {
    return [...new Set(this.daemonLog().match(/\b[0-9a-f]{64}\b/g) ?? [])];
  }

  /** SIGKILL of the daemon, synchronous: for process exit only. */
  killDaemonNow(): void {
    try {
      this.child?.kill('SIGKILL');
    } catch {
      // gone
    }
  }

  stop(): Promise<void> {
    // One teardown, whoever asks (the test's after hook, a signal): all get its outcome.
    this.stopPromise ??= this.teardown().finally(() => live.delete(this));
    return this.stopPromise;
  }

  private async teardown(): Promise<void> {
    const problems: string[] = [];
    const leftovers: Leak[] = [];
    const ids: string[] = [];
    if (this.died) {
      problems.push(`corral died during the run (code ${this.died.code}, signal ${this.died.signal})`);
      this.child = undefined;
      this.exited = undefined;
    }
    if (this.child) {
      // Tests remove what they create; what is still there is a test bug (or a daemon bug that
      // kept a remove from working), and gets removed here so the next test starts clean.
      const pods = await this.crictl(['pods', '-q'], { timeoutMs: 30_000 });
      const ctrs = await this.crictl(['ps', '-a', '-q'], { timeoutMs: 30_000 });
      const podIds = pods.stdout.split('\n').filter(Boolean);
      const ctrIds = ctrs.stdout.split('\n').filter(Boolean);
      ids.push(...podIds, ...ctrIds);
      const objects: Leak[] = [];
      if (podIds.length) objects.push({ kind: 'daemon', what: `pods left by the tests: ${podIds.join(' ')}` });
      if (ctrIds.length) objects.push({ kind: 'daemon', what: `containers left by the tests: ${ctrIds.join(' ')}` });
      if (this.opts.allowLeftoverObjects) {
        if (objects.length) console.error(`harness ${this.dir}: removing through the daemon:\n${formatLeaks(objects)}`);
      } else leftovers.push(...objects);
      if (ctrIds.length) await this.crictl(['rm', '-a', '-f'], { timeoutMs: 60_000 });
      if (podIds.length) await this.crictl(['rmp', '-a', '-f'], { timeoutMs: 120_000 });
      try {
        const r = await this.stopDaemon('SIGTERM', 10_000);
        if (r.code !== 0) problems.push(`corral exited with code ${r.code} signal ${r.signal} on SIGTERM`);
      } catch (e) {
        problems.push((e as Error).message);
      }
    }
    ids.push(...this.persistedIds(), ...this.loggedIds());
    const exclusive = (process.env.CI === 'true' || process.env.CORRAL_E2E_EXCLUSIVE === '1') && !otherHarnessesAlive(this.dir);
    const scope = { dir: this.dir, marker: this.marker, bridge: this.bridge, ids: [...new Set(ids)], exclusive, ownMounts: [this.stateDir] };
    if (this.opts.checkLeaks !== false) {
      const found = await findLeaks(this.before, scope);
      leftovers.push(...found.filter((l) => !l.note));
      const notes = found.filter((l) => l.note);
      if (notes.length) {
        console.error(`harness ${this.dir}: new on the host during this run, not attributable to it (not removed):\n${formatLeaks(notes)}`);
      }
    }
    problems.push(...(await cleanup(this.before, scope)));
    if (this.ownRegistry) await this.registry?.stop().catch((e: Error) => problems.push(`registry stop: ${e.message}`));
    const failed = leftovers.length > 0 || problems.length > 0;
    const log = failed ? this.logTail(80) : '';
    if (readMounts().some((m) => m.point === this.dir || m.point.startsWith(this.dir + '/'))) {
      problems.push(`mounts are still under ${this.dir}: it is kept`);
    } else if (process.env.CORRAL_E2E_KEEP !== '1') {
      rmSync(this.dir, { recursive: true, force: true });
    }
    if (failed) {
      const parts = [];
      if (leftovers.length) parts.push(`left behind (cleaned up where possible):\n${formatLeaks(leftovers)}`);
      if (problems.length) parts.push(`teardown problems:\n  ${problems.join('\n  ')}`);
      throw new Error(`harness ${this.dir}: ${parts.join('\n')}\n--- daemon log (tail) ---\n${log}`);
    }
  }
}
