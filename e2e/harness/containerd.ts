/**
 * containerd (built by e2e/containerd/build.sh) on a private socket, root and state dir: the
 * reference runtime that comparisons run beside corral with the same images (through the same
 * test registry, mirrored the same way), the same CNI plugins and the host's runc.
 *
 *   const c = await startContainerd();         // registry: the run's shared one, else its own
 *   ... c.endpoint ("unix://...") to the kubelet, critest, crictl (c.crictl(args)) ...
 *   await c.stop();                            // removes pods, stops it, fails on leftovers
 *
 * Its configuration (version 3, containerd 2.x) is what containerd's defaults give a node, with
 * the paths of this run and: registry mirrors from hosts.toml files (certs.d) that send
 * registry.k8s.io & co. to the test registry's namespaces; the CNI bridge of this run;
 * restrict_oom_score_adj (the test process runs with a lowered oom_score_adj on some hosts);
 * no NRI and no TCP service. The shim finds runc through the options' BinaryName.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { closeSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { stringify as toToml } from 'smol-toml';
import { run, sleep, type CmdResult, type RunOptions } from './exec.js';
import { PREFIX, baseDir, chooseSubnet, cniConflist, otherHarnessesAlive } from './index.js';
import { cleanup, findLeaks, formatLeaks, readMounts, takeSnapshot } from './leaks.js';
import { TOOLS_BIN, tool } from './paths.js';
import { mirroredHosts, sharedRegistry, startRegistryWithImages, type RegistryHandle } from './registry.js';

export const PAUSE_IMAGE = 'registry.k8s.io/pause:3.10.2';

export interface Containerd {
  readonly dir: string;
  readonly socket: string;
  readonly endpoint: string;
  readonly subnet: string;
  readonly bridge: string;
  readonly registry: RegistryHandle | undefined;
  readonly pid: number | undefined;
  crictl(args: readonly string[], opts?: RunOptions): Promise<CmdResult>;
  log(): string;
  stop(): Promise<void>;
}

export function containerdAvailable(): boolean {
  return existsSync(join(TOOLS_BIN, 'containerd')) && existsSync(join(TOOLS_BIN, 'containerd-shim-runc-v2'));
}

export interface ContainerdOptions {
  /** The OCI runtime binary (default: the host's runc, the one corral's runc handler runs). */
  runc?: string;
  logLevel?: 'info' | 'debug' | 'warn';
  /** More runtime handler names for the same runc (the node suite's "test-handler"). */
  extraHandlers?: string[];
}

export async function startContainerd(opts: ContainerdOptions = {}): Promise<Containerd> {
  if (!containerdAvailable()) throw new Error(`containerd is not built: bash e2e/containerd/build.sh`);
  mkdirSync(baseDir(), { recursive: true });
  const dir = mkdtempSync(join(baseDir(), PREFIX));
  writeFileSync(join(dir, 'harness.pid'), String(process.pid));
  const before = await takeSnapshot();
  let registry = sharedRegistry();
  const ownRegistry = !registry;
  if (!registry) registry = await startRegistryWithImages();
  const subnet = await chooseSubnet(dir);
  writeFileSync(join(dir, 'subnet'), subnet);
  const c = new ContainerdImpl(dir, subnet, registry, ownRegistry, before, opts);
  try {
    await c.writeConfig(await mirroredHosts());
    await c.start();
  } catch (e) {
    await c.stop().catch(() => {});
    throw e;
  }
  return c;
}

class ContainerdImpl implements Containerd {
  readonly socket: string;
  readonly endpoint: string;
  readonly bridge: string;
  private readonly marker = randomBytes(8).toString('hex');
  private readonly configPath: string;
  private readonly logPath: string;
  private child: ChildProcess | undefined;
  private exited: Promise<void> | undefined;
  private stopped: Promise<void> | undefined;

