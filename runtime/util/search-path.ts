/**
 * Search permission for an unprivileged host uid along a path. A pod with its own user
 * namespace runs as such a uid, and the OCI runtime resolves the container's rootfs and its
 * bind-mount sources after joining that namespace: every directory leading there must let
 * "others" through. Only the execute (search) bit is added, never read: nobody can list
 * corral's directories, as with containerd's 0711 root.
 */
import { promises as fs } from 'node:fs';
import { dirname } from 'node:path';

/** Adds o+x to path's directory and every ancestor lacking it (path itself when it is a dir). */
export async function grantSearch(path: string, opts: { includeSelf?: boolean } = {}): Promise<void> {
  let d = opts.includeSelf ? path : dirname(path);
  for (;;) {
    const st = await fs.stat(d);
    if (st.isDirectory() && (st.mode & 0o001) === 0) await fs.chmod(d, (st.mode & 0o7777) | 0o001);
    const up = dirname(d);
    if (up === d) return;
    d = up;
  }
}
