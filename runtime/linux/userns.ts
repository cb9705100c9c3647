/**
 * A pod's own user namespace, with its net, ipc and uts namespaces inside it, pinned like the
 * others (bind mounts of nsfs files, see ./netns.ts).
 *
 * A multi-threaded process can never unshare(CLONE_NEWUSER) (and corral has worker threads),
 * and a namespace belongs to the user namespace of the task that creates it: sysfs and mqueue
 * mount in a container only when the pod's net and ipc namespaces belong to its user
 * namespace. So a child process makes all four at once (util-linux `unshare`), corral writes
 * its uid_map and gid_map (root in the parent namespace may map any ids), bind-mounts the four
 * nsfs files, and lets the child go. The hostname and sysctls are then set by the pinning
 * worker, which joins the pinned namespaces (root of the initial user namespace holds every
 * capability in the namespaces of its descendants).
 */
import { spawn } from 'node:child_process';
import { closeSync, openSync, promises as fs, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { MNT_DETACH, MS_BIND, type Syscalls } from './syscalls.js';

/** A uid_map / gid_map line (see proc(5), user_namespaces(7)). */
export interface IdMapLine {
  containerId: number;
  hostId: number;
  length: number;
}

export type UsernsPins = { user: string; net: string; ipc: string; uts: string };

export function idMapText(lines: IdMapLine[]): string {
  return lines.map((l) => `${l.containerId} ${l.hostId} ${l.length}\n`).join('');
}

/**
 * A child of util-linux `unshare` in new namespaces (user first, so the others belong to it),
 * waiting on its stdin once it reports; stop() lets it go (and kills it if it lingers).
 */
async function spawnUnshared(unshare: string, flags: string[], timeoutMs: number): Promise<{ pid: number; stop(kill?: boolean): Promise<void> }> {
  const child = spawn(unshare, [...flags, '--', '/bin/sh', '-c', 'echo ready; exec cat >/dev/null'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<void>((resolve) => child.once('close', () => resolve()));
  let stderr = '';
  child.stderr!.on('data', (d: Buffer) => { stderr += d.toString(); });
  const stop = async (kill = false) => {
    child.stdin!.end();
    if (kill) child.kill('SIGKILL');
    await Promise.race([exited, new Promise((r) => setTimeout(r, 2000))]);
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  };
  try {
    await new Promise<void>((resolve, reject) => {
      let out = '';
      const timer = setTimeout(() => reject(new Error(`${unshare} did not report within ${timeoutMs} ms`)), timeoutMs);
      child.once('error', (err) => { clearTimeout(timer); reject(err); });
      child.once('close', (code) => { clearTimeout(timer); reject(new Error(`${unshare} exited (${code}): ${stderr.trim()}`)); });
      child.stdout!.on('data', (d: Buffer) => {
        out += d.toString();
        if (out.includes('ready\n')) { clearTimeout(timer); resolve(); }
      });
    });
  } catch (err) {
    await stop(true);
    throw err;
  }
  return { pid: child.pid!, stop };
}

/**
 * Creates user+net+ipc+uts namespaces, maps them, and pins them as <dir>/user, net, ipc, uts.
 * Nothing is left behind on failure.
 */
export async function createUserNamespace(
  dir: string,
  maps: { uids: IdMapLine[]; gids: IdMapLine[] },
  sys: Pick<Syscalls, 'mount' | 'umount2'>,
  opts: { unshare?: string; timeoutMs?: number } = {},
): Promise<UsernsPins> {
  const child = await spawnUnshared(opts.unshare ?? 'unshare', ['--user', '--net', '--ipc', '--uts'], opts.timeoutMs ?? 10_000);
  const made: string[] = [];
  try {
    const pid = child.pid;
    // One write(2) each, as the kernel requires; gid_map needs no "setgroups deny" from a
    // writer privileged in the parent namespace.
    await fs.writeFile(`/proc/${pid}/uid_map`, idMapText(maps.uids));
    await fs.writeFile(`/proc/${pid}/gid_map`, idMapText(maps.gids));
    const pins = {} as UsernsPins;
    for (const ns of ['user', 'net', 'ipc', 'uts'] as const) {
      const target = join(dir, ns);
      closeSync(openSync(target, 'wx', 0o444));
      made.push(target);
      sys.mount(`/proc/${pid}/ns/${ns}`, target, null, MS_BIND, null);
      pins[ns] = target;
    }
    made.length = 0;
    return pins;
  } finally {
    await child.stop(made.length > 0);
    for (const target of made.reverse()) {
      try { sys.umount2(target, MNT_DETACH); } catch { /* not mounted yet */ }
      try { unlinkSync(target); } catch { /* gone */ }
    }
  }
}

/**
 * Whether the file system holding dir lets corral idmap it (what a pod with its own user
 * namespace needs for its rootfs layers): a throwaway user namespace, an idmapped copy of
 * dir mounted and unmounted at once. tmpfs before Linux 6.3, for one, cannot. Returns the
 * reason when not.
 */
export async function probeIdmap(
  dir: string,
  sys: Pick<Syscalls, 'umount2'>,
  mountIdmapped: (source: string, target: string, usernsFd: number, recursive: boolean) => void,
  opts: { unshare?: string } = {},
): Promise<{ ok: true } | { ok: false; reason: string }> {
  const target = await fs.mkdtemp(join(dir, '.idmap-probe-'));
  let child: Awaited<ReturnType<typeof spawnUnshared>> | undefined;
  let fd: number | undefined;
  try {
    child = await spawnUnshared(opts.unshare ?? 'unshare', ['--user'], 10_000);
    await fs.writeFile(`/proc/${child.pid}/uid_map`, '0 65536 1\n');
    await fs.writeFile(`/proc/${child.pid}/gid_map`, '0 65536 1\n');
    fd = openSync(`/proc/${child.pid}/ns/user`, 'r');
    mountIdmapped(dir, target, fd, false);
    sys.umount2(target, MNT_DETACH);
    return { ok: true };
  } catch (err) {
    return { ok: false, reason: (err as Error).message };
  } finally {
    if (fd !== undefined) closeSync(fd);
    await child?.stop();
    await fs.rmdir(target).catch(() => undefined);
  }
}
