/**
 * Root filesystem pieces made from files installed on the host by Debian packages.
 *
 *   const host = new HostFiles();          // reads and remembers every host file used
 *   host.read('/bin/busybox')               // -> Buffer (recorded for the cache key)
 *   host.ldd('/usr/sbin/nginx')             // -> shared libraries + interpreter, absolute paths
 *   busyboxEntries(host)                    // busybox with every applet as a hard link
 *   passwdFile(users) / groupFile(groups)
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { FileEntry, HardlinkEntry, TarEntry } from './tar.js';

export class HostFiles {
  private readonly cache = new Map<string, Buffer>();

  read(p: string): Buffer {
    let b = this.cache.get(p);
    if (!b) {
      b = readFileSync(p);
      this.cache.set(p, b);
    }
    return b;
  }

  /** Shared objects a dynamic binary needs, from ldd (vdso excluded), in ldd's order. */
  ldd(binary: string): string[] {
    const out = execFileSync('ldd', [binary], { encoding: 'utf8' });
    const libs: string[] = [];
    for (const line of out.split('\n')) {
      const arrow = line.match(/=>\s+(\/\S+)/);
      if (arrow) libs.push(arrow[1]);
      else {
        const direct = line.trim().match(/^(\/\S+)\s+\(/);
        if (direct) libs.push(direct[1]);
      }
    }
    return libs;
  }

  /** A host file as an image entry at the same path (or at `at`). */
  entry(p: string, opts: { at?: string; mode?: number } = {}): FileEntry {
    return { type: 'file', path: (opts.at ?? p).replace(/^\/+/, ''), data: this.read(p), mode: opts.mode ?? 0o755 };
  }

  /** A dynamic binary plus everything ldd says it loads, at the paths ldd reports. */
  binaryWithLibs(binary: string, opts: { at?: string } = {}): FileEntry[] {
    const entries = [this.entry(binary, { at: opts.at })];
    for (const lib of this.ldd(binary)) entries.push(this.entry(lib));
    return entries;
  }
}

export const BUSYBOX = '/bin/busybox';

/**
 * /bin/busybox and a HARD link for each applet at the path `busybox --list-full` gives.
 * Hard links, not symlinks: masking one applet path with a bind mount (critest masks /bin/ls)
 * must not mask /bin/busybox itself, which /bin/sh also is.
 */
export function busyboxEntries(host: HostFiles): TarEntry[] {
  const list = execFileSync(BUSYBOX, ['--list-full'], { encoding: 'utf8' })
    .split('\n').map((s) => s.trim()).filter((s) => s !== '' && s !== 'bin/busybox');
  const links: HardlinkEntry[] = list.map((p) => ({ type: 'hardlink', path: p, target: 'bin/busybox' }));
  return [host.entry(BUSYBOX), ...links];
}

export interface User { name: string; uid: number; gid: number; gecos?: string; home?: string; shell?: string }
export interface Group { name: string; gid: number; members?: string[] }

export function passwdFile(users: User[]): Buffer {
  return Buffer.from(users.map((u) =>
    `${u.name}:x:${u.uid}:${u.gid}:${u.gecos ?? u.name}:${u.home ?? '/home/' + u.name}:${u.shell ?? '/bin/sh'}\n`).join(''));
}

export function groupFile(groups: Group[]): Buffer {
  return Buffer.from(groups.map((g) => `${g.name}:x:${g.gid}:${(g.members ?? []).join(',')}\n`).join(''));
}

/** Users of busybox's own image, plus test users with a shared group for supplementary-group tests. */
export const BASE_USERS: User[] = [
  { name: 'root', uid: 0, gid: 0, home: '/root' },
  { name: 'daemon', uid: 1, gid: 1, home: '/usr/sbin', shell: '/bin/false' },
  { name: 'bin', uid: 2, gid: 2, home: '/bin', shell: '/bin/false' },
  { name: 'sys', uid: 3, gid: 3, home: '/dev', shell: '/bin/false' },
  { name: 'sync', uid: 4, gid: 100, home: '/bin', shell: '/bin/sync' },
  { name: 'mail', uid: 8, gid: 8, home: '/var/spool/mail', shell: '/bin/false' },
  { name: 'www-data', uid: 33, gid: 33, home: '/var/www', shell: '/bin/false' },
  { name: 'operator', uid: 37, gid: 37, home: '/var', shell: '/bin/false' },
  { name: 'alice', uid: 1100, gid: 1100 },
  { name: 'bob', uid: 1101, gid: 1101 },
  { name: 'nobody', uid: 65534, gid: 65534, home: '/home', shell: '/bin/false' },
];

