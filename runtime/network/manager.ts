/**
 * The pod network: CNI ADD/DEL/CHECK for pod sandboxes, executed by corral itself.
 *
 * Each pod joins two networks: "cni-loopback" on lo (so 127.0.0.1 works in every pod, as the
 * kubelet's runtimes do it) and the node's network (the conf dir's first config, or corral's
 * default) on eth0. The plugins of a list run in order on ADD, each receiving the previous
 * one's result as prevResult, and in reverse on DEL.
 *
 * Before the first plugin runs, a record of the pod's networks (the exact config, CNI_ARGS
 * and capability arguments) is written to the cache dir, and the final ADD results are added
 * to it afterwards. DEL reads only that record, so it frees the pod's IP and rules after a
 * daemon restart, a node reboot, or a change of the conf dir, with the config the pod was
 * set up with.
 */
import { execFile } from 'node:child_process';
import { performance } from 'node:perf_hooks';
import { promisify } from 'node:util';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import type { Config } from '../config.js';
import type { Logger } from '../util/log.js';
import { FailedPreconditionError, InvalidArgumentError, NotFoundError, errorMessage, isENOENT } from '../errors.js';
import { KeyedQueue, writeFileAtomic } from '../state/store.js';
import { RecordLog } from '../state/record-log.js';
import { bridgeForPodCidr, parsePodCidr } from './pod-cidr.js';
import { DEFAULT_NETWORK_NAME, loadNetwork, loopbackNetworkConf, requiredBinaries, withPodCidr, type LoadedNetwork, type NetworkConfList } from './cni-config.js';
import { execPlugin, findPlugin, requirePlugin, type CniCommand } from './cni-exec.js';
import { removeIpMasq } from './masq-cleanup.js';
import { buildCapabilityArgs, buildCniArgs, runtimeConfigFor, type CapabilityArgs, type CniDns, type PortMappingIn } from './runtime-config.js';

const execFileAsync = promisify(execFile);

export const POD_IFNAME = 'eth0';
const LOOPBACK_IFNAME = 'lo';
const NSFS_MAGIC = 0x6e736673;
const NOT_READY_REASON = 'NetworkPluginNotReady';

export interface PodNetworkRef {
  /** The sandbox id: CNI_CONTAINERID. */
  id: string;
  name: string;
  namespace: string;
  uid: string;
}

export interface SetUpPodRequest extends PodNetworkRef {
  netnsPath: string;
  portMappings: PortMappingIn[];
  annotations: Record<string, string>;
  dns?: CniDns;
  signal?: AbortSignal;
}

export interface SetUpPodResult {
  /** The pod's addresses without prefix length, IPv4 first, then IPv6. */
  ips: string[];
  /** The node network's final ADD result, as the last plugin printed it. */
  result: unknown;
  /** Wall time of each plugin's ADD, in call order. */
  timings: Array<{ plugin: string; ms: number }>;
}

export interface TearDownPodRequest extends PodNetworkRef {
  netnsPath?: string;
  signal?: AbortSignal;
}

export interface CheckPodRequest extends PodNetworkRef {
  netnsPath?: string;
  signal?: AbortSignal;
}

export interface NetworkStatus { ready: boolean; reason: string; message: string }

/** One network a pod is attached to, as recorded in the cache. */
interface Attachment {
  ifName: string;
  conf: NetworkConfList;
  caps: CapabilityArgs;
  /** The final ADD result; null while ADD has not completed. */
  result: unknown;
}

interface CacheRecord {
  version: 1;
  id: string;
  name: string;
  namespace: string;
  uid: string;
  netnsPath: string;
  cniArgs: string;
  /** Network config file the node network came from, for humans. */
  confFile: string;
  attachments: Attachment[];
}

export interface NetworkManagerDeps {
  config: Config;
  logger: Logger;
  /** Per-plugin execution timeout; default 60 s. */
  pluginTimeoutMs?: number;
  /** Route table used to pick the default subnet (tests inject one). */
  routeFile?: string;
  /** Counts failed plugin invocations (runtime/metrics.ts' cniErrors). */
  cniErrors?: { inc(labels: { command: string }): void };
}

