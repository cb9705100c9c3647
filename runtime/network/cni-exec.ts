/**
 * Running one CNI plugin binary per the CNI spec: the network config on stdin, the
 * parameters in CNI_* environment variables, the result (or a CNI error object) on stdout.
 * Plugins are spawned asynchronously with a timeout and the caller's AbortSignal, so a hung
 * plugin costs neither the event loop nor the RPC's deadline.
 */
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { CancelledError, DeadlineExceededError, FailedPreconditionError, InternalError } from '../errors.js';
import { fastSpawnAsync, type FastChild } from '../linux/spawn.js';

export type CniCommand = 'ADD' | 'DEL' | 'CHECK';

/** The CNI error object a plugin prints on failure. */
export interface CniErrorObject { code: number; msg: string; details?: string }

/**
 * A plugin failed. The message carries the plugin's own CNI error (code, msg, details) so
 * the kubelet's event shows what the plugin said.
 */
export class CniPluginError extends InternalError {
  readonly plugin: string;
  readonly command: CniCommand;
  readonly cniCode: number | undefined;
  readonly cniMsg: string;
  readonly cniDetails: string | undefined;
  constructor(plugin: string, network: string, command: CniCommand, err: { code?: number; msg: string; details?: string }) {
    const code = err.code !== undefined ? ` (CNI error code ${err.code})` : '';
    const details = err.details ? `: ${err.details}` : '';
    super(`plugin type="${plugin}" name="${network}" failed (${command.toLowerCase()}): ${err.msg}${details}${code}`);
    this.plugin = plugin;
    this.command = command;
    this.cniCode = err.code;
    this.cniMsg = err.msg;
    this.cniDetails = err.details;
  }
}

export interface ExecRequest {
  /** Absolute path of the plugin binary. */
  path: string;
  /** Plugin type, for messages. */
  plugin: string;
  network: string;
  command: CniCommand;
  containerId: string;
  /** "" when the netns is gone (allowed for DEL). */
  netns: string;
  ifName: string;
  cniArgs: string;
  /** CNI_PATH: the bin dirs, where plugins find their IPAM delegates. */
  cniPath: string[];
  stdin: unknown;
  timeoutMs: number;
  signal?: AbortSignal;
}

/** Runs the plugin; resolves with its parsed stdout (undefined when empty), throws CNI errors. */
export async function execPlugin(req: ExecRequest): Promise<unknown> {
  if (req.signal?.aborted) throw new CancelledError(`CNI ${req.command} of ${req.plugin} cancelled before it started`);
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    CNI_COMMAND: req.command,
    CNI_CONTAINERID: req.containerId,
    CNI_NETNS: req.netns,
    CNI_IFNAME: req.ifName,
    CNI_ARGS: req.cniArgs,
    CNI_PATH: req.cniPath.join(':'),
  };
  // Its own process group, so that a timeout also kills what the plugin started (iptables, an IPAM delegate).
  let child: FastChild;
  try {
    child = await fastSpawnAsync(req.path, [], { env, stdio: ['pipe', 'pipe', 'pipe'], detached: true });
  } catch (err) {
    throw new InternalError(`CNI plugin ${req.plugin}: cannot execute ${req.path}: ${(err as Error).message}`, { cause: err });
  }
  return new Promise((resolve, reject) => {
    const killGroup = (): void => {
      try {
        if (child.pid) process.kill(-child.pid, 'SIGKILL');
      } catch { /* already gone */ }
    };
    const out: Buffer[] = [];
    const errOut: Buffer[] = [];
    let outcome: Error | undefined;
    let settled = false;
    const finish = (fn: () => void): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      req.signal?.removeEventListener('abort', onAbort);
      fn();
    };
    const timer = setTimeout(() => {
      outcome = new DeadlineExceededError(`CNI ${req.command} of plugin ${req.plugin} (network "${req.network}") timed out after ${req.timeoutMs} ms`);
      killGroup();
    }, req.timeoutMs);
    const onAbort = (): void => {
      outcome = new CancelledError(`CNI ${req.command} of plugin ${req.plugin} (network "${req.network}") cancelled`);
      killGroup();
    };
    req.signal?.addEventListener('abort', onAbort, { once: true });
    if (req.signal?.aborted) onAbort(); // while it was being started
    child.stdout!.on('data', (b: Buffer) => out.push(b));
    child.stderr!.on('data', (b: Buffer) => errOut.push(b));
    // A plugin that exits without reading stdin makes the write fail with EPIPE; its exit status tells the story.
    child.stdin!.on('error', () => {});
    child.stdin!.end(JSON.stringify(req.stdin));
    // After a kill, a grandchild may still hold stdout open; the plugin's own exit is enough.
    child.on('exit', () => { if (outcome) finish(() => reject(outcome)); });
    child.on('close', (code: number | null, sig: NodeJS.Signals | null) => finish(() => {
      if (outcome) return reject(outcome);
      const stdout = Buffer.concat(out).toString('utf8').trim();
      const stderr = Buffer.concat(errOut).toString('utf8').trim();
      if (code === 0) {
        if (stdout === '') return resolve(undefined);
        try {
          return resolve(JSON.parse(stdout));
        } catch {
          return reject(new CniPluginError(req.plugin, req.network, req.command, { msg: `invalid JSON on stdout: ${stdout.slice(0, 200)}` }));
        }
      }
      reject(new CniPluginError(req.plugin, req.network, req.command, parseCniError(stdout, stderr, code, sig)));
    }));
  });
}

function parseCniError(stdout: string, stderr: string, code: number | null, sig: NodeJS.Signals | null): { code?: number; msg: string; details?: string } {
  try {
    const e = JSON.parse(stdout) as Partial<CniErrorObject>;
    if (e && typeof e === 'object' && (typeof e.msg === 'string' || typeof e.code === 'number')) {
      return {
        ...(typeof e.code === 'number' ? { code: e.code } : {}),
        msg: typeof e.msg === 'string' ? e.msg : '',
        ...(typeof e.details === 'string' && e.details !== '' ? { details: e.details } : {}),
      };
    }
  } catch { /* not a CNI error object */ }
  const text = stderr || stdout;
  const status = sig ? `killed by ${sig}` : `exit status ${code}`;
  return { msg: text ? `${status}: ${text.slice(0, 1000)}` : status };
}

/**
 * Finds a plugin binary in the bin dirs (first executable match). One stat per dir, made
 * synchronously: a lookup in the inode cache, where a thread-pool round trip per dir and call
 * (two per ADD and DEL of every plugin) cost more than the work. The daemon runs as root, for
 * whom any execute bit makes a file executable.
 */
export async function findPlugin(type: string, binDirs: string[]): Promise<string | undefined> {
  for (const dir of binDirs) {
    const p = join(dir, type);
    try {
      const st = statSync(p, { throwIfNoEntry: false });
      if (st?.isFile() && (st.mode & 0o111) !== 0) return p;
    } catch { /* not a directory, no permission: next dir */ }
  }
  return undefined;
}

/** Like findPlugin, but a missing plugin is a FailedPrecondition naming the dirs searched. */
export async function requirePlugin(type: string, binDirs: string[]): Promise<string> {
  const p = await findPlugin(type, binDirs);
  if (!p) throw new FailedPreconditionError(`CNI plugin "${type}" not found in ${binDirs.join(', ')}`);
  return p;
}
