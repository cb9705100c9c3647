/**
 * Starting a child process without fork(2): posix_spawn (glibc: clone with CLONE_VM |
 * CLONE_VFORK) does not copy the daemon's page tables, so its cost does not grow with the
 * daemon's memory. node:child_process forks, and blocks the event loop for the whole fork:
 * ~2 ms at the daemon's ~110 MiB (0.8 ms for a fresh node, ~5 ms with 100 MiB of buffers),
 * paid for every CNI plugin, runtime command and exec, and serialising pods started together.
 *
 * The child gets the signal dispositions and mask a fresh process has (node ignores SIGPIPE
 * and the child would inherit that), pipes or /dev/null on its stdio, and no other fd (every
 * fd of the daemon is close-on-exec). Exits are collected on SIGCHLD with waitpid(WNOHANG)
 * for our own pids only, so the children of node:child_process are left to libuv.
 */
import { EventEmitter } from 'node:events';
import { closeSync, openSync } from 'node:fs';
import net from 'node:net';
import { constants } from 'node:os';
import { AF_UNIX, SOCK_CLOEXEC, SOCK_STREAM } from './socket.js';
import { SyscallError, lastErrno, libcLibrary } from './syscalls.js';

const WNOHANG = 1;
const F_DUPFD_CLOEXEC = 1030;
const POSIX_SPAWN_SETSIGDEF = 0x04;
const POSIX_SPAWN_SETSIGMASK = 0x08;
const POSIX_SPAWN_SETSID = 0x80;
/** Generous upper bounds of glibc's opaque structs (x86_64: 80, 336 and 128 bytes). */
const FILE_ACTIONS_SIZE = 256;
const ATTR_SIZE = 1024;
const SIGSET_SIZE = 128;

type Fn = (...args: unknown[]) => number;
let fns: Record<'spawnp' | 'faInit' | 'faDup2' | 'faDestroy' | 'faChdir' | 'attrInit' | 'attrSetFlags' | 'attrSetMask' | 'attrSetDefault' | 'attrDestroy' | 'sigEmpty' | 'sigFill' | 'socketpair' | 'close' | 'fcntl' | 'waitpid', Fn> | undefined;

function bind() {
  const libc = libcLibrary();
  const f = (proto: string) => libc.func(proto) as unknown as Fn;
  return {
    spawnp: f('int posix_spawnp(_Out_ int *pid, const char *file, void *fa, void *attr, const char **argv, const char **envp)'),
    faInit: f('int posix_spawn_file_actions_init(void *fa)'),
    faDup2: f('int posix_spawn_file_actions_adddup2(void *fa, int fd, int newfd)'),
    faDestroy: f('int posix_spawn_file_actions_destroy(void *fa)'),
    faChdir: f('int posix_spawn_file_actions_addchdir_np(void *fa, const char *path)'),
    attrInit: f('int posix_spawnattr_init(void *attr)'),
    attrSetFlags: f('int posix_spawnattr_setflags(void *attr, short flags)'),
    attrSetMask: f('int posix_spawnattr_setsigmask(void *attr, const void *set)'),
    attrSetDefault: f('int posix_spawnattr_setsigdefault(void *attr, const void *set)'),
    attrDestroy: f('int posix_spawnattr_destroy(void *attr)'),
    sigEmpty: f('int sigemptyset(void *set)'),
    sigFill: f('int sigfillset(void *set)'),
    socketpair: f('int socketpair(int domain, int type, int protocol, _Out_ int *fds)'),
    close: f('int close(int fd)'),
    fcntl: f('int fcntl(int fd, int cmd, int arg)'),
    waitpid: f('int waitpid(int pid, _Out_ int *status, int options)'),
  };
}

/** Signal number -> name, from node's own table. */
const SIGNAL_NAMES = new Map(Object.entries(constants.signals).map(([name, n]) => [n, name as NodeJS.Signals]));

/** 'pipe': a socket pair to the daemon (what node:child_process makes too); a number: that fd of ours. */
export type StdioMode = 'pipe' | 'ignore' | number;

export interface FastSpawnOptions {
  /** The child's fds 0, 1, 2, 3...: default ignore, pipe, pipe. */
  stdio?: StdioMode[];
  /** The whole environment of the child (default: the daemon's). */
  env?: NodeJS.ProcessEnv;
  cwd?: string;
  /** A session (and process group) of its own, so that the group can be killed. */
  detached?: boolean;
}

