/**
 * File-system syscalls Node's fs module lacks and that layer unpacking and rootfs mounting
 * need: mknod (overlay whiteouts and device nodes), lsetxattr (security.capability,
 * trusted.overlay.opaque), and the new mount API (fsopen/fsconfig/fsmount/move_mount) so an
 * overlay with very many layers is not limited by mount(2)'s one-page option string.
 * All calls are synchronous and short; none changes the thread's namespaces.
 */
import koffi from 'koffi';
import { SyscallError, lastErrno, libcLibrary } from './syscalls.js';

export const S_IFCHR = 0o020000;
export const S_IFBLK = 0o060000;
export const S_IFIFO = 0o010000;

const FSOPEN_CLOEXEC = 0x1;
const FSCONFIG_SET_STRING = 1;
const FSCONFIG_CMD_CREATE = 6;
const FSMOUNT_CLOEXEC = 0x1;
const MOVE_MOUNT_F_EMPTY_PATH = 0x4;
const AT_FDCWD = -100;
const OPEN_TREE_CLONE = 0x1;
const OPEN_TREE_CLOEXEC = 0o2000000;
const AT_EMPTY_PATH = 0x1000;
const AT_RECURSIVE = 0x8000;
const MOUNT_ATTR_IDMAP = 0x00100000;
/** struct mount_attr: attr_set, attr_clr, propagation, userns_fd (u64 each). */
const MOUNT_ATTR_SIZE = 32;
const MOUNT_ATTR_RDONLY = 0x1;

export interface FsOps {
  mknod(path: string, mode: number, major: number, minor: number): void;
  lsetxattr(path: string, name: string, value: Buffer): void;
  /** The attribute's value, or undefined when the file has none of that name. */
  lgetxattr(path: string, name: string): Buffer | undefined;
  /** Mounts an overlay through fsopen/fsconfig with one "lowerdir+" per layer (Linux >= 6.8). */
  mountOverlayFsconfig(lowers: string[], upper: string, work: string, target: string, readonly: boolean): void;
  /**
   * Mounts a copy of source at target, idmapped through the user namespace open at usernsFd
   * (open_tree + mount_setattr(MOUNT_ATTR_IDMAP) + move_mount; Linux >= 5.12, and the source's
   * file system must allow it). recursive: the submounts too.
   */
  mountIdmapped(source: string, target: string, usernsFd: number, recursive: boolean): void;
}

let lib: ReturnType<typeof bind> | undefined;

function bind() {
  const libc = libcLibrary();
  return {
    errno: lastErrno,
    mknod: libc.func('int mknod(const char *path, uint32_t mode, uint64_t dev)'),
    lsetxattr: libc.func('int lsetxattr(const char *path, const char *name, const void *value, size_t size, int flags)'),
    lgetxattr: libc.func('long lgetxattr(const char *path, const char *name, _Out_ uint8_t *value, size_t size)'),
    fsopen: libc.func('int fsopen(const char *fsname, unsigned int flags)'),
    fsconfig: libc.func('int fsconfig(int fd, unsigned int cmd, const char *key, const char *value, int aux)'),
    fsmount: libc.func('int fsmount(int fd, unsigned int flags, unsigned int attrs)'),
    moveMount: libc.func('int move_mount(int from_dfd, const char *from_path, int to_dfd, const char *to_path, unsigned int flags)'),
    close: libc.func('int close(int fd)'),
    openTree: libc.func('int open_tree(int dfd, const char *path, unsigned int flags)'),
    mountSetattr: libc.func('int mount_setattr(int dfd, const char *path, unsigned int flags, const void *attr, size_t size)'),
  };
}

function libc() {
  return (lib ??= bind());
}

function check(ret: number, call: string, detail: string): number {
  if (ret === -1) throw new SyscallError(call, libc().errno(), detail);
  return ret;
}

/** Linux's makedev(): the 64-bit dev_t layout glibc uses. */
export function makedev(major: number, minor: number): bigint {
  const ma = BigInt(major >>> 0);
  const mi = BigInt(minor >>> 0);
  return ((ma & 0xfffffn) << 8n) | ((ma & ~0xfffn) << 32n) | (mi & 0xffn) | ((mi & ~0xffn) << 12n);
}

export const fsops: FsOps = {
  mknod(path, mode, major, minor) {
    check(libc().mknod(path, mode >>> 0, makedev(major, minor)) as number, 'mknod', `${path}, 0${mode.toString(8)}, ${major}:${minor}`);
  },
  lsetxattr(path, name, value) {
    check(libc().lsetxattr(path, name, value, value.length, 0) as number, 'lsetxattr', `${path}, ${name}`);
  },
  lgetxattr(path, name) {
    const buf = Buffer.alloc(65536);
    const n = libc().lgetxattr(path, name, buf, buf.length) as number;
    if (n === -1) {
      const errno = libc().errno();
      if (errno === 61 /* ENODATA */) return undefined;
      throw new SyscallError('lgetxattr', errno, `${path}, ${name}`);
    }
    return Buffer.from(buf.subarray(0, n));
  },
  mountOverlayFsconfig(lowers, upper, work, target, readonly) {
    const l = libc();
    const fd = check(l.fsopen('overlay', FSOPEN_CLOEXEC) as number, 'fsopen', 'overlay');
    try {
      const set = (key: string, value: string) =>
        check(l.fsconfig(fd, FSCONFIG_SET_STRING, key, value, 0) as number, 'fsconfig', `${key}=${value}`);
      for (const lower of lowers) set('lowerdir+', lower);
      // A read-only view has no upper layer.
      if (upper) {
        set('upperdir', upper);
        set('workdir', work);
      }
      check(l.fsconfig(fd, FSCONFIG_CMD_CREATE, null, null, 0) as number, 'fsconfig', 'create overlay');
      const mfd = check(l.fsmount(fd, FSMOUNT_CLOEXEC, readonly ? MOUNT_ATTR_RDONLY : 0) as number, 'fsmount', 'overlay');
      try {
        check(l.moveMount(mfd, '', AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) as number, 'move_mount', target);
      } finally {
        l.close(mfd);
      }
    } finally {
      l.close(fd);
    }
  },
  mountIdmapped(source, target, usernsFd, recursive) {
    const l = libc();
    const rec = recursive ? AT_RECURSIVE : 0;
    const fd = check(l.openTree(AT_FDCWD, source, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | rec) as number, 'open_tree', source);
    try {
      const attr = Buffer.alloc(MOUNT_ATTR_SIZE);
      attr.writeBigUInt64LE(BigInt(MOUNT_ATTR_IDMAP), 0);
      attr.writeBigUInt64LE(BigInt(usernsFd), 24);
      check(l.mountSetattr(fd, '', AT_EMPTY_PATH | rec, attr, MOUNT_ATTR_SIZE) as number, 'mount_setattr', `${source}: idmap`);
      check(l.moveMount(fd, '', AT_FDCWD, target, MOVE_MOUNT_F_EMPTY_PATH) as number, 'move_mount', target);
    } finally {
      l.close(fd);
    }
  },
};
