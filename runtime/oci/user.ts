/**
 * Resolution of the container's user against the image's own /etc/passwd and /etc/group.
 *
 * The files are read from the container rootfs, which the image author controls: a hostile
 * image can make /etc/passwd a symlink to /etc/shadow (absolute, or ../../..) hoping the
 * runtime reads the host's file. Paths are therefore resolved component by component with
 * the rootfs as "/": absolute links restart at the rootfs, ".." stops at it. The final open
 * uses O_NOFOLLOW|O_NONBLOCK and only a regular file of sane size is read (not a fifo that
 * would block, nor a device that never ends).
 *
 * A user named by the request or the image that does not exist in the image is an
 * InvalidArgumentError: the CRI says the runtime MUST error, the failure is permanent for
 * this request and image (retrying cannot help, unlike FailedPrecondition/Unavailable), and
 * the kubelet shows the message as CreateContainerError either way. The message names the
 * field and the user.
 */
import { constants, promises as fs } from 'node:fs';
import { join } from 'node:path';
import { errnoCode, InvalidArgumentError } from '../errors.js';
import type { LinuxContainerSecurityContext__Output } from '../../proto/gen/runtime/v1/LinuxContainerSecurityContext.js';

/** The identity of the container's first process, also reported in ContainerStatus.user. */
export interface ResolvedUser {
  uid: number;
  gid: number;
  /** Supplementary groups passed to setgroups(2); the primary gid comes first. */
  additionalGids: number[];
  /** The passwd name of uid in the image, when it has one. */
  username?: string;
}

export interface PasswdEntry { name: string; uid: number; gid: number; home: string; shell: string }
export interface GroupEntry { name: string; gid: number; members: string[] }

const MAX_ID = 4294967294; // (uid_t)-1 means "no change" to the kernel
const MAX_FILE = 8 * 1024 * 1024;
const MAX_LINKS = 255;

/**
 * Resolves `path` inside `root` the way the kernel would if `root` were "/": the result never
 * leaves `root`. Missing components are kept as they are (the caller's open reports ENOENT).
 */
export async function resolveInRoot(root: string, path: string): Promise<string> {
  const pending = path.split('/').filter((c) => c !== '' && c !== '.');
  const done: string[] = [];
  let links = 0;
  while (pending.length) {
    const comp = pending.shift()!;
    if (comp === '..') {
      done.pop();
      continue;
    }
    const candidate = join(root, ...done, comp);
    let isLink = false;
    try {
      isLink = (await fs.lstat(candidate)).isSymbolicLink();
    } catch (err) {
      if (errnoCode(err) !== 'ENOENT' && errnoCode(err) !== 'ENOTDIR') throw err;
    }
    if (!isLink) {
      done.push(comp);
      continue;
    }
    if (++links > MAX_LINKS) throw Object.assign(new Error(`too many levels of symbolic links resolving ${path} in ${root}`), { code: 'ELOOP' });
    const target = await fs.readlink(candidate);
    if (target.startsWith('/')) done.length = 0;
    pending.unshift(...target.split('/').filter((c) => c !== '' && c !== '.'));
  }
  return join(root, ...done);
}

/** Reads a small regular file inside `root`; undefined when it does not exist. */
export async function readFileInRoot(root: string, path: string): Promise<string | undefined> {
  const resolved = await resolveInRoot(root, path);
  let fh: fs.FileHandle;
  try {
    fh = await fs.open(resolved, constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  } catch (err) {
    const code = errnoCode(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw new InvalidArgumentError(`${path} in the image is not a regular file`);
    if (st.size > MAX_FILE) throw new InvalidArgumentError(`${path} in the image is larger than ${MAX_FILE} bytes`);
    return await fh.readFile('utf8');
  } finally {
    await fh.close();
  }
}

function parseId(s: string): number | undefined {
  if (!/^\d+$/.test(s)) return undefined;
  const n = Number(s);
  return n <= MAX_ID ? n : undefined;
}

export function parsePasswd(text: string): PasswdEntry[] {
  const out: PasswdEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length < 4) continue;
    const uid = parseId(f[2]);
    const gid = parseId(f[3]);
    if (uid === undefined || gid === undefined) continue;
    out.push({ name: f[0], uid, gid, home: f[5] ?? '', shell: f[6] ?? '' });
  }
  return out;
}

export function parseGroup(text: string): GroupEntry[] {
  const out: GroupEntry[] = [];
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const f = line.split(':');
    if (f.length < 3) continue;
    const gid = parseId(f[2]);
    if (gid === undefined) continue;
    out.push({ name: f[0], gid, members: (f[3] ?? '').split(',').map((m) => m.trim()).filter(Boolean) });
  }
  return out;
}

