/**
 * Starting conmon, the per-container monitor, the way CRI-O does (HOST-NOTES measured it):
 *
 *  - fd 3 is the sync pipe (_OCI_SYNCPIPE): conmon writes {"data": <container pid>} once
 *    the runtime's create returned, or {"data": -1, "message": ...} when it failed; for an
 *    exec it writes the pid and later {"data": <exit code>}.
 *  - fd 4 is the start pipe (_OCI_STARTPIPE): conmon blocks on it before it forks, so we can
 *    move it into its own cgroup first and its container-supervising child inherits that.
 *  - conmon double-forks and outlives corral: spawn detached, never kill it on shutdown.
 *  - the persist dir must exist, or no exit file is written at all; conmon writes the exit
 *    code to <exit dir>/<id> and <persist dir>/exit, and an `oom` file there on OOM kills.
 *  - conmon's own stderr goes to a file in the persist dir: a pipe to us would keep it
 *    alive for the container's lifetime and a closed pipe would SIGPIPE it.
 */
import { promises as fs, openSync, closeSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable, Writable } from 'node:stream';
import type { CgroupInfo } from '../cgroups/detect.js';
import { InvalidArgumentError, CancelledError, DeadlineExceededError, InternalError, errorMessage } from '../errors.js';
import { fastSpawn, type FastChild } from '../linux/spawn.js';
import type { RuntimeHandler } from './runtime.js';

export interface ConmonCommon {
  conmonPath: string;
  id: string;
  name: string;
  bundleDir: string;
  runtime: RuntimeHandler;
  /**
   * Where conmon writes <id> with the exit code. Only passed for create: an exec would
   * write its own code under the container's id and fake the container's exit.
   */
  exitDir: string;
  /** Where conmon keeps `exit` and `oom` (create only, same reason) and corral its stderr. */
  persistDir: string;
  socketDir: string;
  /** cgroupfs path (relative to each hierarchy) conmon joins before it starts the runtime. */
  cgroup?: { path: string; info: CgroupInfo };
  systemdCgroup?: boolean;
  timeoutMs: number;
  signal?: AbortSignal;
}

export interface ConmonCreateOptions extends ConmonCommon {
  containerPidFile: string;
  conmonPidFile: string;
  /** The CRI log file (k8s-file format). */
  logPath: string;
  /** -1: no cap. */
  logSizeMax: number;
  stdin?: boolean;
  /** CRI stdin_once: the first attacher's detach closes stdin; otherwise it stays open. */
  stdinOnce?: boolean;
  terminal?: boolean;
}

export interface ConmonExecOptions extends ConmonCommon {
  processSpecPath: string;
  pidFile: string;
  logPath: string;
  /** Seconds after which conmon kills the exec'd process; 0: none. */
  execTimeoutSec: number;
  attach?: boolean;
  terminal?: boolean;
  stdin?: boolean;
}

export const CONMON_STDERR = 'conmon.stderr';

function commonArgs(o: ConmonCommon): string[] {
  const a = ['--api-version', '1', '-c', o.id, '-u', o.id, '-n', o.name, '-r', o.runtime.monitorPath, '-b', o.bundleDir,
    '--runtime-arg', `--root=${o.runtime.root}`];
  for (const opt of o.runtime.options) a.push('--runtime-arg', opt);
  a.push('--socket-dir-path', o.socketDir);
  if (o.systemdCgroup) a.push('-s');
  return a;
}

export function conmonCreateArgs(o: ConmonCreateOptions): string[] {
  const a = commonArgs(o);
  a.push('--exit-dir', o.exitDir, '--persist-dir', o.persistDir);
  a.push('-p', o.containerPidFile, '-P', o.conmonPidFile, '-l', `k8s-file:${o.logPath}`, '--log-level', 'warning');
  if (o.logSizeMax > 0) a.push('--log-size-max', String(o.logSizeMax));
  if (o.stdin) a.push('-i');
  // Without it conmon closes the container's stdin when any attacher detaches (CRI-O passes it too).
  if (o.stdin && !o.stdinOnce) a.push('--leave-stdin-open');
  if (o.terminal) a.push('-t');
  return a;
}

export function conmonExecArgs(o: ConmonExecOptions): string[] {
  const a = commonArgs(o);
  a.push('-e', '--exec-process-spec', o.processSpecPath, '-p', o.pidFile, '-l', `k8s-file:${o.logPath}`, '--log-level', 'warning');
  if (o.execTimeoutSec > 0) a.push('-T', String(o.execTimeoutSec));
  if (o.attach) a.push('--exec-attach');
  if (o.terminal) a.push('-t');
  if (o.stdin) a.push('-i');
  return a;
}

/** Reads {"data": n, "message": s} objects from the sync pipe as they arrive. */
class SyncReader {
  private buf = '';
  private readonly queue: Array<{ data: number; message?: string }> = [];
  private waiters: Array<() => void> = [];
  private ended = false;