/** The parts of a ChildProcess that corral's callers use, with the same events. */
export class FastChild extends EventEmitter {
  exitCode: number | null = null;
  signalCode: NodeJS.Signals | null = null;
  readonly stdin: net.Socket | null;
  readonly stdout: net.Socket | null;
  readonly stderr: net.Socket | null;
  constructor(readonly pid: number, readonly spawnfile: string, readonly stdio: Array<net.Socket | null>) {
    super();
    this.stdin = stdio[0] ?? null;
    this.stdout = stdio[1] ?? null;
    this.stderr = stdio[2] ?? null;
  }

  kill(signal: NodeJS.Signals | number = 'SIGTERM'): boolean {
    if (this.exitCode !== null || this.signalCode !== null) return false;
    try {
      process.kill(this.pid, signal);
      return true;
    } catch {
      return false;
    }
  }

  /** @internal */
  exited(status: number): void {
    const sig = status & 0x7f;
    if (sig === 0) this.exitCode = (status >> 8) & 0xff;
    else this.signalCode = SIGNAL_NAMES.get(sig) ?? (`SIG${sig}` as NodeJS.Signals);
    this.emit('exit', this.exitCode, this.signalCode);
    // 'close' once the stdio pipes are drained too, as node:child_process does.
    const open = this.stdio.slice(1).filter((s): s is net.Socket => !!s && !s.destroyed && !s.readableEnded);
    let left = open.length;
    if (left === 0) return void this.emit('close', this.exitCode, this.signalCode);
    for (const s of open) {
      s.once('close', () => {
        if (--left === 0) this.emit('close', this.exitCode, this.signalCode);
      });
      // Nobody reads it: drain it so that it can end (node:child_process does the same).
      if (s.listenerCount('data') === 0 && s.listenerCount('readable') === 0) s.resume();
    }
  }
}

const children = new Map<number, FastChild>();
let listening = false;
/**
 * While children run: a SIGCHLD that came while the listener was being set up would be lost,
 * a signal listener does not keep node running (a child keeps it running until its exit is
 * collected; corral's only short-lived detached child, conmon's parent, exits at once), and
 * worker threads get no signals at all. A slow poll covers all three.
 */
let poll: NodeJS.Timeout | undefined;

function reap(): void {
  for (const child of children.values()) reapOne(child, false);
  updatePoll();
}

const waitStatus = new Int32Array(1);

/** Collects one child's exit if it has exited. */
function reapOne(child: FastChild, poll = true): void {
  const r = fns!.waitpid(child.pid, waitStatus, WNOHANG);
  if (r === child.pid) {
    children.delete(child.pid);
    child.exited(waitStatus[0]!);
  } else if (r === -1) {
    // ECHILD: somebody else reaped it; no status to report.
    children.delete(child.pid);
    child.exited(0xff << 8);
  }
  if (poll) updatePoll();
}

function updatePoll(): void {
  if (children.size === 0) {
    if (poll) clearInterval(poll);
    poll = undefined;
    return;
  }
  poll ??= setInterval(reap, 100);
}

function socketPair(): [number, number] {
  const fds = new Int32Array(2);
  if (fns!.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) !== 0) throw new SyscallError('socketpair', lastErrno(), 'AF_UNIX, SOCK_STREAM');
  return [fds[0]!, fds[1]!];
}

/** Starts file (searched in PATH) with args; throws a SyscallError (code ENOENT, EACCES...) when it cannot. */
export function fastSpawn(file: string, args: readonly string[], opts: FastSpawnOptions = {}): FastChild {
  const call = prepare(file, args, opts);
  let err = -1;
  try {
    err = fns!.spawnp(...call.args);
  } finally {
    call.release();
  }
  return call.finish(err);
}

/**
 * fastSpawn with the spawn itself on koffi's worker threads. posix_spawn returns only once the
 * child has exec'd (CLONE_VFORK): ~1 ms for a static Go binary on a busy host, which the event
 * loop would otherwise wait through for every CNI plugin of every pod started at once. Attach
 * listeners right after the await: a child that is already gone reports its exit on the next
 * turn of the event loop.
 */
export async function fastSpawnAsync(file: string, args: readonly string[], opts: FastSpawnOptions = {}): Promise<FastChild> {
  const call = prepare(file, args, opts);
  let err: number;
  try {
    err = await new Promise<number>((resolve, reject) => {
      (fns!.spawnp as unknown as { async: (...a: unknown[]) => void }).async(...call.args, (e: unknown, ret: number) => (e ? reject(e) : resolve(ret)));
    });
  } catch (e) {
    call.discard();
    throw e;
  } finally {
    call.release();
  }
  const child = call.finish(err);
  // It may have exited before it was listed: its SIGCHLD found nothing to reap. Looked at once
  // the caller, resumed from this await, has attached its listeners.
  setImmediate(() => { if (children.has(child.pid)) reapOne(child); });
  return child;
}