export const BASE_GROUPS: Group[] = [
  { name: 'root', gid: 0 },
  { name: 'daemon', gid: 1 },
  { name: 'bin', gid: 2 },
  { name: 'sys', gid: 3 },
  { name: 'adm', gid: 4 },
  { name: 'tty', gid: 5 },
  { name: 'disk', gid: 6 },
  { name: 'mail', gid: 8 },
  { name: 'wheel', gid: 10, members: ['root'] },
  { name: 'www-data', gid: 33 },
  { name: 'operator', gid: 37 },
  { name: 'users', gid: 100 },
  { name: 'alice', gid: 1100 },
  { name: 'bob', gid: 1101 },
  { name: 'devs', gid: 1200, members: ['alice', 'bob'] },
  { name: 'nogroup', gid: 65534 },
];

/**
 * Stand-ins for procps' pgrep/pkill and util-linux' ipcs, which Debian's busybox-static lacks and
 * critest runs (`pgrep sleep`, `ipcs -m`). They read /proc like the real tools.
 */
export const PGREP = `#!/bin/sh
# pgrep PATTERN: pids whose comm contains PATTERN (procps matches a regex against comm)
[ $# -ge 1 ] || { echo "usage: pgrep NAME" >&2; exit 2; }
name=$1; found=1
for d in /proc/[0-9]*; do
  comm=$(cat "$d/comm" 2>/dev/null) || continue
  case "$comm" in *$name*) echo "\${d#/proc/}"; found=0;; esac
done
exit $found
`;

export const PKILL = `#!/bin/sh
# pkill [-SIGNAL] NAME
sig=TERM
case "$1" in -*) sig=\${1#-}; shift;; esac
pids=$(pgrep "$1") || exit 1
kill -s "$sig" $pids
`;

export const IPCS = `#!/bin/sh
# ipcs [-m]: System V shared memory segments of this IPC namespace, from /proc/sysvipc/shm
echo
echo "------ Shared Memory Segments --------"
echo "key        shmid      owner      perms      bytes      nattch     status"
tail -n +2 /proc/sysvipc/shm 2>/dev/null | while read key shmid perms size cpid lpid nattch uid rest; do
  [ "$key" -lt 0 ] && key=$((key + 4294967296))   # the kernel prints keys as signed ints
  printf "0x%08x %-10s %-10s %-10s %-10s %-10s\\n" "$key" "$shmid" "$uid" "$perms" "$size" "$nattch"
done
echo
`;

/**
 * nmeter stand-in (Debian's busybox has no nmeter applet). Only what the node e2e suite asks of
 * it: `nmeter -d0 '%3t'`, the wall clock with milliseconds (HH:MM:SS.mmm, UTC), one line after
 * another until the reader goes away. The clock comes from adjtimex, which any user may read.
 */
export const NMETER = `#!/bin/sh
while :; do
  adjtimex | awk '/time.tv_sec/ { s = $2 } /time.tv_usec/ { u = $2 }
    END { printf "%02d:%02d:%02d.%03d\\n", (s / 3600) % 24, (s / 60) % 60, s % 60, u / 1000 }' || exit 0
done
`;

/**
 * /bin/<applet> for every applet busybox puts elsewhere (/sbin, /usr/bin, /usr/sbin), as symlinks
 * to those paths: the upstream busybox image has them all in /bin, and specs run `/bin/top`.
 */
export function binLinks(): TarEntry[] {
  const list = execFileSync(BUSYBOX, ['--list-full'], { encoding: 'utf8' }).split('\n').map((s) => s.trim()).filter(Boolean);
  const inBin = new Set(list.filter((p) => p.startsWith('bin/')).map((p) => p.slice(4)));
  const out: TarEntry[] = [];
  for (const p of list) {
    const name = p.slice(p.lastIndexOf('/') + 1);
    if (p.startsWith('bin/') || inBin.has(name)) continue;
    inBin.add(name);
    out.push({ type: 'symlink', path: `bin/${name}`, target: `/${p}` });
  }
  return out;
}
