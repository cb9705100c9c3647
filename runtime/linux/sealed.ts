/**
 * A sealed in-memory copy of a binary, executed through /proc/<our pid>/fd/<n>.
 *
 * crun and runc protect the host binary from a container that would overwrite it through
 * /proc/<pid>/exe (CVE-2019-5736): unless /proc/self/exe already is a memfd sealed against
 * writes, every invocation copies the binary into such a memfd and re-executes itself, about
 * 1.2 ms per command here. Handing them the sealed copy up front gives the same protection
 * without the copy; the copy is refreshed when the file on disk changes (a package upgrade).
 *
 * The path is only valid while this process lives, so it is used for commands the daemon runs
 * itself and never written anywhere (conmon and the wrapper scripts keep the real path).
 */
import { closeSync, fstatSync, openSync, readSync, statSync, writeSync } from 'node:fs';
import { SyscallError, lastErrno, libcLibrary } from './syscalls.js';

const MFD_CLOEXEC = 0x1;
const MFD_ALLOW_SEALING = 0x2;
const F_ADD_SEALS = 1033;
const F_GET_SEALS = 1034;
const F_SEAL_SEAL = 0x1;
const F_SEAL_SHRINK = 0x2;
const F_SEAL_GROW = 0x4;
const F_SEAL_WRITE = 0x8;
/** What crun and runc check for before they skip their own copy. */
export const EXEC_SEALS = F_SEAL_SEAL | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE;

let fns: { memfdCreate: (name: string, flags: number) => number; fcntl: (fd: number, cmd: number, arg: number) => number } | undefined;

function bind() {
  const libc = libcLibrary();
  return {
    memfdCreate: libc.func('int memfd_create(const char *name, unsigned int flags)') as (name: string, flags: number) => number,
    fcntl: libc.func('int fcntl(int fd, int cmd, int arg)') as (fd: number, cmd: number, arg: number) => number,
  };
}

function check(call: string, ret: number, detail: string): number {
  if (ret < 0) throw new SyscallError(call, lastErrno(), detail);
  return ret;
}

/** A sealed copy of `path`; its fd is close-on-exec, so children never inherit it. */
export function sealedCopy(path: string, name = 'corral-sealed'): number {
  fns ??= bind();
  const fd = check('memfd_create', fns.memfdCreate(name, MFD_CLOEXEC | MFD_ALLOW_SEALING), name);
  try {
    const src = openSync(path, 'r');
    try {
      const buf = Buffer.allocUnsafe(1 << 20);
      for (;;) {
        const n = readSync(src, buf, 0, buf.length, null);
        if (n === 0) break;
        for (let off = 0; off < n;) off += writeSync(fd, buf, off, n - off);
      }
    } finally {
      closeSync(src);
    }
    check('fcntl', fns.fcntl(fd, F_ADD_SEALS, EXEC_SEALS), `${fd}, F_ADD_SEALS`);
    return fd;
  } catch (err) {
    closeSync(fd);
    throw err;
  }
}

/** The seals of fd (tests check them). */
export function sealsOf(fd: number): number {
  fns ??= bind();
  return check('fcntl', fns.fcntl(fd, F_GET_SEALS, 0), `${fd}, F_GET_SEALS`);
}

interface Copy { fd: number; ino: number; size: number; mtimeMs: number; checkedAt: number }

/** How long a copy is used without looking at the file again (every container view asks). */
const RECHECK_MS = 1000;

/**
 * The executable path to use for `path`: the sealed copy, made on first use and again when
 * the file changed; `path` itself when a copy cannot be made (the runtime then copies itself).
 */
export class SealedBinaries {
  private readonly copies = new Map<string, Copy | null>();

  constructor(private readonly onError: (path: string, err: unknown) => void = () => undefined) {}

  execPath(path: string): string {
    const known = this.copies.get(path);
    if (known && Date.now() - known.checkedAt < RECHECK_MS) return `/proc/${process.pid}/fd/${known.fd}`;
    let st;
    try {
      st = statSync(path);
    } catch {
      return path;
    }
    const cur = this.copies.get(path);
    if (cur === null) return path;
    if (cur && cur.ino === st.ino && cur.size === st.size && cur.mtimeMs === st.mtimeMs) {
      cur.checkedAt = Date.now();
      return `/proc/${process.pid}/fd/${cur.fd}`;
    }
    try {
      const fd = sealedCopy(path, `corral:${path.split('/').pop()}`);
      if (fstatSync(fd).size !== st.size) throw new Error(`${path} changed while it was copied`);
      // The old copy may still be starting a command: the kernel keeps a running image alive,
      // but exec by path needs the fd, so the old one is closed only after a grace period.
      if (cur) setTimeout(() => closeSync(cur.fd), 60_000).unref();
      this.copies.set(path, { fd, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, checkedAt: Date.now() });
      return `/proc/${process.pid}/fd/${fd}`;
    } catch (err) {
      this.onError(path, err);
      this.copies.set(path, null);
      return path;
    }
  }

  close(): void {
    for (const c of this.copies.values()) if (c) closeSync(c.fd);
    this.copies.clear();
  }
}