  constructor(stream: Readable) {
    stream.setEncoding('utf8');
    stream.on('data', (chunk: string) => {
      this.buf += chunk;
      this.parse();
      this.wake();
    });
    const end = () => { this.ended = true; this.wake(); };
    stream.on('end', end);
    stream.on('close', end);
    stream.on('error', end);
  }

  private parse(): void {
    // conmon writes one JSON object per message; they never nest.
    for (;;) {
      const start = this.buf.indexOf('{');
      if (start < 0) { this.buf = ''; return; }
      let end = -1;
      let inStr = false;
      for (let i = start; i < this.buf.length; i++) {
        const c = this.buf[i];
        if (inStr) {
          if (c === '\\') i++;
          else if (c === '"') inStr = false;
        } else if (c === '"') inStr = true;
        else if (c === '}') { end = i; break; }
      }
      if (end < 0) { this.buf = this.buf.slice(start); return; }
      const text = this.buf.slice(start, end + 1);
      this.buf = this.buf.slice(end + 1);
      try {
        const msg = JSON.parse(text) as { data: number; message?: string };
        if (typeof msg.data === 'number') this.queue.push(msg);
      } catch { /* garbage: skip it */ }
    }
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }

  /** The next message; undefined when the pipe closed first. */
  async next(): Promise<{ data: number; message?: string } | undefined> {
    for (;;) {
      const m = this.queue.shift();
      if (m) return m;
      if (this.ended) return undefined;
      await new Promise<void>((r) => this.waiters.push(r));
    }
  }
}

/** Puts a process into the conmon cgroup of every hierarchy that matters for accounting. */
export async function joinCgroup(pid: number, path: string, info: CgroupInfo): Promise<void> {
  const rel = path.replace(/^\/+/, '');
  const dirs = info.mode === 'v2'
    ? [join(info.root, rel)]
    // cpuset needs cpus/mems copied into a new v1 group before it accepts tasks; conmon
    // does not need it, so it stays where it started there.
    : info.controllers.filter((c) => ['memory', 'pids', 'cpu', 'cpuacct', 'blkio'].includes(c)).map((c) => join(info.root, c, rel));
  for (const d of dirs) {
    await fs.mkdir(d, { recursive: true });
    await fs.writeFile(join(d, 'cgroup.procs'), String(pid));
  }
}

async function readTail(path: string, max = 2048): Promise<string> {
  try {
    const s = await fs.readFile(path, 'utf8');
    return s.slice(-max).trim();
  } catch {
    return '';
  }
}

interface Spawned {
  sync: SyncReader;
  parentExit: Promise<number | null>;
  conmonPid: () => Promise<number | undefined>;
  stderrPath: string;
  stdio: Array<Readable | Writable | null | undefined>;
}

async function spawnConmon(o: ConmonCommon, args: string[], pidFile: string | undefined, extraStdio: Array<'pipe' | 'ignore'> = [], holdLoop = false): Promise<Spawned> {
  await fs.mkdir(o.persistDir, { recursive: true });
  if (o.exitDir) await fs.mkdir(o.exitDir, { recursive: true });
  await fs.mkdir(o.socketDir, { recursive: true });
  const stderrPath = join(o.persistDir, CONMON_STDERR);
  const errFd = openSync(stderrPath, 'a', 0o600);
  let child: FastChild;
  try {
    child = fastSpawn(o.conmonPath, args, {
      // conmon writes its "oom" mark into its working directory as well as the persist dir:
      // run it in the persist dir, never in the daemon's cwd (/ under systemd).
      cwd: o.persistDir,
      detached: true,
      stdio: ['ignore', 'ignore', errFd, 'pipe', 'pipe', ...extraStdio],
      env: {
        PATH: process.env.PATH || '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
        _OCI_SYNCPIPE: '3',
        _OCI_STARTPIPE: '4',
      },
    });
  } finally {
    closeSync(errFd);
  }
  const parentExit = new Promise<number | null>((resolve) => {
    child.once('exit', (code: number | null) => resolve(code));
  });
  parentExit.catch(() => undefined);
  const syncStream = child.stdio[3] as Readable;
  const startPipe = child.stdio[4] as Writable;
  const sync = new SyncReader(syncStream);
  // A create is bounded by its deadline timer; an exec may be waited on with nothing else
  // keeping the event loop alive (a CLI), so its sync pipe holds the loop.
  if (!holdLoop) (syncStream as unknown as { unref?: () => void }).unref?.();
  (startPipe as unknown as { unref?: () => void }).unref?.();
  if (o.cgroup && child.pid) {
    try {
      await joinCgroup(child.pid, o.cgroup.path, o.cgroup.info);
    } catch (err) {
      child.kill('SIGKILL');
      throw new InternalError(`moving conmon into cgroup ${o.cgroup.path}: ${errorMessage(err)}`);
    }
  }
  startPipe.on('error', () => undefined);
  startPipe.end('0');
  const conmonPid = async () => {
    if (!pidFile) return undefined;
    const s = await fs.readFile(pidFile, 'utf8').catch(() => '');
    const n = Number.parseInt(s.trim(), 10);
    return Number.isFinite(n) && n > 0 ? n : undefined;
  };
  return { sync, parentExit, conmonPid, stderrPath, stdio: child.stdio as Spawned['stdio'] };
}

