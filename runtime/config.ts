/**
 * corral's configuration: TOML at /etc/corral/corral.toml (a missing file means the
 * embedded defaults), overridden by CLI flags. Every key is declared once in SCHEMA
 * with its type and default; an unknown key or a wrong type is a startup error that
 * names the key, the file and the expected type.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseToml, stringify as stringifyToml } from 'smol-toml';
import { InvalidArgumentError, isENOENT } from './errors.js';

export const DEFAULT_CONFIG_PATH = '/etc/corral/corral.toml';

export interface RuntimeHandlerConfig {
  /** Path of the OCI runtime binary (crun, runc). */
  path: string;
  /** --root of the OCI runtime: where it keeps its container state ("" = <state_dir>/<name>). */
  root: string;
  /** Extra global arguments passed before the command. */
  options: string[];
  /** Monitor cgroup and privileged defaults are shared; only the binary differs. */
}

export interface RegistryConfig {
  /** Endpoints tried in order before the registry itself, e.g. "http://127.0.0.1:5000". */
  mirrors: string[];
  /** Allow plain HTTP and unverified TLS for this registry. */
  insecure: boolean;
  /** Extra CA bundle (PEM) trusted for this registry. */
  ca_file: string;
}

export interface Config {
  socket: string;
  root_dir: string;
  state_dir: string;
  log_level: 'error' | 'warn' | 'info' | 'debug';
  log_format: 'text' | 'json';
  /** "auto" picks systemd when systemd is PID 1, else cgroupfs. */
  cgroup_driver: 'auto' | 'cgroupfs' | 'systemd';
  conmon: string;
  /** Cgroup (cgroupfs path) that conmon processes are moved into; "" leaves them where they start. */
  conmon_cgroup: string;
  default_runtime: string;
  runtimes: Record<string, RuntimeHandlerConfig>;
  /** Seconds in-flight RPCs get to finish on SIGTERM. */
  shutdown_grace_seconds: number;
  /** Cap on a container's CRI log file in bytes (conmon rotates nothing; it stops writing at the cap). -1: no cap. */
  log_size_max: number;
  cni: {
    conf_dir: string;
    bin_dirs: string[];
    /** Where the ADD results are kept so DEL works after restarts and reboots ("" = <root_dir>/cni). */
    cache_dir: string;
  };
  streaming: {
    address: string;
    /** 0 chooses a free port at start. */
    port: number;
    tls_cert: string;
    tls_key: string;
    /**
     * An exec/attach/port-forward session with no traffic in either direction for this many
     * seconds is closed (the kubelet's StreamIdleTimeout, 4 h by default); keep-alive pings are
     * not traffic (server/streaming/idle.ts). 0: never.
     */
    idle_timeout_seconds: number;
  };
  registries: Record<string, RegistryConfig>;
  pull: {
    /** A pull that receives no bytes for this many seconds is cancelled. */
    progress_timeout_seconds: number;
    max_concurrent_downloads: number;
  };
  pod: {
    /** Size of each pod's /dev/shm in bytes. */
    shm_size: number;
    /** Binary that holds a shared pid namespace (pause mode). */
    infra_command: string[];
  };
  metrics: {
    /** host:port of the Prometheus endpoint; "" turns it off. */
    address: string;
  };
  /** Starts slower than this (ms) get a debug line naming their slowest phase. */
  slow_start_threshold_ms: number;
  cgroups: {
    /**
     * A limit whose controller is missing where the OCI runtime writes limits (hugetlb on a
     * hybrid host, cpuset in a v2 guest): "drop" leaves it out with a warning in the log, as
     * containerd does; "fail" refuses the create with FailedPrecondition.
     */
    unenforceable_limits: 'drop' | 'fail';
    /** containerd's key: never pass hugepage limits on, even where hugetlb is available. */
    disable_hugetlb_controller: boolean;
  };
  image: {
    /**
     * Images reported as pinned (the kubelet's image GC never removes them), matched against
     * every repo tag and repo digest: "registry.k8s.io/pause:3.10" (exact; short names are
     * normalised, "busybox" is docker.io/library/busybox:latest), "registry.k8s.io/pause*"
     * (glob: the name starts with the text before the trailing *) or "*pause*" (keyword: the
     * name contains it). A * anywhere else is a startup error.
     */
    pinned_images: string[];
  };
}

type Leaf = 'string' | 'integer' | 'boolean' | 'string[]';
interface EnumLeaf { enum: readonly string[] }
type Schema = Leaf | EnumLeaf | { table: Record<string, Schema> } | { map: Schema };

