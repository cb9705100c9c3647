/**
 * Network configuration: which CNI network a pod joins. libcni's rule is followed: the first
 * file (.conflist, .conf, .json) of the conf dir in lexical order is the network. A file that
 * does not parse is an error rather than skipped, so that a broken config is visible in
 * NetworkReady instead of silently falling through to the next file. When the conf dir has no
 * config at all, corral writes its own default (bridge + portmap) under its root dir, so a
 * freshly installed node runs pods without any CNI setup.
 */
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { InvalidArgumentError, errorMessage, isENOENT } from '../errors.js';
import { writeFileAtomic } from '../state/store.js';

/** One plugin entry of a network config list; unknown keys pass through to the plugin. */
export interface PluginConf {
  type: string;
  capabilities?: Record<string, boolean>;
  ipam?: { type?: string; [k: string]: unknown };
  [k: string]: unknown;
}

/** A network config list, normalised (a single-plugin .conf becomes a one-element list). */
export interface NetworkConfList {
  cniVersion: string;
  name: string;
  disableCheck?: boolean;
  plugins: PluginConf[];
}

export interface LoadedNetwork {
  conf: NetworkConfList;
  /** The file it came from. */
  file: string;
  /** True when it is corral's embedded default. */
  isDefault: boolean;
}

export const CONF_EXTENSIONS = ['.conflist', '.conf', '.json'];
export const DEFAULT_NETWORK_NAME = 'corral';
export const DEFAULT_BRIDGE = 'corral0';
export const DEFAULT_CONF_FILE = '10-corral.conflist';

/** Parses and validates a config file's text. Throws InvalidArgumentError naming the file. */
export function parseNetworkConf(text: string, file: string): NetworkConfList {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new InvalidArgumentError(`CNI config ${file}: invalid JSON: ${errorMessage(err)}`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new InvalidArgumentError(`CNI config ${file}: not a JSON object`);
  }
  const obj = raw as Record<string, unknown>;
  const fail = (what: string): never => { throw new InvalidArgumentError(`CNI config ${file}: ${what}`); };
  if (typeof obj.name !== 'string' || obj.name === '') fail('"name" is missing');
  const cniVersion = typeof obj.cniVersion === 'string' && obj.cniVersion !== '' ? obj.cniVersion : '0.1.0';
  let plugins: unknown[];
  if ('plugins' in obj) {
    if (!Array.isArray(obj.plugins) || obj.plugins.length === 0) fail('"plugins" must be a non-empty array');
    plugins = obj.plugins as unknown[];
  } else {
    // A single-plugin .conf: the plugin's keys sit at the top level beside name and cniVersion.
    const { name: _n, cniVersion: _v, ...plugin } = obj;
    plugins = [plugin];
  }
  plugins.forEach((p, i) => {
    if (typeof p !== 'object' || p === null || Array.isArray(p)) fail(`plugins[${i}] is not an object`);
    const t = (p as Record<string, unknown>).type;
    if (typeof t !== 'string' || t === '') fail(`plugins[${i}] has no "type"`);
    // The type names a binary in the bin dirs; a path would escape them.
    if ((t as string).includes('/')) fail(`plugins[${i}].type ${JSON.stringify(t)} must be a plain name`);
    const ipam = (p as Record<string, unknown>).ipam;
    if (ipam !== undefined) {
      const it = (ipam as Record<string, unknown> | null)?.type;
      if (typeof it === 'string' && it.includes('/')) fail(`plugins[${i}].ipam.type ${JSON.stringify(it)} must be a plain name`);
    }
  });
  return {
    cniVersion,
    name: obj.name as string,
    ...(obj.disableCheck === true ? { disableCheck: true } : {}),
    plugins: plugins as PluginConf[],
  };
}

/** Config files of a dir in lexical order; a missing dir is empty. */
export async function listConfFiles(dir: string): Promise<string[]> {
  let names: string[];
  try {
    names = await fs.readdir(dir);
  } catch (err) {
    if (isENOENT(err) || (err as { code?: string }).code === 'ENOTDIR') return [];
    throw err;
  }
  return names
    .filter((n) => CONF_EXTENSIONS.some((ext) => n.endsWith(ext)) && !n.startsWith('.'))
    .sort()
    .map((n) => join(dir, n));
}

export interface Route { dest: string; prefix: number; dev: string }

/** IPv4 routes from /proc/net/route's text (little-endian hex addresses and masks). */
export function parseProcNetRoute(text: string): Route[] {
  const out: Route[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 8) continue;
    const dest = hexLeToIp(f[1]!);
    const mask = parseInt(f[7]!, 16);
    if (dest === undefined || Number.isNaN(mask)) continue;
    // The mask is stored little-endian too; its popcount is the prefix length.
    let prefix = 0;
    for (let m = mask >>> 0; m; m >>>= 1) prefix += m & 1;
    out.push({ dest, prefix, dev: f[0]! });
  }
  return out;
}

function hexLeToIp(hex: string): string | undefined {
  if (!/^[0-9a-fA-F]{8}$/.test(hex)) return undefined;
  const n = parseInt(hex, 16);
  return [n & 0xff, (n >>> 8) & 0xff, (n >>> 16) & 0xff, (n >>> 24) & 0xff].join('.');
}

function ipToInt(ip: string): number {
  return ip.split('.').reduce((acc, o) => ((acc << 8) | Number(o)) >>> 0, 0);
}

