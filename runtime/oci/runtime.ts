/**
 * The OCI runtime command line (crun, runc): create/start/state/kill/delete/update/exec
 * with `--root` from config.runtimes[handler].root. One OciRuntime per handler; the
 * OciRuntimes registry maps the kubelet's RuntimeClass handler names to them and decides
 * the default handler once at start.
 *
 * crun 1.8 refuses hybrid cgroup hosts whose cgroup2 mount carries a controller
 * ("cgroups in hybrid mode not supported"), and its delete/update look for the cgroups in
 * the wrong place there. Running it in a private mount namespace with a tmpfs over
 * /sys/fs/cgroup/unified makes it see plain v1. conmon execs the runtime itself, so the
 * workaround is a small wrapper script (written under state_dir) that conmon and corral
 * run instead of crun (RuntimeHandler.monitorPath).
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { tmpdir } from 'node:os';
import type { Config, RuntimeHandlerConfig } from '../config.js';
import type { CgroupInfo } from '../cgroups/detect.js';
import type { Logger } from '../util/log.js';
import { FailedPreconditionError, InvalidArgumentError, InternalError, NotFoundError, errorMessage } from '../errors.js';
import { SealedBinaries } from '../linux/sealed.js';
import { fastSpawn, type FastChild } from '../linux/spawn.js';

/** What `<runtime> state` prints (the OCI runtime spec's state). */
export interface OciState {
  id: string;
  pid: number;
  status: 'creating' | 'created' | 'running' | 'stopped' | 'paused' | string;
  bundle: string;
  created?: string;
}

/** A handler resolved from the config: the binary, its state root and what conmon runs. */
export interface RuntimeHandler {
  name: string;
  /** The real runtime binary, used for direct commands. */
  path: string;
  /** --root of the runtime. */
  root: string;
  options: string[];
  /** The binary conmon and corral run: `path`, or the hybrid wrapper for crun. */
  monitorPath: string;
  /**
   * What corral executes for commands it runs itself without the wrapper (start, state, kill,
   * exec): a sealed in-memory copy of `path` (runtime/linux/sealed.ts); `path` when absent.
   */
  directPath?: () => string;
}

export interface RunResult { stdout: string; stderr: string; code: number | null; signal: NodeJS.Signals | null }

/**
 * Runs a command without a shell (and without forking the daemon: linux/spawn.ts); never
 * throws for a non-zero exit (callers read `code`). At the timeout, when the output passes
 * 16 MiB or when aborted, the command is SIGKILLed; an abort rejects.
 */
export function runCommand(
  file: string,
  args: string[],
  opts: { input?: string; timeoutMs?: number; signal?: AbortSignal } = {},
): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    if (opts.signal?.aborted) return reject(abortError(file));
    let child: FastChild;
    try {
      child = fastSpawn(file, args, { stdio: [opts.input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] });
    } catch (err) {
      return reject(err);
    }
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let size = 0;
    let aborted = false;
    const take = (into: Buffer[]) => (b: Buffer) => {
      if (size >= OUTPUT_CAP) return;
      into.push(b);
      size += b.length;
      if (size >= OUTPUT_CAP) child.kill('SIGKILL');
    };
    child.stdout!.on('data', take(out));
    child.stderr!.on('data', take(err));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 60_000);
    const onAbort = () => {
      aborted = true;
      child.kill('SIGKILL');
    };
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    if (opts.input !== undefined) {
      child.stdin!.on('error', () => undefined);
      child.stdin!.end(opts.input);
    }
    child.on('close', (code: number | null, signal: NodeJS.Signals | null) => {
      clearTimeout(timer);
      opts.signal?.removeEventListener('abort', onAbort);
      if (aborted) return reject(abortError(file));
      resolve({ stdout: Buffer.concat(out).toString(), stderr: Buffer.concat(err).toString(), code, signal });
    });
  });
}

const OUTPUT_CAP = 16 << 20;

function abortError(file: string): Error {
  return Object.assign(new Error(`${file}: the operation was aborted`), { name: 'AbortError', code: 'ABORT_ERR' });
}

function notExists(stderr: string): boolean {
  return /does not exist|not exist|no such file|not found/i.test(stderr);
}

function firstLine(s: string): string {
  // runc prints logrus lines (time="..." level=error msg="..."); keep the message readable.
  const msg = /msg="((?:[^"\\]|\\.)*)"/.exec(s);
  return (msg ? msg[1]! : s).trim().split('\n').filter(Boolean).pop() ?? '';
}

export class OciRuntime {
  constructor(readonly handler: RuntimeHandler) {}

  get name(): string { return this.handler.name; }

  /** The executable for commands that skip the wrapper (see RuntimeHandler.directPath). */
  get directPath(): string { return this.handler.directPath?.() ?? this.handler.path; }

  private args(rest: string[]): string[] {
    return [...this.handler.options, '--root', this.handler.root, ...rest];
  }