const handlerSchema: Schema = { table: { path: 'string', root: 'string', options: 'string[]' } };
const registrySchema: Schema = { table: { mirrors: 'string[]', insecure: 'boolean', ca_file: 'string' } };

export const SCHEMA: { table: Record<keyof Config, Schema> } = {
  table: {
    socket: 'string',
    root_dir: 'string',
    state_dir: 'string',
    log_level: { enum: ['error', 'warn', 'info', 'debug'] },
    log_format: { enum: ['text', 'json'] },
    cgroup_driver: { enum: ['auto', 'cgroupfs', 'systemd'] },
    conmon: 'string',
    conmon_cgroup: 'string',
    default_runtime: 'string',
    runtimes: { map: handlerSchema },
    shutdown_grace_seconds: 'integer',
    log_size_max: 'integer',
    cni: { table: { conf_dir: 'string', bin_dirs: 'string[]', cache_dir: 'string' } },
    streaming: { table: { address: 'string', port: 'integer', tls_cert: 'string', tls_key: 'string', idle_timeout_seconds: 'integer' } },
    registries: { map: registrySchema },
    pull: { table: { progress_timeout_seconds: 'integer', max_concurrent_downloads: 'integer' } },
    pod: { table: { shm_size: 'integer', infra_command: 'string[]' } },
    metrics: { table: { address: 'string' } },
    slow_start_threshold_ms: 'integer',
    cgroups: { table: { unenforceable_limits: { enum: ['drop', 'fail'] }, disable_hugetlb_controller: 'boolean' } },
    image: { table: { pinned_images: 'string[]' } },
  },
};

export function defaultConfig(): Config {
  return {
    socket: '/run/corral/corral.sock',
    root_dir: '/var/lib/corral',
    state_dir: '/run/corral',
    log_level: 'info',
    log_format: 'text',
    cgroup_driver: 'auto',
    conmon: '/usr/bin/conmon',
    conmon_cgroup: '',
    default_runtime: 'crun',
    runtimes: {
      crun: { path: '/usr/bin/crun', root: '', options: [] },
      runc: { path: '/usr/sbin/runc', root: '', options: [] },
    },
    shutdown_grace_seconds: 10,
    log_size_max: -1,
    cni: {
      conf_dir: '/etc/cni/net.d',
      bin_dirs: ['/opt/cni/bin', '/usr/lib/cni'],
      cache_dir: '',
    },
    streaming: { address: '127.0.0.1', port: 0, tls_cert: '', tls_key: '', idle_timeout_seconds: 4 * 60 * 60 },
    registries: {},
    pull: { progress_timeout_seconds: 60, max_concurrent_downloads: 4 },
    pod: { shm_size: 64 * 1024 * 1024, infra_command: ['/usr/bin/catatonit', '-P'] },
    metrics: { address: '' },
    slow_start_threshold_ms: 2000,
    cgroups: { unenforceable_limits: 'drop', disable_hugetlb_controller: false },
    image: { pinned_images: [] },
  };
}

function describe(s: Schema): string {
  if (typeof s === 'string') return s === 'string[]' ? 'array of strings' : s;
  if ('enum' in s) return `one of ${s.enum.map((v) => JSON.stringify(v)).join(', ')}`;
  return 'table';
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Date);
}

/** Checks `value` against `schema`; merges it over `base` (defaults). Throws naming key and file. */
function merge(schema: Schema, base: unknown, value: unknown, key: string, file: string): unknown {
  const fail = (): never => {
    throw new InvalidArgumentError(`config ${file}: key "${key}" must be ${describe(schema)}, got ${JSON.stringify(value)}`);
  };
  if (typeof schema === 'string') {
    switch (schema) {
      case 'string': if (typeof value !== 'string') fail(); return value;
      case 'boolean': if (typeof value !== 'boolean') fail(); return value;
      case 'integer': {
        if (typeof value === 'bigint') return Number(value);
        if (typeof value !== 'number' || !Number.isInteger(value)) fail();
        return value;
      }
      case 'string[]': if (!Array.isArray(value) || value.some((x) => typeof x !== 'string')) fail(); return value;
    }
  }
  if ('enum' in schema) {
    if (typeof value !== 'string' || !schema.enum.includes(value)) fail();
    return value;
  }
  if (!isPlainObject(value)) fail();
  const obj = value as Record<string, unknown>;
  if ('table' in schema) {
    const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
    for (const [k, v] of Object.entries(obj)) {
      const sub = schema.table[k];
      const path = key ? `${key}.${k}` : k;
      if (!sub) throw new InvalidArgumentError(`config ${file}: unknown key "${path}"`);
      out[k] = merge(sub, out[k], v, path, file);
    }
    return out;
  }
  // map: name -> entry; an entry merges over the default entry of the same name, if any.
  const out: Record<string, unknown> = { ...(base as Record<string, unknown>) };
  for (const [k, v] of Object.entries(obj)) {
    const entryBase = (out[k] as Record<string, unknown> | undefined) ?? emptyOf(schema.map);
    out[k] = merge(schema.map, entryBase, v, `${key}.${k}`, file);
  }
  return out;
}