export interface ResolveUserOptions {
  rootfs: string;
  securityContext: Partial<LinuxContainerSecurityContext__Output> | null | undefined;
  /** The image config's User ("", "name", "uid", "name:group", "uid:gid", ...). */
  imageUser?: string;
  /** See ContainerSpecInput.runAsNonRoot. */
  runAsNonRoot?: boolean;
}

function checkId(value: string, field: string): number {
  const n = parseId(value.trim());
  if (n === undefined) throw new InvalidArgumentError(`${field} ${JSON.stringify(value)} is not a valid id (0..${MAX_ID})`);
  return n;
}

export async function resolveUser(opts: ResolveUserOptions): Promise<ResolvedUser> {
  const sc = opts.securityContext ?? {};
  const runAsUser = sc.run_as_user ? checkId(String(sc.run_as_user.value), 'run_as_user') : undefined;
  const runAsUsername = sc.run_as_username || undefined;
  const runAsGroup = sc.run_as_group ? checkId(String(sc.run_as_group.value), 'run_as_group') : undefined;
  if (runAsUser !== undefined && runAsUsername !== undefined) {
    throw new InvalidArgumentError('run_as_user and run_as_username are both set; only one may be');
  }
  if (runAsGroup !== undefined && runAsUser === undefined && runAsUsername === undefined) {
    throw new InvalidArgumentError('run_as_group is set without run_as_user or run_as_username');
  }

  // The files are read lazily: a numeric user with no group lookups never needs them,
  // and scratch images often have neither.
  let passwd: PasswdEntry[] | undefined;
  let group: GroupEntry[] | undefined;
  const getPasswd = async () => (passwd ??= parsePasswd((await readFileInRoot(opts.rootfs, '/etc/passwd')) ?? ''));
  const getGroup = async () => (group ??= parseGroup((await readFileInRoot(opts.rootfs, '/etc/group')) ?? ''));

  let uid: number;
  let gid: number | undefined;
  let username: string | undefined;

  const byName = async (name: string, field: string): Promise<void> => {
    const e = (await getPasswd()).find((p) => p.name === name);
    if (!e) throw new InvalidArgumentError(`${field}: user ${JSON.stringify(name)} does not exist in the image's /etc/passwd`);
    uid = e.uid;
    gid = e.gid;
    username = e.name;
  };
  const byUid = async (id: number): Promise<void> => {
    uid = id;
    const e = (await getPasswd()).find((p) => p.uid === id);
    gid = e?.gid;
    username = e?.name;
  };

  if (runAsUser !== undefined) {
    // The request's uid replaces the image USER entirely, group part included (as containerd).
    await byUid(runAsUser);
  } else if (runAsUsername !== undefined) {
    await byName(runAsUsername, 'run_as_username');
  } else {
    const spec = (opts.imageUser ?? '').trim();
    const [userPart, groupPart] = spec.includes(':') ? [spec.slice(0, spec.indexOf(':')), spec.slice(spec.indexOf(':') + 1)] : [spec, ''];
    if (userPart === '') {
      await byUid(0);
    } else if (/^\d+$/.test(userPart)) {
      await byUid(checkId(userPart, 'image USER'));
    } else {
      await byName(userPart, 'image USER');
    }
    if (groupPart !== '') {
      if (/^\d+$/.test(groupPart)) {
        gid = checkId(groupPart, 'image USER group');
      } else {
        const g = (await getGroup()).find((e) => e.name === groupPart);
        if (!g) throw new InvalidArgumentError(`image USER: group ${JSON.stringify(groupPart)} does not exist in the image's /etc/group`);
        gid = g.gid;
      }
    }
  }
  if (runAsGroup !== undefined) gid = runAsGroup;
  const primary = gid ?? 0;

  if (opts.runAsNonRoot && uid! === 0) {
    throw new InvalidArgumentError(`runAsNonRoot is set but the container would run as uid 0${username ? ` (${username})` : ''}`);
  }

  const gids: number[] = [primary];
  const add = (g: number) => { if (!gids.includes(g)) gids.push(g); };
  // Merge (the default) adds the image's memberships of the user; Strict uses only the request's.
  const strict = (sc.supplemental_groups_policy as unknown) === 'Strict' || (sc.supplemental_groups_policy as unknown) === 1;
  if (!strict && username !== undefined) {
    for (const g of await getGroup()) if (g.members.includes(username)) add(g.gid);
  }
  for (const g of sc.supplemental_groups ?? []) add(checkId(String(g), 'supplemental_groups'));

  return { uid: uid!, gid: primary, additionalGids: gids, ...(username !== undefined ? { username } : {}) };
}