export class NetworkManager {
  private podCidr = '';
  /** The default network's bridge for the pod CIDR in use (pod-cidr.ts), kept with it. */
  private bridge = bridgeForPodCidr([]);
  private cidrWrite: Promise<void> = Promise.resolve();
  private readonly locks = new KeyedQueue();
  /**
   * What DEL needs of every pod set up: one record log (state/record-log.ts), so that a pod
   * costs the disk no file. `results/<id>.json`, one file per pod, is what earlier daemons
   * wrote: still read and removed, never written.
   */
  private readonly records: RecordLog<Record<string, never>, CacheRecord>;
  private readonly resultsDir: string;
  private readonly defaultDir: string;
  private readonly ipamDataDir: string;
  private readonly timeoutMs: number;

  private constructor(private readonly deps: NetworkManagerDeps) {
    const { config } = deps;
    this.resultsDir = join(config.cni.cache_dir, 'results');
    this.records = new RecordLog(join(config.cni.cache_dir, 'records'), 'CNI cache record');
    this.defaultDir = join(config.root_dir, 'cni', 'net.d');
    this.ipamDataDir = join(config.root_dir, 'cni', 'networks');
    this.timeoutMs = deps.pluginTimeoutMs ?? 60_000;
  }

  static async create(deps: NetworkManagerDeps): Promise<NetworkManager> {
    const m = new NetworkManager(deps);
    await m.records.load();
    // The kubelet sends the pod CIDR once per change, not again after a runtime restart.
    m.podCidr = (await fs.readFile(m.podCidrFile, 'utf8').catch(() => '')).trim();
    m.bridge = bridgeForPodCidr(m.podCidr ? m.podCidr.split(',') : []);
    try {
      const net = await m.load();
      deps.logger.info(`CNI network "${net.conf.name}" from ${net.file}${net.isDefault ? ' (corral default)' : ''}`);
    } catch (err) {
      // Not fatal: status() reports it, and a config dropped in later is picked up.
      deps.logger.warn(`CNI: ${errorMessage(err)}`);
    }
    return m;
  }

  /**
   * The pod CIDR from UpdateRuntimeConfig: offered to plugins declaring the ipRanges
   * capability, and the range of corral's default network. Kept on disk for restarts.
   */
  setPodCidr(cidr: string): void {
    // Checked before anything changes: a value that is not a CIDR would otherwise be kept on
    // disk and fail every pod's ADD, also after a restart.
    const next = parsePodCidr(cidr).join(',');
    if (next === this.podCidr) return;
    this.podCidr = next;
    this.bridge = bridgeForPodCidr(next.split(','));
    this.cidrWrite = this.cidrWrite
      .then(() => writeFileAtomic(this.podCidrFile, next + '\n'))
      .catch((err) => { this.deps.logger.warn(`CNI: cannot keep the pod CIDR in ${this.podCidrFile}: ${errorMessage(err)}`); });
  }

  /** The pod CIDR in use (kept on disk: the kubelet sends it only when it changes). */
  get podCidrInUse(): string {
    return this.podCidr;
  }

  private get podCidrFile(): string {
    return join(this.deps.config.cni.cache_dir, 'pod-cidr');
  }

  private load(): Promise<LoadedNetwork> {
    return loadNetwork({
      confDir: this.deps.config.cni.conf_dir,
      defaultDir: this.defaultDir,
      ipamDataDir: this.ipamDataDir,
      ...(this.deps.routeFile ? { routeFile: this.deps.routeFile } : {}),
    });
  }

