/**
 * The only place corral calls libc directly (through koffi). Everything above takes a
 * `Syscalls` object so that tests can pass the recording fake from ./fake.ts.
 *
 * Calls that change the calling thread's namespaces (unshare, setns) must only run on a
 * throwaway worker thread: Node's main thread serves every RPC and must keep the host's
 * namespaces.
 */
import koffi from 'koffi';

export const MS_RDONLY = 0x1;
export const MS_NOSUID = 0x2;
export const MS_NODEV = 0x4;
export const MS_NOEXEC = 0x8;
export const MS_REMOUNT = 0x20;
export const MS_BIND = 0x1000;
export const MS_MOVE = 0x2000;
export const MS_REC = 0x4000;
export const MS_PRIVATE = 1 << 18;
export const MS_SLAVE = 1 << 19;
export const MS_SHARED = 1 << 20;

export const MNT_DETACH = 0x2;
export const UMOUNT_NOFOLLOW = 0x8;

export const CLONE_NEWNS = 0x00020000;
export const CLONE_NEWCGROUP = 0x02000000;
export const CLONE_NEWUTS = 0x04000000;
export const CLONE_NEWIPC = 0x08000000;
export const CLONE_NEWUSER = 0x10000000;
export const CLONE_NEWPID = 0x20000000;
export const CLONE_NEWNET = 0x40000000;

/** An errno failure of a syscall, with the call and its arguments in the message. */
export class SyscallError extends Error {
  readonly errno: number;
  readonly code: string;
  constructor(call: string, errno: number, detail: string) {
    const code = ERRNO_NAMES[errno] ?? `E${errno}`;
    super(`${call}(${detail}): ${code} (${errno})`);
    this.errno = errno;
    this.code = code;
  }
}

const ERRNO_NAMES: Record<number, string> = {
  1: 'EPERM', 2: 'ENOENT', 3: 'ESRCH', 4: 'EINTR', 5: 'EIO', 9: 'EBADF', 11: 'EAGAIN', 12: 'ENOMEM',
  13: 'EACCES', 16: 'EBUSY', 17: 'EEXIST', 20: 'ENOTDIR', 21: 'EISDIR', 22: 'EINVAL', 24: 'EMFILE',
  28: 'ENOSPC', 30: 'EROFS', 36: 'ENAMETOOLONG', 38: 'ENOSYS', 39: 'ENOTEMPTY', 40: 'ELOOP', 95: 'EOPNOTSUPP',
};

export interface Syscalls {
  mount(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): void;
  umount2(target: string, flags: number): void;
  /**
   * mount(2) and umount2(2) on a thread-pool thread. Both may wait for an RCU grace period
   * (milliseconds on an idle host), which on the main thread would stall every RPC: ten pods
   * stopping at once queued ~40 ms of unmounts behind each other.
   */
  mountAsync(source: string | null, target: string, fstype: string | null, flags: number, data: string | null): Promise<void>;
  umount2Async(target: string, flags: number): Promise<void>;
  unshare(flags: number): void;
  setns(fd: number, nstype: number): void;
  sethostname(name: string): void;
  gettid(): number;
}

type Library = ReturnType<typeof koffi.load>;
let handle: Library | undefined;
let errnoLocation: ReturnType<Library['func']> | undefined;

/** libc, loaded once for every binding in runtime/linux/. */
export function libcLibrary(): Library {
  return (handle ??= koffi.load('libc.so.6'));
}

/** errno of the calling thread, read right after a call that failed. */
export function lastErrno(): number {
  errnoLocation ??= libcLibrary().func('int *__errno_location(void)');
  return koffi.decode(errnoLocation(), 'int') as number;
}

let lib: ReturnType<typeof bind> | undefined;

function bind() {
  const libc = libcLibrary();
  return {
    errno: lastErrno,
    mount: libc.func('int mount(const char *source, const char *target, const char *fstype, unsigned long flags, const char *data)'),
    umount2: libc.func('int umount2(const char *target, int flags)'),
    unshare: libc.func('int unshare(int flags)'),
    setns: libc.func('int setns(int fd, int nstype)'),
    sethostname: libc.func('int sethostname(const char *name, size_t len)'),
    gettid: libc.func('int gettid(void)'),
  };
}

function libc() {
  return (lib ??= bind());
}

function check(ret: number, call: string, detail: string): void {
  if (ret === -1) throw new SyscallError(call, libc().errno(), detail);
}

type AsyncFn = { async: (...args: unknown[]) => void };

/** Runs a bound function on koffi's worker threads; resolves with its return value. */
function onPool(fn: unknown, args: unknown[]): Promise<number> {
  return new Promise((resolve, reject) => {
    (fn as AsyncFn).async(...args, (err: unknown, ret: number) => (err ? reject(err) : resolve(ret)));
  });
}

/** The real syscalls. */
export const linux: Syscalls = {
  mount(source, target, fstype, flags, data) {
    check(libc().mount(source, target, fstype, flags, data) as number, 'mount', `${source ?? 'none'}, ${target}, ${fstype ?? ''}, 0x${flags.toString(16)}`);
  },
  umount2(target, flags) {
    check(libc().umount2(target, flags) as number, 'umount2', `${target}, ${flags}`);
  },
  // errno belongs to the pool thread that made the call: a failure is repeated here, where the
  // errno can be read (the failures that matter, EINVAL/ENOENT/EBUSY, repeat at once).
  async mountAsync(source, target, fstype, flags, data) {
    if ((await onPool(libc().mount, [source, target, fstype, flags, data])) === -1) linux.mount(source, target, fstype, flags, data);
  },
  async umount2Async(target, flags) {
    if ((await onPool(libc().umount2, [target, flags])) === -1) linux.umount2(target, flags);
  },
  unshare(flags) {
    check(libc().unshare(flags) as number, 'unshare', `0x${flags.toString(16)}`);
  },
  setns(fd, nstype) {
    check(libc().setns(fd, nstype) as number, 'setns', `${fd}, 0x${nstype.toString(16)}`);
  },
  sethostname(name) {
    check(libc().sethostname(name, Buffer.byteLength(name)) as number, 'sethostname', name);
  },
  gettid() {
    return libc().gettid() as number;
  },
};