  constructor(
    readonly dir: string,
    readonly subnet: string,
    readonly registry: RegistryHandle,
    private readonly ownRegistry: boolean,
    private readonly before: Awaited<ReturnType<typeof takeSnapshot>>,
    private readonly opts: ContainerdOptions,
  ) {
    this.socket = join(dir, 'state', 'containerd.sock');
    this.endpoint = `unix://${this.socket}`;
    this.bridge = `ctd${this.marker.slice(0, 8)}`;
    this.configPath = join(dir, 'config.toml');
    this.logPath = join(dir, 'containerd.log');
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  async writeConfig(mirrored: string[]): Promise<void> {
    const { dir, registry } = this;
    const netd = join(dir, 'cni', 'net.d');
    mkdirSync(netd, { recursive: true });
    writeFileSync(join(netd, '10-containerd-e2e.conflist'), JSON.stringify(cniConflist(this.bridge, this.subnet, join(dir, 'cni', 'ipam')), null, 2));
    // hosts.toml per upstream registry: the mirror is a namespace of the test registry, so its
    // API root is <registry>/v2/<host> (override_path: containerd appends no /v2 of its own).
    const certs = join(dir, 'certs.d');
    const tls = registry.caFile ? `  ca = ${JSON.stringify(registry.caFile)}\n` : '';
    for (const host of mirrored) {
      mkdirSync(join(certs, host), { recursive: true });
      writeFileSync(join(certs, host, 'hosts.toml'),
        `server = "https://${host}"\n\n[host."${registry.url}/v2/${host}"]\n  capabilities = ["pull", "resolve"]\n  override_path = true\n${tls}`);
    }
    mkdirSync(join(certs, registry.host), { recursive: true });
    writeFileSync(join(certs, registry.host, 'hosts.toml'), `server = "${registry.url}"\n${tls ? `ca = ${JSON.stringify(registry.caFile)}\n` : ''}`);
    const config = {
      version: 3,
      root: join(dir, 'root'),
      state: join(dir, 'state'),
      grpc: { address: this.socket },
      ttrpc: { address: join(dir, 'state', 'containerd.sock.ttrpc') },
      debug: { level: this.opts.logLevel ?? 'info' },
      plugins: {
        'io.containerd.cri.v1.images': {
          snapshotter: 'overlayfs',
          registry: { config_path: certs },
          pinned_images: { sandbox: PAUSE_IMAGE },
        },
        'io.containerd.cri.v1.runtime': {
          restrict_oom_score_adj: true,
          cni: { bin_dirs: ['/usr/lib/cni', '/opt/cni/bin'], conf_dir: netd, max_conf_num: 1 },
          containerd: {
            default_runtime_name: 'runc',
            runtimes: Object.fromEntries(['runc', ...(this.opts.extraHandlers ?? [])].map((name) => [name, {
              runtime_type: 'io.containerd.runc.v2',
              options: { BinaryName: this.opts.runc ?? '/usr/sbin/runc', SystemdCgroup: false },
            }])),
          },
        },
        'io.containerd.grpc.v1.cri': {
          disable_tcp_service: true,
          stream_server_address: '127.0.0.1',
          stream_server_port: '0',
        },
        'io.containerd.internal.v1.opt': { path: join(dir, 'opt') },
        'io.containerd.nri.v1.nri': { disable: true },
      },
    };
    writeFileSync(this.configPath, toToml(config) + '\n');
    writeFileSync(join(dir, 'crictl.yaml'), `runtime-endpoint: ${this.endpoint}\nimage-endpoint: ${this.endpoint}\ntimeout: 30\n`);
  }

  log(): string {
    try {
      return readFileSync(this.logPath, 'utf8');
    } catch {
      return '';
    }
  }

  async start(): Promise<void> {
    const fd = openSync(this.logPath, 'a');
    const child = spawn(join(TOOLS_BIN, 'containerd'), ['--config', this.configPath], {
      stdio: ['ignore', fd, fd],
      // The shim is found on PATH; the marker lets the leak check find its processes.
      env: { ...process.env, PATH: `${TOOLS_BIN}:${process.env.PATH ?? ''}`, CORRAL_E2E_RUN: this.marker },
    });
    closeSync(fd);
    this.child = child;
    this.exited = new Promise((resolve) => child.once('exit', () => resolve()));
    process.once('exit', () => child.kill('SIGKILL'));
    const deadline = Date.now() + 30_000;
    for (;;) {
      if (child.exitCode !== null) throw new Error(`containerd exited with ${child.exitCode}: ${this.log().slice(-3000)}`);
      if (existsSync(this.socket) && (await this.crictl(['version'], { timeoutMs: 5000 })).code === 0) return;
      if (Date.now() > deadline) throw new Error(`containerd did not answer Version in 30 s: ${this.log().slice(-3000)}`);
      await sleep(200);
    }
  }

  crictl(args: readonly string[], opts: RunOptions = {}): Promise<CmdResult> {
    const timeoutMs = opts.timeoutMs ?? 120_000;
    return run(tool('crictl'), ['--config', join(this.dir, 'crictl.yaml'), '--timeout', `${Math.max(1, Math.ceil(timeoutMs / 1000) - 1)}s`, ...args], { ...opts, timeoutMs });
  }

  stop(): Promise<void> {
    this.stopped ??= this.teardown();
    return this.stopped;
  }

  private async teardown(): Promise<void> {
    const problems: string[] = [];
    const c = this.child;
    if (c && c.exitCode === null && c.signalCode === null) {
      await this.crictl(['rmp', '-a', '-f'], { timeoutMs: 120_000 }).catch(() => undefined);
      c.kill('SIGTERM');
      const done = await Promise.race([this.exited!.then(() => true), sleep(15_000).then(() => false)]);
      if (!done) {
        problems.push('containerd did not exit within 15 s of SIGTERM');
        c.kill('SIGKILL');
        await this.exited;
      }
    }
    const exclusive = (process.env.CI === 'true' || process.env.CORRAL_E2E_EXCLUSIVE === '1') && !otherHarnessesAlive(this.dir);
    const ids = [...new Set(this.log().match(/\b[0-9a-f]{64}\b/g) ?? [])];
    const scope = { dir: this.dir, marker: this.marker, bridge: this.bridge, ids, exclusive };
    const leaks = (await findLeaks(this.before, scope)).filter((l) => !l.note);
    problems.push(...(await cleanup(this.before, scope)));
    if (this.ownRegistry) await this.registry.stop().catch(() => undefined);
    if (!readMounts().some((m) => m.point === this.dir || m.point.startsWith(this.dir + '/'))) {
      if (process.env.CORRAL_E2E_KEEP !== '1') rmSync(this.dir, { recursive: true, force: true });
    } else problems.push(`mounts are still under ${this.dir}: it is kept`);
    if (leaks.length || problems.length) {
      throw new Error(`containerd ${this.dir}: ${leaks.length ? `left behind:\n${formatLeaks(leaks)}\n` : ''}${problems.join('\n')}`);
    }
  }
}
