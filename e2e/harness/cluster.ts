/**
 * A one-node Kubernetes cluster on loopback whose node runs corral: etcd, kube-apiserver,
 * kube-controller-manager, kube-scheduler and a kubelet (all v1.37 from e2e/kube/build.sh),
 * and kubectl with an admin kubeconfig.
 *
 *   const h = await startHarness();
 *   const c = await startCluster(h);          // waits for the node to be Ready
 *   await c.kubectl(['apply', '-f', file]);
 *   await c.stop();                            // before h.stop()
 *
 * Authentication is x509 client certificates from one test CA (admin in system:masters, the
 * kubelet as system:node:<node> in system:nodes), authorization Node,RBAC, service account
 * tokens signed by a key of the run: what kubeadm sets up, without kubeadm. The controller
 * manager allocates the node's pod CIDR from the harness' own subnet, so pod IPs are the ones
 * the harness' CNI network hands out. No kube-proxy and no cluster DNS: pods reach each other
 * by pod IP. API server and etcd ports are chosen free; the kubelet keeps its own (one kubelet
 * per host).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { freePort, run, sleep, type CmdResult, type RunOptions } from './exec.js';
import type { Harness } from './index.js';
import { startKubelet, type Kubelet } from './kubelet.js';
import { tool } from './paths.js';
import { makeCA, makeClientCert, makeServerCert, type CertFiles } from '../registry/pki.js';

export interface Cluster {
  readonly dir: string;
  readonly kubeconfig: string;
  readonly nodeName: string;
  readonly kubelet: Kubelet;
  /** Runs kubectl with the admin kubeconfig; never throws for a non-zero exit. */
  kubectl(args: readonly string[], opts?: RunOptions): Promise<CmdResult>;
  /** kubectl that must succeed: stdout, or throws with stderr. */
  kubectlOk(args: readonly string[], opts?: RunOptions): Promise<string>;
  kubectlJson<T = any>(args: readonly string[], opts?: RunOptions): Promise<T>;
  /** Writes an object (or a List) as JSON for `kubectl apply -f`; returns the path. */
  writeManifest(name: string, obj: unknown): string;
  logs(): Record<string, string>;
  stop(): Promise<void>;
}

function kubeconfig(server: string, ca: string, client: CertFiles, user: string): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'corral-e2e', cluster: { server, 'certificate-authority': ca } }],
    users: [{ name: user, user: { 'client-certificate': client.certFile, 'client-key': client.keyFile } }],
    contexts: [{ name: 'corral-e2e', context: { cluster: 'corral-e2e', user } }],
    'current-context': 'corral-e2e',
  }, null, 2);
}

