/**
 * Exec with streams: `<runtime> exec --process <json>` in the container's namespaces, cgroup,
 * user and environment (the container's own process spec with the command swapped in).
 *
 * Without a tty the runtime's stdio are pipes to the client's streams. With a tty, crun creates
 * the pty inside the container and hands the master to our console socket (SCM_RIGHTS); we
 * copy between it and the client and apply resizes with TIOCSWINSZ. The runtime stays in the
 * foreground, so its exit status is the command's (128+n for a signal). A client that goes away
 * kills the command through its pid file, so nothing is left running in the container.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, constants as fsConstants, openSync, promises as fs, readFileSync } from 'node:fs';
import net from 'node:net';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import tty from 'node:tty';
import { FailedPreconditionError, InvalidArgumentError } from '../errors.js';
import { closeFd, openPty, recvFd, setRaw, setWinsize } from '../linux/socket.js';
import { fastSpawn, type FastChild, type FastSpawnOptions } from '../linux/spawn.js';
import type { Logger } from '../util/log.js';
import type { ContainerLookup, OciProcessLike, StreamingContainer } from './ports.js';
import { ExecStartError, type ExecBackend, type ExecRequest, type StreamIO } from './types.js';

export interface ExecBackendDeps {
  containers: ContainerLookup;
  /** Where console sockets go (a short path: unix socket paths are limited to 107 bytes). */
  workDir: string;
  /** Global options of a runtime handler (config.runtimes[name].options). */
  runtimeOptions?: (handler: string) => string[];
  logger: Logger;
}

/** Output still arriving after the command exited (a background child holding the pipe) gets this long. */
const DRAIN_GRACE_MS = 500;
const CONSOLE_TIMEOUT_MS = 30_000;


/**
 * crun and runc exit 255 and print why when the command cannot be started. Shells (and CRI-O)
 * report 127 for a missing command and 126 for one that cannot be executed.
 */
export function startFailureCode(code: number, runtimeStderr: string): number {
  if (code !== 255) return code;
  if (/executable file .*not found|no such file or directory|not found in \$PATH/i.test(runtimeStderr)) return 127;
  if (/permission denied|is a directory|exec format error/i.test(runtimeStderr)) return 126;
  return code;
}

export function execProcessSpec(base: OciProcessLike, cmd: string[], tty: boolean, size?: { width: number; height: number }): OciProcessLike {
  const p = structuredClone(base);
  p.args = [...cmd];
  p.terminal = tty;
  delete p.consoleSize;
  if (tty) {
    const env = [...(p.env ?? [])];
    // What kubectl users expect of an interactive shell, as CRI-O and containerd do.
    if (!env.some((e) => e.startsWith('TERM='))) env.push('TERM=xterm');
    p.env = env;
    if (size && size.width > 0 && size.height > 0) p.consoleSize = { height: size.height, width: size.width };
  }
  return p;
}