interface PreparedSpawn {
  /** posix_spawnp's arguments. */
  args: unknown[];
  /** Closes the child's ends and frees the spawn structures: once posix_spawnp has returned. */
  release(): void;
  /** Wraps the started child (err 0) or throws posix_spawnp's error. */
  finish(err: number): FastChild;
  /** Closes our ends when the call itself failed. */
  discard(): void;
}

function prepare(file: string, args: readonly string[], opts: FastSpawnOptions): PreparedSpawn {
  fns ??= bind();
  // Listening before the child exists: a SIGCHLD that comes before the listener is lost.
  if (!listening) {
    process.on('SIGCHLD', reap);
    listening = true;
  }
  const modes = opts.stdio ?? ['ignore', 'pipe', 'pipe'];
  const env = Object.entries(opts.env ?? process.env).filter(([, v]) => v !== undefined).map(([k, v]) => `${k}=${v}`);
  const fa = Buffer.alloc(FILE_ACTIONS_SIZE);
  const attr = Buffer.alloc(ATTR_SIZE);
  const parentEnds: Array<number | undefined> = [];
  const childEnds: number[] = [];
  let devNull: number | undefined;
  fns.faInit(fa);
  fns.attrInit(attr);
  let released = false;
  const release = (): void => {
    if (released) return;
    released = true;
    // Not fs.closeSync: these fds are not fs's (a worker thread warns about closing them).
    for (const fd of childEnds) fns!.close(fd);
    if (devNull !== undefined) closeSync(devNull);
    fns!.faDestroy(fa);
    fns!.attrDestroy(attr);
  };
  const closeParentEnds = (): void => {
    for (const fd of parentEnds) if (fd !== undefined) fns!.close(fd);
    parentEnds.length = 0;
  };
  // The dup2s run in order in the child: a source fd numbered like an earlier target would
  // already be overwritten, so every source is first moved above the targets (a copy we close).
  const above = (fd: number): number => {
    if (fd >= modes.length) return fd;
    const copy = fns!.fcntl(fd, F_DUPFD_CLOEXEC, modes.length);
    if (copy < 0) throw new SyscallError('fcntl', lastErrno(), `${fd}, F_DUPFD_CLOEXEC`);
    childEnds.push(copy);
    return copy;
  };
  try {
    for (let i = 0; i < modes.length; i++) {
      const m = modes[i]!;
      if (m === 'pipe') {
        const [mine, theirs] = socketPair();
        parentEnds.push(mine);
        childEnds.push(theirs);
        fns.faDup2(fa, above(theirs), i);
      } else if (m === 'ignore') {
        devNull ??= openSync('/dev/null', 'r+');
        parentEnds.push(undefined);
        fns.faDup2(fa, above(devNull), i);
      } else {
        parentEnds.push(undefined);
        fns.faDup2(fa, above(m), i);
      }
    }
    if (opts.cwd) fns.faChdir(fa, opts.cwd);
    const empty = Buffer.alloc(SIGSET_SIZE);
    const all = Buffer.alloc(SIGSET_SIZE);
    fns.sigEmpty(empty);
    fns.sigFill(all);
    fns.attrSetMask(attr, empty);
    fns.attrSetDefault(attr, all);
    fns.attrSetFlags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF | (opts.detached ? POSIX_SPAWN_SETSID : 0));
  } catch (err) {
    release();
    closeParentEnds();
    throw err;
  }
  const pid = new Int32Array(1);
  return {
    args: [pid, file, fa, attr, [file, ...args, null], [...env, null]],
    release,
    finish(err: number): FastChild {
      // posix_spawn returns the error number instead of setting errno.
      if (err !== 0) {
        closeParentEnds();
        throw Object.assign(new SyscallError('posix_spawnp', err, file), { path: file, spawnargs: [...args] });
      }
      const stdio = parentEnds.map((fd) => (fd === undefined ? null : new net.Socket({ fd, readable: true, writable: true })));
      parentEnds.length = 0;
      const child = new FastChild(pid[0]!, file, stdio);
      children.set(child.pid, child);
      updatePoll();
      return child;
    },
    discard: closeParentEnds,
  };
}
