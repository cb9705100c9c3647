/**
 * A real kubelet (v1.37, built by e2e/kube/build.sh) on a harness' corral: the kubelet suites
 * drive corral the way a node does.
 *
 *   const h = await startHarness();
 *   const k = await startKubelet(h);                    // standalone: static pods from k.manifests
 *   k.writePod({ metadata: { name: 'web' }, spec: {...} });
 *   const pod = await k.waitPod('web', (p) => ready(p));  // through the read-only API (/pods)
 *   const summary = await k.get('/stats/summary');
 *   await k.stop();                                      // before h.stop()
 *
 * The kubelet runs with deploy/kubelet/kubelet-config.yaml as its --config, exactly as shipped,
 * plus (standalone) deploy/kubelet/standalone.conf; a drop-in of its own in --config-dir adds
 * only what keeps it inside the harness: the runtime endpoint (the harness socket), its root
 * dir, the static pod dir and the pod log dir under the harness dir, and a cgroup root of its
 * own (cgroupRoot /corral-e2e-<id>, created here in every hierarchy), so the kubelet's
 * kubepods tree never mixes with the host's cgroups and is removed whole at the end.
 *
 * What a kubelet changes on the host, stop() puts back (node-host.ts: tunables, cgroups, mounts,
 * kube-proxy hint chains, /var/lib/kubelet). Its serving certificate goes to --cert-dir under the
 * harness dir, not to /var/lib/kubelet/pki.
 *
 * One kubelet at a time on a host: it listens on 10250, 10248 and 10255.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { sleep } from './exec.js';
import type { Harness } from './index.js';
import { NodeHostState, removeAllPods } from './node-host.js';
import { REPO, tool } from './paths.js';

export const KUBELET_CONFIG = join(REPO, 'deploy', 'kubelet', 'kubelet-config.yaml');
export const KUBELET_STANDALONE = join(REPO, 'deploy', 'kubelet', 'standalone.conf');
export const KUBELET_CLUSTER = join(REPO, 'deploy', 'kubelet', 'cluster.conf');
export const READ_ONLY_PORT = 10255;

/** True when e2e/kube/build.sh has built the kubelet. */
export function kubeletAvailable(): boolean {
  const k = tool('kubelet');
  return k.startsWith('/') && existsSync(k);
}

export interface KubeletOptions {
  /** KubeletConfiguration fields over the shipped files (a test's own, e.g. podCIDR). */
  config?: Record<string, unknown>;
  /** A kubeconfig for a cluster node (cluster.conf applies); absent: standalone (standalone.conf). */
  kubeconfig?: string;
  /** Cluster node: the CA that signs the API server's client certificate for the kubelet. */
  clientCAFile?: string;
  nodeName?: string;
  /** Extra command line flags. */
  flags?: string[];
}

export interface Kubelet {
  readonly dir: string;
  readonly rootDir: string;
  readonly manifests: string;
  readonly podLogsDir: string;
  readonly nodeName: string;
  /** cgroupRoot given to the kubelet ("/corral-e2e-<id>"). */
  readonly cgroupRoot: string;
  readonly pid: number | undefined;
  /** The kubelet process is still running (it did not crash; stopProcess() not called). */
  readonly running: boolean;
  log(): string;
  /** Writes a static pod manifest (JSON) named after metadata.name; returns its path. */
  writePod(pod: Record<string, any>): string;
  removePod(name: string): void;
  /** GET on the read-only API (http://127.0.0.1:10255), parsed as JSON. */
  get<T = any>(path: string): Promise<T>;
  /** GET, the body as text. */
  getText(path: string): Promise<string>;
  /** The static pod `name` as the kubelet reports it (its name there is <name>-<node>). */
  pod(name: string): Promise<any | undefined>;
  /** Polls pod(name) until pred holds; throws with the last status after timeoutMs. */
  waitPod(name: string, pred: (pod: any) => boolean, timeoutMs?: number, what?: string): Promise<any>;
  start(): Promise<void>;
  /** Replaces the test's own KubeletConfiguration fields (for the next start()). */
  writeOwnConfig(extra: Record<string, unknown>): void;
  /** Stops the kubelet process only (pods keep running), as a node's kubelet restart does. */
  stopProcess(signal?: NodeJS.Signals): Promise<void>;
  /** Stops the kubelet, removes every pod through corral, and puts the host back. */
  stop(): Promise<void>;
}

/** A plain HTTP GET (the kubelet's read-only API, a pod's web server): status and body. */
export function httpGet(url: string, timeoutMs = 10_000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', timeout: timeoutMs }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks).toString('utf8') }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${url}: timed out`)));
    req.on('error', reject);
    req.end();
  });
}

export async function startKubelet(h: Harness, opts: KubeletOptions = {}): Promise<Kubelet> {
  const k = new KubeletImpl(h, opts);
  try {
    await k.start();
  } catch (e) {
    await k.stop().catch(() => {});
    throw e;
  }
  return k;
}

class KubeletImpl implements Kubelet {
  readonly dir: string;
  readonly rootDir: string;
  readonly manifests: string;
  readonly podLogsDir: string;
  readonly nodeName: string;
  readonly cgroupRoot: string;
  private readonly confDir: string;
  private readonly logPath: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private readonly host: NodeHostState;