function readPidFile(path: string): number | undefined {
  try {
    const n = Number.parseInt(readFileSync(path, 'utf8').trim(), 10);
    return n > 0 ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Starts the runtime without forking the daemon (linux/spawn.ts); a failure to start is an ExecStartError. */
function startRuntime(file: string, args: string[], opts: FastSpawnOptions): FastChild {
  try {
    return fastSpawn(file, args, opts);
  } catch (err) {
    throw new ExecStartError(`cannot run ${file}: ${(err as Error).message}`);
  }
}

export class RuntimeExecBackend implements ExecBackend {
  constructor(private readonly deps: ExecBackendDeps) {}

  private processBase(c: StreamingContainer): OciProcessLike {
    if (c.spec?.process) return c.spec.process;
    const spec = JSON.parse(readFileSync(join(c.bundleDir, 'config.json'), 'utf8')) as { process?: OciProcessLike };
    if (!spec.process) throw new FailedPreconditionError(`container ${c.id}: its OCI spec has no process`);
    return spec.process;
  }

  async exec(req: ExecRequest, io: StreamIO): Promise<number> {
    if (req.cmd.length === 0) throw new InvalidArgumentError('exec: cmd must not be empty');
    const c = this.deps.containers.get(req.containerId);
    if (c.state !== 'RUNNING') throw new FailedPreconditionError(`container ${c.id} is ${c.state}, not running`);
    const tag = randomBytes(6).toString('hex');
    const procPath = join(c.bundleDir, `exec-${tag}.json`);
    const pidFile = join(c.bundleDir, `exec-${tag}.pid`);
    const proc = execProcessSpec(this.processBase(c), req.cmd, io.tty, io.resize.current);
    await fs.writeFile(procPath, JSON.stringify(proc), { mode: 0o600 });
    const args = [...(this.deps.runtimeOptions?.(c.runtimeHandler) ?? []), '--root', c.runtimeRoot, 'exec', '--process', procPath, '--pid-file', pidFile];
    try {
      if (io.tty) return await this.execTty(c, args, pidFile, tag, io);
      return await this.execPipes(c, args, pidFile, io);
    } finally {
      await fs.rm(procPath, { force: true });
      await fs.rm(pidFile, { force: true });
    }
  }

  /** Kills the command (through its pid file, which the runtime writes once it started it) and then the runtime. */
  private killOnAbort(child: FastChild, pidFile: string, signal: AbortSignal): () => void {
    let timer: NodeJS.Timeout | undefined;
    let exited = false;
    child.once('exit', () => { exited = true; });
    const attempt = (n: number) => {
      if (exited) return;
      const pid = readPidFile(pidFile);
      if (pid) {
        try { process.kill(pid, 'SIGKILL'); } catch { /* already gone */ }
      }
      // The runtime exits once its command is gone; if it does not (or never started it), kill it too.
      if (n >= 20 || (!pid && n >= 5)) child.kill('SIGKILL');
      timer = setTimeout(() => attempt(n + 1), 50);
    };
    const onAbort = () => attempt(0);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
    return () => {
      signal.removeEventListener('abort', onAbort);
      if (timer) clearTimeout(timer);
    };
  }

  private waitExit(child: FastChild): Promise<number> {
    return new Promise((resolve) => {
      child.once('exit', (code: number | null, sig: NodeJS.Signals | null) => resolve(code ?? 128 + (sig ? constants.signals[sig] : 9)));
    });
  }

  private async execPipes(c: StreamingContainer, args: string[], pidFile: string, io: StreamIO): Promise<number> {
    const child = startRuntime(c.runtimeExecPath ?? c.runtimePath, [...args, c.id], { stdio: [io.stdin ? 'pipe' : 'ignore', 'pipe', 'pipe'] });
    const stop = this.killOnAbort(child, pidFile, io.signal);
    let errTail = '';
    const outDone = copyOut(child.stdout!, io.stdout);
    child.stderr!.on('data', (b: Buffer) => { errTail = (errTail + b.toString('utf8')).slice(-4096); });
    const errDone = copyOut(child.stderr!, io.stderr);
    if (io.stdin && child.stdin) {
      child.stdin.on('error', () => {});
      io.stdin.pipe(child.stdin);
    }
    try {
      const code = await this.waitExit(child);
      await drain([outDone, errDone], [child.stdout!, child.stderr!]);
      return startFailureCode(code, errTail);
    } finally {
      stop();
      if (io.stdin && child.stdin) io.stdin.unpipe(child.stdin);
      child.stdin?.destroy();
    }
  }

  private async execTty(c: StreamingContainer, args: string[], pidFile: string, tag: string, io: StreamIO): Promise<number> {
    if (usesHostTerminal(c.runtimePath)) return this.execHostTty(c, args, pidFile, io);
    await fs.mkdir(this.deps.workDir, { recursive: true, mode: 0o700 });
    let sockPath = join(this.deps.workDir, `exec-${tag}.sock`);
    if (Buffer.byteLength(sockPath) > 100) sockPath = join(tmpdir(), `corral-exec-${tag}.sock`);
    const consoleSocket = new ConsoleSocket(sockPath);
    await consoleSocket.listen();
    let child: FastChild | undefined;
    let stop = () => {};
    try {
      child = startRuntime(c.runtimeExecPath ?? c.runtimePath, [...args, '--tty', '--console-socket', sockPath, c.id], { stdio: ['ignore', 'pipe', 'pipe'] });
      stop = this.killOnAbort(child, pidFile, io.signal);
      const errTail = tail(child);
      const exited = this.waitExit(child);
      const received = consoleSocket.receive(CONSOLE_TIMEOUT_MS);
      let master = await Promise.race([received, exited.then(() => undefined)]);
      // A command that fails at once can exit before we picked up its terminal; the fd (and
      // the runtime's message on it) may still be queued on the console socket.
      if (master === undefined) master = await Promise.race([received, new Promise<undefined>((r) => setTimeout(r, 200))]);
      if (master === undefined) {
        // The runtime gave up before handing over a terminal: its message is the only output.
        const code = startFailureCode(await exited, errTail());
        if (errTail() && io.stdout) io.stdout.write(errTail().replace(/\n/g, '\r\n'));
        return code;
      }
      consoleSocket.close();
      return await this.ttySession(c, master, exited, errTail, io, () => {});
    } finally {
      stop();
      consoleSocket.close();
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      await fs.rm(sockPath, { force: true });
    }
  }

  /**
   * runc hands a console socket over only when it detaches, and a detached runc leaves nobody to
   * collect the exit status. In the foreground it wants a terminal on its own stdio, makes the
   * container's pty and relays between the two, applying our terminal's size on SIGWINCH.
   */
  private async execHostTty(c: StreamingContainer, args: string[], pidFile: string, io: StreamIO): Promise<number> {
    const { master, slavePath } = openPty();
    let child: FastChild | undefined;
    let stop = () => {};
    try {
      if (io.resize.current) setWinsize(master, io.resize.current.height, io.resize.current.width);
      const slave = openSync(slavePath, fsConstants.O_RDWR | fsConstants.O_NOCTTY);
      try {
        // Raw from the start: runc sets it raw too, but input typed before that would echo twice.
        setRaw(slave);
        child = startRuntime(c.runtimeExecPath ?? c.runtimePath, [...args, '--tty', c.id], { stdio: [slave, slave, slave] });
      } finally {
        closeSync(slave);
      }
      const ch = child;
      stop = this.killOnAbort(ch, pidFile, io.signal);
      const exited = this.waitExit(ch);
      return await this.ttySession(c, master, exited, () => '', io, () => {
        try { if (ch.pid) process.kill(ch.pid, 'SIGWINCH'); } catch { /* gone */ }
      });
    } catch (err) {
      closeFd(master);
      throw err;
    } finally {
      stop();
      if (child && child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    }
  }

  /** Relays between the client and the pty master until the runtime exits; owns (closes) the master. */
  private async ttySession(c: StreamingContainer, master: number, exited: Promise<number>, errTail: () => string, io: StreamIO, afterResize: () => void): Promise<number> {
    const unsubscribe: Array<() => void> = [];
    const p = new tty.ReadStream(master);
    try {
      const apply = (s: { width: number; height: number }) => {
        try {
          setWinsize(master, s.height, s.width);
          afterResize();
        } catch (err) {
          this.deps.logger.debug(`exec ${c.id}: resize: ${(err as Error).message}`);
        }
      };
      if (io.resize.current) apply(io.resize.current);
      unsubscribe.push(io.resize.onResize(apply));
      p.on('error', () => {}); // EIO once the last slave fd closes: the normal end of a pty
      // The runtime reports a command it cannot start on the terminal itself.
      let ptyTail = '';
      p.on('data', (b: Buffer) => { ptyTail = (ptyTail + b.toString('utf8')).slice(-1024); });
      const outDone = copyOut(p, io.stdout);
      if (io.stdin) {
        const onData = (b: Buffer) => { if (!p.destroyed) p.write(b); };
        // Stdin closing ends an interactive session: the terminal's EOF character, as if typed.
        const onEnd = () => { if (!p.destroyed) p.write('\x04'); };
        io.stdin.on('data', onData);
        io.stdin.once('end', onEnd);
        unsubscribe.push(() => { io.stdin!.off('data', onData); io.stdin!.off('end', onEnd); });
      }
      const code = await exited;
      await drain([outDone], [p]);
      return startFailureCode(code, errTail() + ptyTail);
    } finally {
      for (const u of unsubscribe) u();
      p.destroy();
    }
  }
}

/** runc cannot pass a terminal through --console-socket without detaching. */
export function usesHostTerminal(runtimePath: string): boolean {
  return /(^|\/)runc[^/]*$/.test(runtimePath);
}

/** Keeps the last 4 KiB of a child's stdout+stderr (the runtime's own messages). */
function tail(child: FastChild): () => string {
  let text = '';
  const collect = (b: Buffer) => { text = (text + b.toString('utf8')).slice(-4096); };
  child.stdout?.on('data', collect);
  child.stderr?.on('data', collect);
  return () => text;
}

/** Copies a process output into the client's stream (not ending it); resolves at the source's end. */
function copyOut(src: NodeJS.ReadableStream & { destroyed?: boolean }, dst: NodeJS.WritableStream | undefined): Promise<void> {
  return new Promise((resolve) => {
    src.on('data', (b: Buffer) => {
      if (!dst) return;
      if (!dst.write(b)) {
        src.pause();
        dst.once('drain', () => src.resume());
      }
    });
    src.once('end', () => resolve());
    src.once('close', () => resolve());
  });
}

async function drain(done: Array<Promise<void>>, srcs: Array<{ destroy(): void }>): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  const grace = new Promise<void>((resolve) => { timer = setTimeout(resolve, DRAIN_GRACE_MS); });
  await Promise.race([Promise.all(done), grace]);
  clearTimeout(timer);
  for (const s of srcs) s.destroy();
}

/**
 * The --console-socket listener. The runtime connects and sends the pty master with SCM_RIGHTS;
 * Node must not read that connection itself (a plain read would drop the fd), so it is accepted
 * paused and read with recvmsg.
 */
class ConsoleSocket {
  private readonly server = net.createServer({ pauseOnConnect: true });
  private conn: net.Socket | undefined;
  private closed = false;
  private gotFd: ((fd: number) => void) | undefined;
  private failed: ((err: Error) => void) | undefined;

  constructor(private readonly path: string) {}

  async listen(): Promise<void> {
    await fs.rm(this.path, { force: true });
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      this.server.listen(this.path, () => resolve());
    });
    this.server.on('connection', (sock: net.Socket) => {
      if (this.conn) {
        sock.destroy();
        return;
      }
      this.conn = sock;
      this.poll(0);
    });
  }

  private poll(n: number): void {
    if (this.closed || !this.conn) return;
    const fd = (this.conn as unknown as { _handle?: { fd?: number } })._handle?.fd;
    if (fd === undefined || fd < 0) return this.failed?.(new Error('console socket connection has no fd'));
    try {
      const got = recvFd(fd);
      if (got) return this.gotFd?.(got.fd);
    } catch (err) {
      return this.failed?.(err as Error);
    }
    setTimeout(() => this.poll(n + 1), n < 50 ? 2 : 20);
  }

  private received: Promise<number> | undefined;
  private timer: NodeJS.Timeout | undefined;

  /** The pty master fd, once; the same promise on every call. */
  receive(timeoutMs: number): Promise<number> {
    this.received ??= new Promise<number>((resolve, reject) => {
      this.timer = setTimeout(() => reject(new ExecStartError(`the runtime sent no terminal within ${timeoutMs} ms`)), timeoutMs);
      this.gotFd = (fd) => {
        clearTimeout(this.timer);
        if (this.abandoned) closeFd(fd);
        else resolve(fd);
      };
      this.failed = (err) => { clearTimeout(this.timer); reject(err); };
    });
    return this.received;
  }

  private abandoned = false;

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.timer);
    this.received?.catch(() => {});
    this.abandoned = true;
    this.conn?.destroy();
    this.server.close();
  }
}
