/**
 * Socket and terminal calls Node has no API for (through koffi): receiving a file descriptor
 * over SCM_RIGHTS (the OCI runtime's console socket hands us the pty master that way), setting
 * a terminal's window size (TIOCSWINSZ), SOCK_SEQPACKET unix sockets (conmon's attach socket;
 * libuv cannot wrap them), and making a TCP socket inside a network namespace (port-forward).
 */
import koffi from 'koffi';
import { SyscallError, lastErrno, libcLibrary } from './syscalls.js';

export const AF_UNIX = 1;
const AF_INET = 2;
export const SOCK_STREAM = 1;
const SOCK_SEQPACKET = 5;
export const SOCK_CLOEXEC = 0o2000000;
const SOCK_NONBLOCK = 0o4000;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
const MSG_CMSG_CLOEXEC = 0x40000000;
const TIOCSWINSZ = 0x5414;
export const SHUT_RD = 0;
export const SHUT_WR = 1;
export const SHUT_RDWR = 2;
export const EAGAIN = 11;
export const EINTR = 4;
export const EINPROGRESS = 115;

let lib: ReturnType<typeof bind> | undefined;

function bind() {
  const libc = libcLibrary();
  const iovec = koffi.struct('corral_iovec', { iov_base: 'void *', iov_len: 'size_t' });
  koffi.struct('corral_msghdr', {
    msg_name: 'void *', msg_namelen: 'uint32_t', msg_iov: koffi.pointer(iovec), msg_iovlen: 'size_t',
    msg_control: 'void *', msg_controllen: 'size_t', msg_flags: 'int',
  });
  return {
    errno: lastErrno,
    recvmsg: libc.func('long recvmsg(int fd, _Inout_ corral_msghdr *msg, int flags)'),
    ioctl: libc.func('int ioctl(int fd, unsigned long request, ...)'),
    socket: libc.func('int socket(int domain, int type, int protocol)'),
    connect: libc.func('int connect(int fd, const void *addr, uint32_t len)'),
    send: libc.func('long send(int fd, const void *buf, size_t len, int flags)'),
    recv: libc.func('long recv(int fd, _Out_ void *buf, size_t len, int flags)'),
    shutdown: libc.func('int shutdown(int fd, int how)'),
    close: libc.func('int close(int fd)'),
    poll: libc.func('int poll(_Inout_ void *fds, unsigned long n, int timeout)'),
    getsockopt: libc.func('int getsockopt(int fd, int level, int name, _Out_ int *val, _Inout_ uint32_t *len)'),
    posix_openpt: libc.func('int posix_openpt(int flags)'),
    grantpt: libc.func('int grantpt(int fd)'),
    unlockpt: libc.func('int unlockpt(int fd)'),
    ptsname_r: libc.func('int ptsname_r(int fd, _Out_ uint8_t *buf, size_t len)'),
    tcgetattr: libc.func('int tcgetattr(int fd, _Out_ uint8_t *termios)'),
    tcsetattr: libc.func('int tcsetattr(int fd, int action, const uint8_t *termios)'),
    cfmakeraw: libc.func('void cfmakeraw(_Inout_ uint8_t *termios)'),
  };
}

function c() {
  return (lib ??= bind());
}

function fail(call: string, detail: string): never {
  throw new SyscallError(call, c().errno(), detail);
}

/**
 * One message from a unix socket that carries a file descriptor (SCM_RIGHTS). Returns undefined
 * when nothing is queued yet (the socket is non-blocking); the caller retries. The received fd
 * is close-on-exec.
 */
export function recvFd(sockFd: number): { fd: number; data: Buffer } | undefined {
  const data = Buffer.alloc(4096);
  const control = Buffer.alloc(64);
  const msg = {
    msg_name: null, msg_namelen: 0, msg_iov: [{ iov_base: data, iov_len: data.length }], msg_iovlen: 1,
    msg_control: control, msg_controllen: control.length, msg_flags: 0,
  };
  const n = Number(c().recvmsg(sockFd, msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC));
  if (n < 0) {
    const e = c().errno();
    if (e === EAGAIN || e === EINTR) return undefined;
    throw new SyscallError('recvmsg', e, String(sockFd));
  }
  // struct cmsghdr on 64-bit: size_t len, int level, int type, then the data.
  const clen = Number(msg.msg_controllen);
  for (let off = 0; off + 16 <= clen;) {
    const len = Number(control.readBigUInt64LE(off));
    const level = control.readInt32LE(off + 8);
    const type = control.readInt32LE(off + 12);
    if (len < 16) break;
    if (level === SOL_SOCKET && type === SCM_RIGHTS && len >= 20) {
      const fd = control.readInt32LE(off + 16);
      // More than one fd would be a confused peer: close the extras rather than leak them.
      for (let p = off + 20; p + 4 <= off + len; p += 4) c().close(control.readInt32LE(p));
      return { fd, data: data.subarray(0, n) };
    }
    off += (len + 7) & ~7;
  }
  throw new SyscallError('recvmsg', 22, `${sockFd}: message without SCM_RIGHTS (${n} bytes)`);
}

/** Sets a terminal's size (rows x cols) on its master or slave fd. */
export function setWinsize(fd: number, rows: number, cols: number): void {
  const ws = Buffer.alloc(8);
  ws.writeUInt16LE(rows & 0xffff, 0);
  ws.writeUInt16LE(cols & 0xffff, 2);
  if ((c().ioctl(fd, TIOCSWINSZ, 'void *', ws) as number) === -1) fail('ioctl', `${fd}, TIOCSWINSZ, ${rows}x${cols}`);
}

