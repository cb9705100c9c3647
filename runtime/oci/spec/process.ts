/**
 * The container's process: command line, environment, working directory, terminal, user,
 * rlimits, no_new_privs; and the process object of `runtime exec --process`.
 */
import { isAbsolute } from 'node:path';
import { InvalidArgumentError } from '../../errors.js';
import { resolveUser } from '../user.js';
import type { SpecContext, SpecOpt } from './context.js';
import { imageRuntimeConfig, securityContext } from './context.js';
import type { OciProcess, OciSpec } from './types.js';

export const DEFAULT_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
/** CRI-O's default open-file limit for containers. */
export const DEFAULT_NOFILE = 1048576;

/**
 * The kubelet's rule (and Docker's): `command` replaces the image Entrypoint and then the image
 * Cmd is dropped too; `args` alone replaces only Cmd.
 */
export function containerArgs(command: readonly string[], args: readonly string[], entrypoint: readonly string[], cmd: readonly string[]): string[] {
  if (command.length) return [...command, ...args];
  return [...entrypoint, ...(args.length ? args : cmd)];
}

function envKey(entry: string): string {
  const i = entry.indexOf('=');
  return i < 0 ? entry : entry.slice(0, i);
}

/** Later lists override earlier ones key by key; an overridden key keeps its first position. */
export function overlayEnv(...lists: ReadonlyArray<readonly string[]>): string[] {
  const m = new Map<string, string>();
  for (const list of lists) for (const e of list) m.set(envKey(e), e);
  return [...m.values()];
}

/** KeyValue.value is bytes in this CRI version; older callers may hand a string. */
function kvValue(v: unknown): string {
  if (typeof v === 'string') return v;
  if (v instanceof Uint8Array) return Buffer.from(v).toString('utf8');
  return v === undefined || v === null ? '' : String(v);
}

export const withProcess: SpecOpt = async (spec, ctx: SpecContext) => {
  const { config } = ctx.input;
  const img = imageRuntimeConfig(ctx.input);
  const args = containerArgs(config.command ?? [], config.args ?? [], img.Entrypoint ?? [], img.Cmd ?? []);
  if (!args.length) throw new InvalidArgumentError(`container ${config.metadata?.name ?? ctx.input.containerId}: no command specified (neither the request nor image ${ctx.input.image.id} has one)`);
  spec.process.args = args;

  const criEnv = (config.envs ?? []).map((kv) => `${kv.key}=${kvValue(kv.value)}`);
  // HOSTNAME goes first so that the image or the request can still set their own (as containerd).
  const base = ctx.input.sandbox.hostname ? [`HOSTNAME=${ctx.input.sandbox.hostname}`] : [];
  let env = overlayEnv(base, img.Env ?? [], criEnv);
  if (!env.some((e) => envKey(e) === 'PATH')) env = [...env, `PATH=${DEFAULT_PATH}`];
  spec.process.env = env;

  const cwd = config.working_dir || img.WorkingDir || '/';
  if (!isAbsolute(cwd)) throw new InvalidArgumentError(`working directory ${JSON.stringify(cwd)} is not an absolute path`);
  spec.process.cwd = cwd;
  spec.process.terminal = config.tty === true;

  const sc = securityContext(ctx.input);
  if (sc.no_new_privs) spec.process.noNewPrivileges = true;

  // Raising a hard limit above the daemon's own needs CAP_SYS_RESOURCE, which not every
  // host gives the daemon; the runtime's setrlimit would then fail the container.
  const hard = await ctx.deps.nofileHardLimit();
  const nofile = Math.min(DEFAULT_NOFILE, hard);
  if (nofile < DEFAULT_NOFILE) ctx.warnings.push(`RLIMIT_NOFILE lowered from ${DEFAULT_NOFILE} to the daemon's hard limit ${nofile}`);
  spec.process.rlimits = [{ type: 'RLIMIT_NOFILE', hard: nofile, soft: nofile }];
};

export const withUser: SpecOpt = async (spec, ctx: SpecContext) => {
  const user = await resolveUser({
    rootfs: ctx.input.rootfs,
    securityContext: securityContext(ctx.input),
    imageUser: imageRuntimeConfig(ctx.input).User,
    runAsNonRoot: ctx.input.runAsNonRoot,
  });
  ctx.user = user;
  spec.process.user = { uid: user.uid, gid: user.gid, additionalGids: [...user.additionalGids] };
};

/**
 * The process for `runtime exec --process`: the container's user, environment, working
 * directory, capabilities and LSM labels with another command line.
 */
export function buildExecProcess(spec: OciSpec, cmd: string[], tty: boolean): OciProcess {
  if (!cmd.length) throw new InvalidArgumentError('exec: empty command');
  const p = structuredClone(spec.process);
  p.args = [...cmd];
  p.terminal = tty;
  return p;
}