function withDeadline<T>(p: Promise<T>, o: ConmonCommon, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new DeadlineExceededError(`${what}: no answer from conmon within ${o.timeoutMs} ms`)), o.timeoutMs);
    const onAbort = () => reject(new CancelledError(`${what}: cancelled`));
    o.signal?.addEventListener('abort', onAbort, { once: true });
    p.then(resolve, reject).finally(() => {
      clearTimeout(timer);
      o.signal?.removeEventListener('abort', onAbort);
    });
  });
}

function closeSync3(s: Spawned): void {
  for (const x of s.stdio.slice(3)) (x as { destroy?: () => void } | null | undefined)?.destroy?.();
}

export interface ConmonCreateResult {
  /** The container's init pid. */
  pid: number;
  /** The long-lived conmon process. */
  conmonPid: number | undefined;
}

/**
 * Starts conmon, which runs `<runtime> create`; resolves with the container pid once the
 * container exists (created, not started). On failure conmon is killed; the caller still
 * owns `<runtime> delete --force` for whatever the runtime left.
 */
export async function createWithConmon(o: ConmonCreateOptions): Promise<ConmonCreateResult> {
  const s = await spawnConmon(o, conmonCreateArgs(o), o.conmonPidFile);
  try {
    const msg = await withDeadline((async () => {
      const code = await s.parentExit;
      if (code !== 0) {
        throw new InternalError(`conmon for container ${o.id} exited ${code}: ${await readTail(s.stderrPath) || 'no message'}`);
      }
      return s.sync.next();
    })(), o, `creating container ${o.id}`);
    if (!msg) throw new InternalError(`conmon for container ${o.id} closed its sync pipe without a pid: ${await readTail(s.stderrPath) || 'no message'}`);
    if (msg.data <= 0) {
      const why = cleanRuntimeMessage(msg.message) || `failed (${msg.data})`;
      // The command the request names is not in the image (crun finds out at create): the
      // request's mistake, as a bad argument is.
      if (/executable file .*not found|exec: .*: executable file not found/.test(why)) {
        throw new InvalidArgumentError(`creating container ${o.id}: ${why}`);
      }
      throw new InternalError(`creating container ${o.id} with ${o.runtime.name}: ${why}`);
    }
    return { pid: msg.data, conmonPid: await s.conmonPid() };
  } catch (err) {
    const pid = await s.conmonPid();
    if (pid) { try { process.kill(pid, 'SIGKILL'); } catch { /* gone */ } }
    throw err;
  } finally {
    closeSync3(s);
  }
}

export interface ConmonExecHandle {
  /** The exec'd process pid, or an error when the runtime refused the exec. */
  pid: Promise<number>;
  /** Its exit code (conmon reports 137 and friends for signals; -1 unknown). */
  exit: Promise<number>;
  /** Extra stdio beyond fd 4, in the order asked for. */
  stdio: Array<Readable | Writable | null | undefined>;
}

/**
 * Runs a process in a live container through conmon (`-e --exec-process-spec`): conmon
 * sends the pid, then the exit code, on the sync pipe, and logs the output in k8s-file
 * format at logPath.
 */
export async function execWithConmon(o: ConmonExecOptions, extraStdio: Array<'pipe' | 'ignore'> = []): Promise<ConmonExecHandle> {
  const s = await spawnConmon(o, conmonExecArgs(o), undefined, extraStdio, true);
  const first = (async () => {
    const code = await s.parentExit;
    if (code !== 0) throw new InternalError(`conmon exec in ${o.id} exited ${code}: ${await readTail(s.stderrPath) || 'no message'}`);
    const m = await s.sync.next();
    if (!m) throw new InternalError(`conmon exec in ${o.id}: sync pipe closed before the pid`);
    if (m.data <= 0) throw new InternalError(`exec in container ${o.id}: ${cleanRuntimeMessage(m.message) || `failed (${m.data})`}`);
    return m.data;
  })();
  const exit = first.then(async () => {
    const m = await s.sync.next();
    closeSync3(s);
    return m ? m.data : -1;
  }, (err) => { closeSync3(s); throw err; });
  first.catch(() => undefined);
  exit.catch(() => undefined);
  return { pid: first, exit, stdio: s.stdio.slice(5) };
}

/** runc's logrus lines inside conmon's message: keep what a person needs. */
export function cleanRuntimeMessage(m: string | undefined): string {
  if (!m) return '';
  const msgs = [...m.matchAll(/msg="((?:[^"\\]|\\.)*)"/g)].map((x) => x[1]!.replace(/\\"/g, '"'));
  return (msgs.length ? msgs.join('; ') : m).trim();
}