  /**
   * Through monitorPath: the hybrid wrapper must see the commands that make, change or remove
   * cgroups (create, delete, update, kill --all). start/state/kill do not, and skip its ~6 ms;
   * neither does exec, which joins the container's cgroups as recorded in the runtime's state
   * (measured on a hybrid host: an exec'd process lands in every v1 cgroup of the container).
   */
  private async run(rest: string[], opts: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
    const direct = rest[0] === 'start' || rest[0] === 'state' || (rest[0] === 'kill' && !rest.includes('--all'));
    return runCommand(direct ? this.directPath : this.handler.monitorPath, this.args(rest), opts);
  }

  private fail(what: string, id: string, r: RunResult): never {
    throw new InternalError(`${this.name} ${what} ${id}: ${firstLine(r.stderr || r.stdout) || `exit ${r.code ?? r.signal}`}`);
  }

  async start(id: string): Promise<void> {
    const r = await this.run(['start', id]);
    if (r.code !== 0) this.fail('start', id, r);
  }

  /** The runtime's view of a container; undefined when it has no record of it. */
  async state(id: string): Promise<OciState | undefined> {
    const r = await this.run(['state', id], { timeoutMs: 10_000 });
    if (r.code !== 0) {
      if (notExists(r.stderr)) return undefined;
      this.fail('state', id, r);
    }
    return JSON.parse(r.stdout) as OciState;
  }

  /** Sends a signal; false when the container is no longer running (or unknown). */
  async kill(id: string, signal: string, all = false): Promise<boolean> {
    const r = await this.run(['kill', ...(all ? ['--all'] : []), id, signal.replace(/^SIG/, '')], { timeoutMs: 10_000 });
    if (r.code === 0) return true;
    const e = r.stderr;
    if (notExists(e) || /not running|stopped|no such process|process already finished|ESRCH/i.test(e)) return false;
    this.fail(`kill -${signal}`, id, r);
  }

  /** Deletes the runtime's state (force kills a live one); an unknown id is not an error. */
  async delete(id: string, force = true): Promise<void> {
    const r = await this.run(['delete', ...(force ? ['--force'] : []), id], { timeoutMs: 30_000 });
    if (r.code !== 0 && !notExists(r.stderr)) this.fail('delete', id, r);
  }

  /** Applies OCI linux.resources (JSON) to a live container. */
  /**
   * Applies OCI linux.resources (JSON) to a live container. Through a file, not stdin: crun
   * opens /dev/stdin, which fails (ENXIO) when stdin is the socket Node gives a child.
   */
  async update(id: string, resources: unknown): Promise<void> {
    const dir = await fs.mkdtemp(join(tmpdir(), 'corral-update-'));
    try {
      const file = join(dir, 'resources.json');
      await fs.writeFile(file, JSON.stringify(resources), { mode: 0o600 });
      const r = await this.run(['update', '--resources', file, id], { timeoutMs: 30_000 });
      // The kernel's EINVAL/ERANGE on a cgroup file (or the runtime's parse) refuses a value
      // the request chose: validate.ts catches the known ones first, this the rest.
      if (r.code !== 0 && /Invalid argument|Numerical result out of range|cannot parse|No space left on device/.test(r.stderr || r.stdout)) {
        throw new InvalidArgumentError(`${this.name} update ${id}: the kernel refused a value: ${firstLine(r.stderr || r.stdout)}`);
      }
      // EBUSY: a memory limit below what the container uses now, which the kernel could not
      // reclaim down to. A valid value the container's state does not allow yet.
      if (r.code !== 0 && /Device or resource busy/.test(r.stderr || r.stdout)) {
        throw new FailedPreconditionError(`${this.name} update ${id}: the container's current usage does not fit the new limit: ${firstLine(r.stderr || r.stdout)}`);
      }
      if (r.code !== 0) this.fail('update', id, r);
    } finally {
      await fs.rm(dir, { recursive: true, force: true });
    }
  }

  /** argv of `exec` for a process.json; the caller spawns it to stream its stdio. */
  execArgs(id: string, processPath: string, pidFile: string): { file: string; args: string[] } {
    return { file: this.directPath, args: this.args(['exec', '--process', processPath, '--pid-file', pidFile, id]) };
  }
}

/** Why a handler resolved the way it did, for the startup log and `corral doctor`. */
export interface HandlerChoice { defaultHandler: string; reason: string }

const HYBRID_SCRIPT = (crun: string) => `#!/bin/sh
# Written by corral. crun 1.8 refuses hybrid cgroup hosts at create, and at delete/update it
# would look for the container's cgroups in the wrong hierarchy (leaving them behind): run
# it in a private mount namespace where /sys/fs/cgroup/unified is an empty tmpfs, so it sees
# plain v1. Propagation of the other mounts is left as it is, so shared/slave mount specs
# still behave.
exec unshare -m --propagation unchanged sh -c 'mount --make-private /sys/fs/cgroup/unified 2>/dev/null; mount -t tmpfs none /sys/fs/cgroup/unified && exec "$0" "$@"' ${shellQuote(crun)} "$@"
`;

function shellQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function crunNeedsHybridWorkaround(cg: CgroupInfo): boolean {
  return cg.mode === 'hybrid' && cg.unifiedControllers.length > 0;
}

export class OciRuntimes {
  private readonly byName = new Map<string, OciRuntime>();

  private constructor(readonly defaultHandler: string, readonly choice: HandlerChoice) {}

  /**
   * Resolves every configured handler and picks the default: config.default_runtime when
   * it can run here, else runc (or any other working handler), with the reason logged.
   */
  static async create(config: Config, cgroups: CgroupInfo, logger: Logger): Promise<OciRuntimes> {
    const usable = new Map<string, string | undefined>(); // name -> why it cannot run (undefined: fine)
    const handlers: RuntimeHandler[] = [];
    const sealed = new SealedBinaries((path, err) => logger.warn(`OCI runtime ${path}: no sealed copy (it will copy itself on every command): ${errorMessage(err)}`));
    for (const [name, h] of Object.entries(config.runtimes)) {
      const rh: RuntimeHandler = { name, path: h.path, root: h.root, options: h.options, monitorPath: h.path, directPath: () => sealed.execPath(h.path) };
      let problem = await versionProblem(h);
      if (!problem && isCrun(h) && crunNeedsHybridWorkaround(cgroups)) {
        const wrapper = join(config.state_dir, 'bin', `${name}-hybrid`);
        problem = await installHybridWrapper(wrapper, h.path);
        if (!problem) rh.monitorPath = wrapper;
        else problem = `refuses this hybrid cgroup host and the private-namespace workaround failed: ${problem}`;
      }
      usable.set(name, problem);
      handlers.push(rh);
    }
    let def = config.default_runtime;
    let reason = `${def} is the configured default`;
    const defProblem = usable.get(def);
    if (defProblem !== undefined || !usable.has(def)) {
      const alt = usable.get('runc') === undefined && usable.has('runc') ? 'runc' : [...usable].find(([, p]) => p === undefined)?.[0];
      if (alt) {
        reason = `${def} cannot run here (${defProblem ?? 'not configured'}); using ${alt}`;
        def = alt;
      } else {
        reason = `${def} cannot run here (${defProblem ?? 'not configured'}) and no other handler works`;
      }
    } else {
      const rh = handlers.find((x) => x.name === def)!;
      if (rh.monitorPath !== rh.path) reason += ` (hybrid cgroups: create runs in a private mount namespace without cgroup2)`;
    }
    logger.info(`OCI runtime: default handler ${def}: ${reason}`);
    const rts = new OciRuntimes(def, { defaultHandler: def, reason });
    for (const h of handlers) rts.byName.set(h.name, new OciRuntime(h));
    return rts;
  }

  /** For tests: a registry over explicit handlers. */
  static of(handlers: RuntimeHandler[], defaultHandler: string): OciRuntimes {
    const rts = new OciRuntimes(defaultHandler, { defaultHandler, reason: 'given' });
    for (const h of handlers) rts.byName.set(h.name, new OciRuntime(h));
    return rts;
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  /** "" means the default handler; an unknown name is NotFound naming the known ones. */
  get(handler: string): OciRuntime {
    const name = handler || this.defaultHandler;
    const rt = this.byName.get(name);
    if (!rt) throw new NotFoundError(`runtime handler "${name}" not found; known handlers: ${this.names().join(', ')}`);
    return rt;
  }
}

function isCrun(h: RuntimeHandlerConfig): boolean {
  return /(^|\/)crun$/.test(h.path);
}

async function versionProblem(h: RuntimeHandlerConfig): Promise<string | undefined> {
  try {
    const r = await runCommand(h.path, ['--version'], { timeoutMs: 5000 });
    return r.code === 0 ? undefined : `${h.path} --version exited ${r.code}`;
  } catch (err) {
    return `${h.path}: ${errorMessage(err)}`;
  }
}

/** Writes the wrapper and proves the namespace trick works here (unshare, tmpfs mount). */
async function installHybridWrapper(path: string, crun: string): Promise<string | undefined> {
  try {
    await fs.mkdir(join(path, '..'), { recursive: true, mode: 0o755 });
    const tmp = `${path}.tmp-${process.pid}`;
    await fs.writeFile(tmp, HYBRID_SCRIPT(crun), { mode: 0o755 });
    await fs.rename(tmp, path);
    const r = await runCommand('unshare', ['-m', '--propagation', 'unchanged', 'sh', '-c',
      'mount --make-private /sys/fs/cgroup/unified 2>/dev/null; mount -t tmpfs none /sys/fs/cgroup/unified'], { timeoutMs: 5000 });
    return r.code === 0 ? undefined : firstLine(r.stderr) || `exit ${r.code}`;
  } catch (err) {
    return errorMessage(err);
  }
}