function unixAddr(path: string): Buffer {
  const addr = Buffer.alloc(110);
  addr.writeUInt16LE(AF_UNIX, 0);
  if (Buffer.byteLength(path) > 107) throw new SyscallError('connect', 36, path);
  addr.write(path, 2);
  return addr;
}

/**
 * A connected SOCK_SEQPACKET unix socket, blocking (its reader is a worker thread; writes from
 * the main thread use MSG_DONTWAIT).
 */
export function connectSeqpacket(path: string): number {
  const fd = c().socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0) as number;
  if (fd < 0) fail('socket', 'AF_UNIX, SOCK_SEQPACKET');
  if ((c().connect(fd, unixAddr(path), 110) as number) === -1) {
    const e = c().errno();
    c().close(fd);
    throw new SyscallError('connect', e, path);
  }
  return fd;
}

/** Sends one packet without blocking; false when the socket buffer is full (retry later). */
export function sendPacket(fd: number, data: Buffer): boolean {
  const n = Number(c().send(fd, data, data.length, MSG_DONTWAIT | MSG_NOSIGNAL));
  if (n >= 0) return true;
  const e = c().errno();
  if (e === EAGAIN || e === EINTR) return false;
  throw new SyscallError('send', e, String(fd));
}

/** Blocking receive of one packet; 0 bytes means the peer closed. For worker threads only. */
export function recvPacket(fd: number, buf: Buffer): number {
  for (;;) {
    const n = Number(c().recv(fd, buf, buf.length, 0));
    if (n >= 0) return n;
    const e = c().errno();
    if (e !== EINTR) throw new SyscallError('recv', e, String(fd));
  }
}

export function shutdownSocket(fd: number, how: number): void {
  c().shutdown(fd, how);
}

export function closeFd(fd: number): void {
  c().close(fd);
}

/**
 * A non-blocking TCP socket connecting to 127.0.0.1:port, created on the calling thread (and
 * therefore in that thread's network namespace). The connect is in progress when this returns;
 * whoever wraps the fd (net.Socket) sees it complete or fail.
 */
export function tcpSocketToLoopback(port: number): number {
  const fd = c().socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0) as number;
  if (fd < 0) fail('socket', 'AF_INET, SOCK_STREAM');
  const addr = Buffer.alloc(16);
  addr.writeUInt16LE(AF_INET, 0);
  addr.writeUInt16BE(port, 2);
  addr.writeUInt32BE(0x7f000001, 4);
  if ((c().connect(fd, addr, 16) as number) === -1) {
    const e = c().errno();
    if (e !== EINPROGRESS) {
      c().close(fd);
      throw new SyscallError('connect', e, `127.0.0.1:${port}`);
    }
  }
  return fd;
}

const ERRNO_CODES: Record<number, string> = { 111: 'ECONNREFUSED', 110: 'ETIMEDOUT', 113: 'EHOSTUNREACH', 101: 'ENETUNREACH', 99: 'EADDRNOTAVAIL' };

/**
 * Blocks the calling (worker) thread until a non-blocking connect finished; throws with the
 * errno's name as `code` (ECONNREFUSED when nothing listens on the port).
 */
export function waitConnected(fd: number, timeoutMs: number): void {
  const pfd = Buffer.alloc(8);
  pfd.writeInt32LE(fd, 0);
  pfd.writeInt16LE(0x4 /* POLLOUT */, 4);
  const r = c().poll(pfd, 1, timeoutMs) as number;
  if (r === 0) throw Object.assign(new Error('connect timed out'), { code: 'ETIMEDOUT' });
  if (r < 0) fail('poll', String(fd));
  const val = [0];
  const len = [4];
  if ((c().getsockopt(fd, SOL_SOCKET, 4 /* SO_ERROR */, val, len) as number) === -1) fail('getsockopt', String(fd));
  const err = val[0]!;
  if (err !== 0) {
    const code = ERRNO_CODES[err] ?? `E${err}`;
    throw Object.assign(new Error(`connect 127.0.0.1: ${code}`), { code });
  }
}

/**
 * A new pseudo-terminal on the host: the master fd (close-on-exec) and the slave's path. For
 * runtimes that want a terminal on their own stdio rather than a console socket (runc in the
 * foreground).
 */
export function openPty(): { master: number; slavePath: string } {
  const O_RDWR = 0o2;
  const O_NOCTTY = 0o400;
  const O_CLOEXEC = 0o2000000;
  const master = c().posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC) as number;
  if (master < 0) fail('posix_openpt', 'O_RDWR|O_NOCTTY');
  try {
    if ((c().grantpt(master) as number) !== 0) fail('grantpt', String(master));
    if ((c().unlockpt(master) as number) !== 0) fail('unlockpt', String(master));
    const buf = Buffer.alloc(128);
    const r = c().ptsname_r(master, buf, buf.length) as number;
    if (r !== 0) throw new SyscallError('ptsname_r', r, String(master));
    return { master, slavePath: buf.toString('utf8', 0, buf.indexOf(0)) };
  } catch (err) {
    c().close(master);
    throw err;
  }
}

/** Puts a terminal in raw mode (no echo, no line editing, no output processing). */
export function setRaw(fd: number): void {
  const t = Buffer.alloc(64); // struct termios is 60 bytes on Linux
  if ((c().tcgetattr(fd, t) as number) !== 0) fail('tcgetattr', String(fd));
  c().cfmakeraw(t);
  if ((c().tcsetattr(fd, 0 /* TCSANOW */, t) as number) !== 0) fail('tcsetattr', String(fd));
}