class Proc {
  readonly child: ChildProcess;
  readonly exited: Promise<void>;
  constructor(readonly name: string, readonly logFile: string, cmd: string, args: string[]) {
    const fd = openSync(logFile, 'a');
    this.child = spawn(cmd, args, { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    this.exited = new Promise((resolve) => this.child.once('exit', () => resolve()));
    process.once('exit', () => this.child.kill('SIGKILL'));
  }
  get dead(): boolean {
    return this.child.exitCode !== null || this.child.signalCode !== null;
  }
  async stop(): Promise<void> {
    if (this.dead) return;
    this.child.kill('SIGTERM');
    const done = await Promise.race([this.exited.then(() => true), sleep(15_000).then(() => false)]);
    if (!done) {
      this.child.kill('SIGKILL');
      await this.exited;
    }
  }
  tail(n = 3000): string {
    try {
      return readFileSync(this.logFile, 'utf8').slice(-n);
    } catch {
      return '';
    }
  }
}

async function runOkQuiet(cmd: string, args: string[]): Promise<void> {
  const r = await run(cmd, args, { timeoutMs: 10_000 });
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')}: ${r.stderr.trim()}`);
}

export async function startCluster(h: Harness, opts: { nodeName?: string } = {}): Promise<Cluster> {
  const dir = join(h.dir, 'cluster');
  const pki = join(dir, 'pki');
  mkdirSync(pki, { recursive: true });
  const nodeName = opts.nodeName ?? 'corral-e2e-node';
  const procs: Proc[] = [];
  let kubelet: Kubelet | undefined;
  let nodeLink: string | undefined;
  const stopAll = async () => {
    if (kubelet) await kubelet.stop().catch(() => undefined);
    for (const p of [...procs].reverse()) await p.stop();
    if (nodeLink) await run('ip', ['link', 'del', nodeLink], { timeoutMs: 10_000 }).catch(() => undefined);
  };

  try {
    const ca = makeCA(pki, 'corral e2e cluster CA');
    const apiPort = await freePort();
    const server = `https://127.0.0.1:${apiPort}`;
    const serving = makeServerCert(pki, ca, ['127.0.0.1', 'localhost', 'kubernetes', 'kubernetes.default', 'kubernetes.default.svc', '10.0.0.1'], 'apiserver');
    const admin = makeClientCert(pki, ca, 'corral-e2e-admin', ['system:masters'], 'admin');
    const node = makeClientCert(pki, ca, `system:node:${nodeName}`, ['system:nodes'], 'kubelet');
    const apiToKubelet = makeClientCert(pki, ca, 'kube-apiserver-kubelet-client', ['system:masters'], 'apiserver-kubelet-client');
    const saKey = join(pki, 'sa.key');
    const saPub = join(pki, 'sa.pub');
    await run('openssl', ['genrsa', '-out', saKey, '2048'], { timeoutMs: 30_000 });
    await run('openssl', ['rsa', '-in', saKey, '-pubout', '-out', saPub], { timeoutMs: 30_000 });
    const adminConf = join(dir, 'admin.kubeconfig');
    const kubeletConf = join(dir, 'kubelet.kubeconfig');
    writeFileSync(adminConf, kubeconfig(server, ca.certFile, admin, 'admin'));
    writeFileSync(kubeletConf, kubeconfig(server, ca.certFile, node, `system:node:${nodeName}`));

    const etcdClient = await freePort();
    const etcdPeer = await freePort();
    procs.push(new Proc('etcd', join(dir, 'etcd.log'), tool('etcd'), [
      `--data-dir=${join(dir, 'etcd')}`, '--name=corral-e2e',
      `--listen-client-urls=http://127.0.0.1:${etcdClient}`, `--advertise-client-urls=http://127.0.0.1:${etcdClient}`,
      `--listen-peer-urls=http://127.0.0.1:${etcdPeer}`, `--initial-advertise-peer-urls=http://127.0.0.1:${etcdPeer}`,
      `--initial-cluster=corral-e2e=http://127.0.0.1:${etcdPeer}`, '--listen-metrics-urls=', '--log-level=warn',
      // A test cluster's data is thrown away: no fsync per write on this host's disk.
      '--unsafe-no-fsync',
    ]));
    procs.push(new Proc('kube-apiserver', join(dir, 'kube-apiserver.log'), tool('kube-apiserver'), [
      `--etcd-servers=http://127.0.0.1:${etcdClient}`,
      // A loopback advertise address cannot back the kubernetes Service's endpoints: no reconciler.
      '--bind-address=127.0.0.1', '--advertise-address=127.0.0.1', '--endpoint-reconciler-type=none', `--secure-port=${apiPort}`,
      `--tls-cert-file=${serving.certFile}`, `--tls-private-key-file=${serving.keyFile}`,
      `--client-ca-file=${ca.certFile}`,
      `--kubelet-client-certificate=${apiToKubelet.certFile}`, `--kubelet-client-key=${apiToKubelet.keyFile}`,
      '--kubelet-preferred-address-types=InternalIP',
      '--service-account-issuer=https://kubernetes.default.svc.cluster.local',
      `--service-account-key-file=${saPub}`, `--service-account-signing-key-file=${saKey}`,
      '--service-cluster-ip-range=10.0.0.0/24', '--authorization-mode=Node,RBAC',
      '--allow-privileged=true', '--enable-priority-and-fairness=false', '--profiling=false', '--v=1',
    ]));
    const deadline = Date.now() + 120_000;
    for (;;) {
      const r = await run(tool('kubectl'), ['--kubeconfig', adminConf, 'get', '--raw', '/readyz'], { timeoutMs: 10_000 });
      if (r.code === 0) break;
      for (const p of procs) if (p.dead) throw new Error(`${p.name} exited: ${p.tail()}`);
      if (Date.now() > deadline) throw new Error(`kube-apiserver not ready in 120 s: ${r.stderr}\n${procs[1]!.tail()}`);
      await sleep(500);
    }
    procs.push(new Proc('kube-controller-manager', join(dir, 'kube-controller-manager.log'), tool('kube-controller-manager'), [
      `--kubeconfig=${adminConf}`, `--authentication-kubeconfig=${adminConf}`, `--authorization-kubeconfig=${adminConf}`,
      '--bind-address=127.0.0.1', `--secure-port=${await freePort()}`, '--leader-elect=false',
      `--service-account-private-key-file=${saKey}`, `--root-ca-file=${ca.certFile}`,
      `--cluster-signing-cert-file=${ca.certFile}`, `--cluster-signing-key-file=${ca.keyFile}`,
      '--use-service-account-credentials=true',
      '--allocate-node-cidrs=true', `--cluster-cidr=${h.subnet}`, '--node-cidr-mask-size=24',
      '--service-cluster-ip-range=10.0.0.0/24', '--v=1',
    ]));
    procs.push(new Proc('kube-scheduler', join(dir, 'kube-scheduler.log'), tool('kube-scheduler'), [
      `--kubeconfig=${adminConf}`, `--authentication-kubeconfig=${adminConf}`, `--authorization-kubeconfig=${adminConf}`,
      '--bind-address=127.0.0.1', `--secure-port=${await freePort()}`, '--leader-elect=false', '--v=1',
    ]));
    // The node's InternalIP, which the API server dials for logs, exec and port-forward: the
    // kubelet refuses a loopback node IP, so the node gets an address of the harness' own
    // subnet on a link of its own (a veth pair: this kernel has no dummy driver; removed by stop()).
    const nodeIp = h.subnet.replace(/\.0\.0\/16$/, '.255.254');
    nodeLink = `crlnode${h.bridge.slice(3, 8)}`;
    await runOkQuiet('ip', ['link', 'add', nodeLink, 'type', 'veth', 'peer', 'name', `${nodeLink}p`]);
    await runOkQuiet('ip', ['link', 'set', `${nodeLink}p`, 'up']);
    await runOkQuiet('ip', ['addr', 'add', `${nodeIp}/32`, 'dev', nodeLink]);
    await runOkQuiet('ip', ['link', 'set', nodeLink, 'up']);
    kubelet = await startKubelet(h, {
      kubeconfig: kubeletConf, clientCAFile: ca.certFile, nodeName,
      flags: [`--node-ip=${nodeIp}`],
    });
    const c = new ClusterImpl(dir, adminConf, nodeName, kubelet, procs, stopAll);
    // Ready node, and the default service account (pods are refused without it).
    const ready = Date.now() + 120_000;
    for (;;) {
      const n = await c.kubectl(['get', 'node', nodeName, '-o', 'jsonpath={.status.conditions[?(@.type=="Ready")].status}']);
      const sa = await c.kubectl(['get', 'serviceaccount', 'default', '-o', 'name']);
      if (n.stdout.trim() === 'True' && sa.code === 0) break;
      for (const p of procs) if (p.dead) throw new Error(`${p.name} exited: ${p.tail()}`);
      if (Date.now() > ready) throw new Error(`node ${nodeName} not Ready in 120 s (${n.stdout}${n.stderr}): ${kubelet.log().slice(-4000)}`);
      await sleep(1000);
    }
    return c;
  } catch (e) {
    await stopAll();
    throw e;
  }
}

class ClusterImpl implements Cluster {
  constructor(
    readonly dir: string,
    readonly kubeconfig: string,
    readonly nodeName: string,
    readonly kubelet: Kubelet,
    private readonly procs: Proc[],
    private readonly stopAll: () => Promise<void>,
  ) {}

  kubectl(args: readonly string[], opts: RunOptions = {}): Promise<CmdResult> {
    return run(tool('kubectl'), ['--kubeconfig', this.kubeconfig, ...args], { timeoutMs: 120_000, ...opts });
  }

  async kubectlOk(args: readonly string[], opts: RunOptions = {}): Promise<string> {
    const r = await this.kubectl(args, opts);
    if (r.code !== 0) throw new Error(`kubectl ${args.join(' ')}: exit ${r.code}${r.timedOut ? ' (timed out)' : ''}: ${r.stderr.trim()}`);
    return r.stdout;
  }

  async kubectlJson<T = any>(args: readonly string[], opts: RunOptions = {}): Promise<T> {
    return JSON.parse(await this.kubectlOk([...args, '-o', 'json'], opts)) as T;
  }

  writeManifest(name: string, obj: unknown): string {
    const f = join(this.dir, `${name}.json`);
    writeFileSync(f, JSON.stringify(obj, null, 2));
    return f;
  }

  logs(): Record<string, string> {
    const out: Record<string, string> = { kubelet: this.kubelet.log() };
    for (const p of this.procs) out[p.name] = p.tail(100_000);
    return out;
  }

  stop(): Promise<void> {
    return this.stopAll();
  }
}