  async status(): Promise<NetworkStatus> {
    let net: LoadedNetwork;
    try {
      net = await this.load();
    } catch (err) {
      return { ready: false, reason: NOT_READY_REASON, message: `no usable CNI network config: ${errorMessage(err)}` };
    }
    const bins = this.deps.config.cni.bin_dirs;
    const missing: string[] = [];
    for (const b of ['loopback', ...requiredBinaries(net.conf)]) {
      if (!(await findPlugin(b, bins))) missing.push(b);
    }
    if (missing.length) {
      return {
        ready: false,
        reason: NOT_READY_REASON,
        message: `CNI network "${net.conf.name}" (${net.file}): plugin${missing.length > 1 ? 's' : ''} ${missing.join(', ')} not found in ${bins.join(', ')}`,
      };
    }
    return { ready: true, reason: '', message: '' };
  }

  async setUpPod(pod: SetUpPodRequest): Promise<SetUpPodResult> {
    checkId(pod.id);
    return this.locked(pod.id, () => this.add(pod));
  }

  async tearDownPod(pod: TearDownPodRequest): Promise<void> {
    checkId(pod.id);
    return this.locked(pod.id, () => this.del(pod));
  }

  async checkPod(pod: CheckPodRequest): Promise<void> {
    checkId(pod.id);
    return this.locked(pod.id, () => this.check(pod));
  }

  /** The recorded ADD result of a pod (after a restart, for its status), or undefined. */
  async cachedResult(id: string): Promise<{ ips: string[]; result: unknown } | undefined> {
    checkId(id);
    const rec = await this.readRecord(id);
    const att = rec?.attachments.find((a) => a.ifName === POD_IFNAME);
    if (!att || att.result === null) return undefined;
    return { ips: ipsFromResult(att.result, POD_IFNAME), result: att.result };
  }

  /**
   * Ids of every pod with a CNI record (set up, or mid-ADD when the daemon died). At start
   * the sandbox layer can tear down the ones it has no sandbox for, so no IP stays allocated.
   */
  async recordedPods(): Promise<Array<{ id: string; name: string; namespace: string; uid: string; netnsPath: string }>> {
    let names: string[];
    try {
      names = await fs.readdir(this.resultsDir);
    } catch (err) {
      if (!isENOENT(err)) throw err;
      names = [];
    }
    const ids = new Set([...this.records.list().map((e) => e.id), ...names.filter((x) => x.endsWith('.json')).map((n) => n.slice(0, -'.json'.length))]);
    const out: Array<{ id: string; name: string; namespace: string; uid: string; netnsPath: string }> = [];
    for (const id of [...ids].sort()) {
      const rec = await this.readRecord(id).catch(() => undefined);
      if (rec) out.push({ id: rec.id, name: rec.name, namespace: rec.namespace, uid: rec.uid, netnsPath: rec.netnsPath });
    }
    return out;
  }

  /** Closes the record log (the manager is unusable afterwards). */
  close(): void {
    this.records.close();
  }

  private async add(pod: SetUpPodRequest): Promise<SetUpPodResult> {
    let net: LoadedNetwork;
    try {
      net = await this.load();
    } catch (err) {
      throw new FailedPreconditionError(`network not ready: ${errorMessage(err)}`, { cause: err });
    }
    const caps = buildCapabilityArgs(pod, this.podCidr);
    const rec: CacheRecord = {
      version: 1,
      id: pod.id,
      name: pod.name,
      namespace: pod.namespace,
      uid: pod.uid,
      netnsPath: pod.netnsPath,
      cniArgs: buildCniArgs(pod),
      confFile: net.file,
      attachments: [
        { ifName: LOOPBACK_IFNAME, conf: loopbackNetworkConf(), caps: {}, result: null },
        { ifName: POD_IFNAME, conf: net.isDefault && this.podCidr ? withPodCidr(net.conf, this.podCidr, this.bridge) : net.conf, caps, result: null },
      ],
    };
    // Resolve every binary first: a missing plugin fails before anything is set up.
    const paths = new Map<string, string>();
    for (const a of rec.attachments) {
      for (const p of a.conf.plugins) paths.set(p.type, await requirePlugin(p.type, this.deps.config.cni.bin_dirs));
    }
    // Recorded before the first plugin runs, so that a daemon crash in the middle still leaves
    // DEL something to work from. Not fsynced: a process crash keeps the page cache, and a
    // power loss mid-ADD also loses the plugins' own state; the final record is fsynced.
    await this.writeRecord(rec, false);

    const timings: Array<{ plugin: string; ms: number }> = [];
    // lo and eth0 are independent, so both chains run at once; a pod start waits for the longer one only.
    const outcomes = await Promise.allSettled(rec.attachments.map((a) => this.addChain(rec, a, paths, timings, pod.signal)));
    const failed = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected');
    if (failed) {
      await this.undo(rec, paths);
      throw failed.reason;
    }
    try {
      await this.writeRecord(rec);
    } catch (err) {
      await this.undo(rec, paths);
      throw err;
    }
    const result = rec.attachments[1]!.result;
    const ips = ipsFromResult(result, POD_IFNAME);
    this.deps.logger.debug(`CNI ADD pod ${rec.id} network "${net.conf.name}": ${ips.join(', ') || 'no IP'} (${timings.map((x) => `${x.plugin} ${x.ms} ms`).join(', ')})`);
    return { ips, result, timings };
  }