  constructor(private readonly h: Harness, private readonly opts: KubeletOptions) {
    this.dir = join(h.dir, 'kubelet');
    this.rootDir = join(this.dir, 'root');
    this.manifests = join(this.dir, 'manifests');
    this.podLogsDir = join(this.dir, 'pods-logs');
    this.confDir = join(this.dir, 'conf.d');
    this.logPath = join(this.dir, 'kubelet.log');
    this.nodeName = opts.nodeName ?? 'corral-e2e-node';
    for (const d of [this.rootDir, this.manifests, this.podLogsDir, this.confDir]) mkdirSync(d, { recursive: true });
    this.host = new NodeHostState();
    this.cgroupRoot = this.host.cgroupRoot;
    const standalone = !opts.kubeconfig;
    writeFileSync(join(this.confDir, '10-node.conf'), readFileSync(standalone ? KUBELET_STANDALONE : KUBELET_CLUSTER));
    this.writeOwnConfig(opts.config ?? {});
  }

  /** The drop-in with the harness' own paths, endpoint and cgroup root, and a test's fields (JSON is YAML). */
  writeOwnConfig(extra: Record<string, unknown>): void {
    const { h, opts } = this;
    const standalone = !opts.kubeconfig;
    const own = {
      apiVersion: 'kubelet.config.k8s.io/v1beta1',
      kind: 'KubeletConfiguration',
      containerRuntimeEndpoint: h.endpoint,
      imageServiceEndpoint: h.endpoint,
      cgroupRoot: this.cgroupRoot,
      podLogsDir: this.podLogsDir,
      ...(standalone ? { staticPodPath: this.manifests } : { authentication: { x509: { clientCAFile: opts.clientCAFile } } }),
      ...extra,
    };
    writeFileSync(join(this.confDir, '50-harness.conf'), JSON.stringify(own, null, 2));
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  get running(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  log(): string {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  writePod(pod: Record<string, any>): string {
    const name = pod.metadata?.name;
    if (!name) throw new Error('writePod: metadata.name is required');
    const file = join(this.manifests, `${name}.json`);
    const tmp = join(this.dir, `.${name}.json.tmp`);
    // Atomic: the kubelet polls the directory and must never see half a file.
    writeFileSync(tmp, JSON.stringify({ apiVersion: 'v1', kind: 'Pod', ...pod }, null, 2));
    renameSync(tmp, file);
    return file;
  }

  removePod(name: string): void {
    rmSync(join(this.manifests, `${name}.json`), { force: true });
  }

  async getText(path: string): Promise<string> {
    const r = await httpGet(`http://127.0.0.1:${READ_ONLY_PORT}${path}`);
    if (r.status !== 200) throw new Error(`GET ${path}: HTTP ${r.status}: ${r.body.slice(0, 300)}`);
    return r.body;
  }

  async get<T = any>(path: string): Promise<T> {
    return JSON.parse(await this.getText(path)) as T;
  }

  async pod(name: string): Promise<any | undefined> {
    const list = await this.get<{ items: any[] }>('/pods');
    return (list.items ?? []).find((p) => p.metadata?.name === `${name}-${this.nodeName}`);
  }

  async waitPod(name: string, pred: (pod: any) => boolean, timeoutMs = 90_000, what = 'the condition'): Promise<any> {
    const deadline = Date.now() + timeoutMs;
    let last: any;
    for (;;) {
      try {
        last = await this.pod(name);
        if (last && pred(last)) return last;
      } catch (e) {
        last = { error: (e as Error).message };
      }
      if (this.child?.exitCode !== null && this.child?.exitCode !== undefined) {
        throw new Error(`kubelet exited (${this.child.exitCode}) while waiting for pod ${name}: ${this.log().slice(-3000)}`);
      }
      if (Date.now() > deadline) {
        throw new Error(`pod ${name}: ${what} not reached in ${timeoutMs} ms; last: ${JSON.stringify(last?.status ?? last)}`);
      }
      await sleep(500);
    }
  }

  async start(): Promise<void> {
    // One kubelet per host: another one's healthz would pass for this one's.
    if (await httpGet('http://127.0.0.1:10248/healthz', 2000).then(() => true, () => false)) {
      throw new Error('another kubelet is running on this host (127.0.0.1:10248 answers); one kubelet at a time');
    }
    const args = [
      `--config=${KUBELET_CONFIG}`,
      `--config-dir=${this.confDir}`,
      `--root-dir=${this.rootDir}`,
      `--cert-dir=${join(this.dir, 'pki')}`,
      `--hostname-override=${this.nodeName}`,
      '--v=2',
      ...(this.opts.kubeconfig ? [`--kubeconfig=${this.opts.kubeconfig}`] : []),
      ...(this.opts.flags ?? []),
    ];
    const fd = openSync(this.logPath, 'a');
    // systemd-run is not usable without systemd as PID 1; the kubelet needs nothing from PATH but mount tools.
    const child = spawn(tool('kubelet'), args, { stdio: ['ignore', fd, fd], env: { ...process.env, CORRAL_E2E_KUBELET: '1' } });
    closeSync(fd);
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    process.once('exit', () => child.kill('SIGKILL'));
    // Ready when its healthz answers (the read-only API starts with it).
    const deadline = Date.now() + 60_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`kubelet exited with ${child.exitCode}: ${this.log().slice(-4000)}`);
      const ok = await httpGet('http://127.0.0.1:10248/healthz', 2000).then((r) => r.status === 200, () => false);
      if (ok) return;
      if (Date.now() > deadline) throw new Error(`kubelet not healthy after 60 s: ${this.log().slice(-4000)}`);
      await sleep(250);
    }
  }

  async stopProcess(signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    const c = this.child;
    if (!c || c.exitCode !== null || c.signalCode !== null) return;
    c.kill(signal);
    const killed = await Promise.race([this.exited!.then(() => true), sleep(15_000).then(() => false)]);
    if (!killed) {
      c.kill('SIGKILL');
      await this.exited;
    }
  }

  async stop(): Promise<void> {
    await this.stopProcess();
    // What the kubelet started, corral removes: pods and their containers.
    await removeAllPods((args, opts) => this.h.crictl(args, opts));
    await this.host.restore([this.dir]);
  }
}
