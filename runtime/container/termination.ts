/**
 * The termination message (ContainerStatus.message) of an exited container. The kubelet
 * bind-mounts a host file at the container's terminationMessagePath and names that path
 * in an annotation; we read the host file behind the mount, or else the path inside the
 * rootfs. The path comes from the pod spec, so it is resolved without following symlinks
 * out of the rootfs, only regular files are read, and at most 4 KiB (the kubelet's cap).
 */
import { constants, promises as fs } from 'node:fs';
import { posix } from 'node:path';

export const TERMINATION_PATH_ANNOTATION = 'io.kubernetes.container.terminationMessagePath';
const MAX = 4096;

interface MountLike { container_path?: string; host_path?: string }

async function readCapped(path: string): Promise<string | undefined> {
  let fh;
  try {
    fh = await fs.open(path, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
    const st = await fh.stat();
    if (!st.isFile()) return undefined;
    const buf = Buffer.alloc(MAX);
    const { bytesRead } = await fh.read(buf, 0, MAX, 0);
    return buf.subarray(0, bytesRead).toString('utf8');
  } catch {
    return undefined;
  } finally {
    await fh?.close();
  }
}

/** Resolves `inner` below `root` component by component, refusing any symlink. */
async function resolveInside(root: string, inner: string): Promise<string | undefined> {
  const parts = posix.normalize('/' + inner).split('/').filter(Boolean);
  let cur = root;
  for (const p of parts) {
    if (p === '..') return undefined;
    cur = posix.join(cur, p);
    try {
      const st = await fs.lstat(cur);
      if (st.isSymbolicLink()) return undefined;
    } catch {
      return undefined;
    }
  }
  return cur;
}

export async function readTerminationMessage(annotations: Record<string, string> | undefined, mounts: MountLike[] | undefined, rootfs: string): Promise<string> {
  const path = annotations?.[TERMINATION_PATH_ANNOTATION];
  if (!path) return '';
  const want = posix.normalize(path);
  const m = (mounts ?? []).find((x) => x.container_path && posix.normalize(x.container_path) === want && x.host_path);
  if (m) return (await readCapped(m.host_path!)) ?? '';
  const inside = await resolveInside(rootfs, want);
  return inside ? (await readCapped(inside)) ?? '' : '';
}