  /** ADD through a list; each plugin's result becomes the next one's prevResult. */
  private async addChain(rec: CacheRecord, a: Attachment, paths: Map<string, string>, timings: Array<{ plugin: string; ms: number }>, signal?: AbortSignal): Promise<void> {
    let prev: unknown = undefined;
    for (const plugin of a.conf.plugins) {
      const start = performance.now();
      const out = await this.run('ADD', rec, a, plugin, paths.get(plugin.type)!, rec.netnsPath, prev, signal);
      timings.push({ plugin: plugin.type, ms: Math.round((performance.now() - start) * 10) / 10 });
      if (out !== undefined) prev = out;
      // Kept as we go, so that undoing a half-done chain hands DEL what was allocated.
      a.result = prev ?? null;
    }
  }

  /** Undoes a failed ADD. When even that fails, the record stays for tearDownPod to retry. */
  private async undo(rec: CacheRecord, paths: Map<string, string>): Promise<void> {
    try {
      await this.delAttachments(rec, paths, rec.netnsPath);
      await this.removeRecord(rec.id);
    } catch (err) {
      this.deps.logger.warn(`CNI: cleanup after a failed ADD of pod ${rec.id} failed, kept for a later DEL: ${errorMessage(err)}`);
      await this.writeRecord(rec).catch(() => {});
    }
  }

  private async del(pod: TearDownPodRequest): Promise<void> {
    const rec = await this.readRecord(pod.id);
    // Nothing recorded: never set up, or already torn down. DEL is idempotent from the kubelet's view.
    if (!rec) return;
    const netns = (await isNetns(pod.netnsPath)) ? pod.netnsPath! : (await isNetns(rec.netnsPath)) ? rec.netnsPath : '';
    const paths = new Map<string, string>();
    for (const a of rec.attachments) {
      for (const p of a.conf.plugins) paths.set(p.type, await requirePlugin(p.type, this.deps.config.cni.bin_dirs));
    }
    await this.delAttachments(rec, paths, netns, pod.signal);
    if (netns === '') await this.removeOrphanMasq(rec);
    await this.removeRecord(rec.id);
    await this.removeSupersededBridge(rec);
  }