function emptyOf(s: Schema): unknown {
  if (typeof s === 'string') return s === 'string' ? '' : s === 'integer' ? 0 : s === 'boolean' ? false : [];
  if ('enum' in s) return s.enum[0];
  if ('table' in s) return Object.fromEntries(Object.entries(s.table).map(([k, v]) => [k, emptyOf(v)]));
  return {};
}

/** Parses TOML text over the defaults. `file` only names the source in errors. */
export function parseConfig(text: string, file: string, base: Config = defaultConfig()): Config {
  let raw: unknown;
  try {
    raw = parseToml(text);
  } catch (err) {
    throw new InvalidArgumentError(`config ${file}: ${(err as Error).message}`);
  }
  const cfg = merge(SCHEMA, base, raw, '', file) as Config;
  validate(cfg, file);
  return cfg;
}

function validate(cfg: Config, file: string): void {
  if (!cfg.runtimes[cfg.default_runtime]) {
    throw new InvalidArgumentError(
      `config ${file}: key "default_runtime" names "${cfg.default_runtime}", which is not in [runtimes] (${Object.keys(cfg.runtimes).join(', ')})`,
    );
  }
  for (const [name, reg] of Object.entries(cfg.registries)) {
    for (const m of reg.mirrors) {
      if (!/^https?:\/\/[^/]+/.test(m)) {
        throw new InvalidArgumentError(`config ${file}: key "registries.${name}.mirrors" must hold http(s) URLs, got ${JSON.stringify(m)}`);
      }
    }
  }
  for (const p of cfg.image.pinned_images) {
    if (!p || /\*./.test(p.replace(/^\*(?=.*\*$)/, ''))) {
      throw new InvalidArgumentError(`config ${file}: key "image.pinned_images" holds ${JSON.stringify(p)}: a pattern is a name, a name ending in *, or *keyword*`);
    }
  }
  if (cfg.streaming.port < 0 || cfg.streaming.port > 65535) {
    throw new InvalidArgumentError(`config ${file}: key "streaming.port" must be 0..65535`);
  }
  if (cfg.streaming.idle_timeout_seconds < 0) {
    throw new InvalidArgumentError(`config ${file}: key "streaming.idle_timeout_seconds" must be >= 0 (0 turns the idle timeout off)`);
  }
}

/** Loads the file (missing = defaults) and applies CLI overrides (dotted keys, already typed). */
export function loadConfig(path: string, overrides: Record<string, unknown> = {}, requireFile = false): Config {
  let cfg = defaultConfig();
  try {
    cfg = parseConfig(readFileSync(path, 'utf8'), path);
  } catch (err) {
    if (!isENOENT(err) || requireFile) {
      if (isENOENT(err)) throw new InvalidArgumentError(`config file ${path} does not exist`);
      throw err;
    }
  }
  for (const [dotted, value] of Object.entries(overrides)) {
    const nested: Record<string, unknown> = {};
    let cur = nested;
    const parts = dotted.split('.');
    parts.slice(0, -1).forEach((p) => { cur = (cur[p] = {}) as Record<string, unknown>; });
    cur[parts[parts.length - 1]!] = value;
    cfg = merge(SCHEMA, cfg, nested, '', 'command line') as Config;
  }
  validate(cfg, path);
  return withDerivedPaths(cfg);
}

/**
 * Paths left empty follow root_dir / state_dir, so that moving those two (as tests and
 * multi-instance setups do) moves everything and two daemons never share runtime state.
 */
export function withDerivedPaths(cfg: Config): Config {
  const runtimes = Object.fromEntries(
    Object.entries(cfg.runtimes).map(([name, h]) => [name, { ...h, root: h.root || join(cfg.state_dir, name) }]),
  );
  return { ...cfg, runtimes, cni: { ...cfg.cni, cache_dir: cfg.cni.cache_dir || join(cfg.root_dir, 'cni') } };
}

export function configToToml(cfg: Config): string {
  return stringifyToml(cfg as unknown as Record<string, unknown>);
}