function overlaps(a: string, aPrefix: number, b: string, bPrefix: number): boolean {
  const p = Math.min(aPrefix, bPrefix);
  if (p === 0) return true;
  const mask = p === 32 ? 0xffffffff : (~((1 << (32 - p)) - 1)) >>> 0;
  return ((ipToInt(a) & mask) >>> 0) === ((ipToInt(b) & mask) >>> 0);
}

/** Private /16s tried in order for the default network. */
export const DEFAULT_SUBNET_CANDIDATES = [
  '10.88.0.0/16', '10.89.0.0/16', '10.90.0.0/16', '10.91.0.0/16', '10.92.0.0/16',
  '172.30.0.0/16', '172.31.0.0/16', '192.168.0.0/16',
];

/**
 * The first candidate that overlaps no host route. The default route (0/0) overlaps
 * everything and is ignored, and so are routes on corral's own bridge (left from a
 * previous default).
 */
export function chooseDefaultSubnet(routes: Route[], candidates = DEFAULT_SUBNET_CANDIDATES): string {
  for (const c of candidates) {
    const [net, len] = c.split('/') as [string, string];
    const clash = routes.some((r) => r.prefix > 0 && r.dev !== DEFAULT_BRIDGE && overlaps(net, Number(len), r.dest, r.prefix));
    if (!clash) return c;
  }
  throw new InvalidArgumentError(`no free private subnet for the default CNI network: every candidate (${candidates.join(', ')}) overlaps a host route`);
}

/** corral's default network: a bridge with host-local IPAM, masquerading, and portmap. */
export function defaultNetworkConf(subnet: string, ipamDataDir: string): NetworkConfList {
  return {
    cniVersion: '1.0.0',
    name: DEFAULT_NETWORK_NAME,
    plugins: [
      {
        type: 'bridge',
        bridge: DEFAULT_BRIDGE,
        isGateway: true,
        ipMasq: true,
        // Lets a pod reach itself through a Service IP that DNATs back to it.
        hairpinMode: true,
        ipam: {
          type: 'host-local',
          ranges: [[{ subnet }]],
          routes: [{ dst: '0.0.0.0/0' }],
          dataDir: ipamDataDir,
        },
      },
      { type: 'portmap', capabilities: { portMappings: true } },
    ],
  };
}

/**
 * The default network with the node's pod CIDR (UpdateRuntimeConfig) in place of its private
 * range, so that pod IPs are the ones the cluster routes to this node. Done by rewriting the
 * ranges, as containerd renders its template, rather than through the ipRanges capability:
 * host-local adds runtime ranges to the configured ones, giving each pod an address from both,
 * and the bridge plugin then refuses a second gateway address.
 */
export function withPodCidr(conf: NetworkConfList, podCidr: string, bridge: string): NetworkConfList {
  const cidrs = podCidr.split(',').map((c) => c.trim()).filter(Boolean);
  if (cidrs.length === 0) return conf;
  const v6 = cidrs.some((c) => c.includes(':'));
  return {
    ...conf,
    plugins: conf.plugins.map((p) => (p.type === 'bridge' && p.ipam?.type === 'host-local'
      ? {
          ...p,
          // One bridge per range (pod-cidr.ts): the pods on the previous range keep theirs.
          bridge,
          ipam: {
            ...p.ipam,
            ranges: cidrs.map((subnet) => [{ subnet }]),
            routes: [{ dst: '0.0.0.0/0' }, ...(v6 ? [{ dst: '::/0' }] : [])],
          },
        }
      : p)),
  };
}

/**
 * Writes the default config into `dir` unless a file is already there (its subnet must not
 * change under existing IP allocations). Returns the file's path.
 */
export async function ensureDefaultConf(dir: string, ipamDataDir: string, routeFile = '/proc/net/route'): Promise<string> {
  const file = join(dir, DEFAULT_CONF_FILE);
  try {
    await fs.access(file);
    return file;
  } catch (err) {
    if (!isENOENT(err)) throw err;
  }
  let routes: Route[] = [];
  try {
    routes = parseProcNetRoute(await fs.readFile(routeFile, 'utf8'));
  } catch { /* no route table readable: take the first candidate */ }
  const conf = defaultNetworkConf(chooseDefaultSubnet(routes), ipamDataDir);
  await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  await writeFileAtomic(file, JSON.stringify(conf, null, 2) + '\n');
  return file;
}

/**
 * Loads the network: the first file of confDir, else the default in defaultDir (written
 * when absent). Parse errors propagate.
 */
export async function loadNetwork(opts: { confDir: string; defaultDir: string; ipamDataDir: string; routeFile?: string }): Promise<LoadedNetwork> {
  const files = await listConfFiles(opts.confDir);
  if (files.length > 0) {
    const file = files[0]!;
    return { conf: parseNetworkConf(await fs.readFile(file, 'utf8'), file), file, isDefault: false };
  }
  const file = await ensureDefaultConf(opts.defaultDir, opts.ipamDataDir, opts.routeFile);
  return { conf: parseNetworkConf(await fs.readFile(file, 'utf8'), file), file, isDefault: true };
}

/** The loopback network every pod gets on "lo", as the kubelet's runtimes do. */
export function loopbackNetworkConf(): NetworkConfList {
  return { cniVersion: '1.0.0', name: 'cni-loopback', plugins: [{ type: 'loopback' }] };
}

/** Binaries a network needs: each plugin's type and its IPAM plugin's type. */
export function requiredBinaries(conf: NetworkConfList): string[] {
  const out = new Set<string>();
  for (const p of conf.plugins) {
    out.add(p.type);
    if (p.ipam && typeof p.ipam.type === 'string' && p.ipam.type !== '') out.add(p.ipam.type);
  }
  return [...out];
}