  /**
   * After the pod CIDR changed, the bridge of the previous range serves only the pods started
   * before; when the last of them is gone, the bridge goes too (the bridge plugin never
   * deletes a bridge). Only corral's own bridges of its default network are touched.
   */
  private async removeSupersededBridge(rec: CacheRecord): Promise<void> {
    const bridgeOf = (r: CacheRecord): string | undefined => {
      const a = r.attachments.find((x) => x.ifName === POD_IFNAME);
      if (!a || a.conf.name !== DEFAULT_NETWORK_NAME) return undefined;
      const b = a.conf.plugins.find((p) => p.type === 'bridge')?.bridge;
      return typeof b === 'string' && /^corral[0-9a-f]{0,8}$/.test(b) ? b : undefined;
    };
    const bridge = bridgeOf(rec);
    if (!bridge || bridge === this.bridge) return;
    for (const other of this.records.list()) if (bridgeOf(other.status) === bridge) return;
    try {
      await execFileAsync('ip', ['link', 'del', bridge], { timeout: this.timeoutMs });
      this.deps.logger.info(`CNI: removed bridge ${bridge}: its range is no longer the pod CIDR and its last pod is gone`);
    } catch (err) {
      const msg = errorMessage(err);
      if (!/Cannot find device/.test(msg)) this.deps.logger.warn(`CNI: cannot remove the superseded bridge ${bridge}: ${msg}`);
    }
  }

  /** See masq-cleanup.ts: what bridge/ptp cannot remove without the netns. */
  private async removeOrphanMasq(rec: CacheRecord): Promise<void> {
    for (const a of rec.attachments) {
      if (!a.conf.plugins.some((p) => (p.type === 'bridge' || p.type === 'ptp') && p.ipMasq === true)) continue;
      const ips = ipsFromResult(a.result, a.ifName);
      const families: Array<4 | 6> = a.result === null ? [4, 6] : [...(ips.some((ip) => !ip.includes(':')) ? [4 as const] : []), ...(ips.some((ip) => ip.includes(':')) ? [6 as const] : [])];
      const removed = await removeIpMasq(a.conf.name, rec.id, families, this.timeoutMs);
      if (removed.length) this.deps.logger.debug(`CNI: pod ${rec.id} had no netns left; removed ${removed.join(', ')}`);
    }
  }

  /**
   * DEL of the node network, plugins in reverse, each with the cached result as prevResult.
   * The loopback network is not deleted: it holds no resources outside the netns, and
   * setting lo down in a netns about to go away only costs a process spawn.
   */
  private async delAttachments(rec: CacheRecord, paths: Map<string, string>, netns: string, signal?: AbortSignal): Promise<void> {
    for (const a of [...rec.attachments].reverse()) {
      if (a.ifName === LOOPBACK_IFNAME) continue;
      for (const plugin of [...a.conf.plugins].reverse()) {
        await this.run('DEL', rec, a, plugin, paths.get(plugin.type)!, netns, a.result ?? undefined, signal);
      }
    }
  }

  private async check(pod: CheckPodRequest): Promise<void> {
    const rec = await this.readRecord(pod.id);
    const main = rec?.attachments.find((a) => a.ifName === POD_IFNAME);
    if (!rec || !main || main.result === null) throw new NotFoundError(`pod sandbox ${pod.id} has no network set up`);
    const netns = pod.netnsPath ?? rec.netnsPath;
    if (!(await isNetns(netns))) throw new FailedPreconditionError(`pod sandbox ${pod.id}: network namespace ${netns} is gone`);
    for (const a of rec.attachments) {
      // CHECK exists since CNI 0.4.0; a list may opt out of it.
      if (a.conf.disableCheck || compareVersion(a.conf.cniVersion, '0.4.0') < 0) continue;
      for (const plugin of a.conf.plugins) {
        const path = await requirePlugin(plugin.type, this.deps.config.cni.bin_dirs);
        await this.run('CHECK', rec, a, plugin, path, netns, a.result ?? undefined, pod.signal);
      }
    }
  }

  private run(command: CniCommand, rec: CacheRecord, a: Attachment, plugin: NetworkConfList['plugins'][number], path: string, netns: string, prevResult: unknown, signal?: AbortSignal): Promise<unknown> {
    const stdin: Record<string, unknown> = { ...plugin, name: a.conf.name, cniVersion: a.conf.cniVersion };
    if (prevResult !== undefined) stdin.prevResult = prevResult;
    const rc = runtimeConfigFor(plugin, a.caps);
    if (rc) stdin.runtimeConfig = rc;
    const p = execPlugin({
      path,
      plugin: plugin.type,
      network: a.conf.name,
      command,
      containerId: rec.id,
      netns,
      ifName: a.ifName,
      cniArgs: rec.cniArgs,
      cniPath: this.deps.config.cni.bin_dirs,
      stdin,
      timeoutMs: this.timeoutMs,
      ...(signal ? { signal } : {}),
    });
    p.catch(() => this.deps.cniErrors?.inc({ command: command.toLowerCase() }));
    return p;
  }

  private recordPath(id: string): string {
    return join(this.resultsDir, `${id}.json`);
  }

  private async readRecord(id: string): Promise<CacheRecord | undefined> {
    const logged = this.records.get(id);
    if (logged) return structuredClone(logged.status);
    let text: string;
    try {
      text = await fs.readFile(this.recordPath(id), 'utf8');
    } catch (err) {
      if (isENOENT(err)) return undefined;
      throw err;
    }
    try {
      return JSON.parse(text) as CacheRecord;
    } catch (err) {
      // A torn file cannot happen with atomic writes; anything else is not ours to guess about.
      throw new FailedPreconditionError(`CNI cache ${this.recordPath(id)} is unreadable: ${errorMessage(err)}`);
    }
  }

  private async writeRecord(rec: CacheRecord, durable = true): Promise<void> {
    // A copy: the log's entry must not change with the caller's object between writes.
    const copy = structuredClone(rec);
    if (this.records.get(rec.id)) await this.records.update(rec.id, () => copy, { durable });
    else await this.records.create(rec.id, {}, copy, { durable });
  }

  private async removeRecord(id: string): Promise<void> {
    await this.records.remove(id);
    await fs.rm(this.recordPath(id), { force: true });
  }

  /** Serialises operations on one pod; different pods run concurrently. */
  private locked<T>(id: string, fn: () => Promise<T>): Promise<T> {
    return this.locks.run(id, fn);
  }
}

function checkId(id: string): void {
  if (!id || id.includes('/') || id.startsWith('.')) throw new InvalidArgumentError(`invalid pod sandbox id ${JSON.stringify(id)}`);
}

/** True when path is a mounted network namespace (an nsfs file), not a leftover empty pin file. */
async function isNetns(path: string | undefined): Promise<boolean> {
  if (!path) return false;
  try {
    return Number((await fs.statfs(path)).type) === NSFS_MAGIC;
  } catch {
    return false;
  }
}

function compareVersion(a: string, b: string): number {
  const pa = a.split('.').map((x) => parseInt(x, 10) || 0);
  const pb = b.split('.').map((x) => parseInt(x, 10) || 0);
  for (let i = 0; i < 3; i++) {
    const d = (pa[i] ?? 0) - (pb[i] ?? 0);
    if (d) return d;
  }
  return 0;
}

/**
 * The pod's addresses from a CNI result (0.3.0 and later; 0.1/0.2's ip4/ip6 too): those on
 * the pod's interface when the result says which one, IPv4 first, then IPv6.
 */
export function ipsFromResult(result: unknown, ifName: string): string[] {
  if (!result || typeof result !== 'object') return [];
  const r = result as {
    ips?: Array<{ address?: string; interface?: number }>;
    interfaces?: Array<{ name?: string; sandbox?: string }>;
    ip4?: { ip?: string };
    ip6?: { ip?: string };
  };
  let addrs: string[] = [];
  if (Array.isArray(r.ips)) {
    const onPod = r.ips.filter((ip) => {
      if (typeof ip.interface !== 'number') return true;
      const itf = r.interfaces?.[ip.interface];
      return !itf || itf.name === ifName;
    });
    addrs = (onPod.length ? onPod : r.ips).map((ip) => ip.address ?? '').filter(Boolean);
  } else {
    addrs = [r.ip4?.ip, r.ip6?.ip].filter((x): x is string => typeof x === 'string');
  }
  const bare = addrs.map((a) => a.split('/')[0]!);
  return [...bare.filter((a) => !a.includes(':')), ...bare.filter((a) => a.includes(':'))];
}

