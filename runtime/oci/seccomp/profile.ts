/**
 * Seccomp profiles in the Docker/containerd JSON format (names, archMap, includes/excludes by
 * capability and architecture), and their compilation into the OCI `linux.seccomp` object
 * for one architecture and one capability set. Used for corral's built-in RuntimeDefault
 * profile and for Localhost profiles, which are written in either this format or plain OCI.
 */
import { release } from 'node:os';
import { InvalidArgumentError } from '../../errors.js';
import type { OciSeccomp, OciSeccompArg, OciSeccompSyscall, SeccompAction, SeccompOperator } from '../spec/types.js';

export interface ProfileCondition {
  /** Every capability listed must be in the bounding set (includes) / none of them (excludes). */
  caps?: string[];
  /** The native architecture (SCMP_ARCH_*) is one of these. */
  arches?: string[];
  /** "major.minor": the running kernel is at least this version. */
  minKernel?: string;
}

export interface ProfileSyscall {
  names?: string[];
  /** Old single-name form of Docker profiles. */
  name?: string;
  action: SeccompAction;
  errnoRet?: number;
  args?: OciSeccompArg[] | null;
  includes?: ProfileCondition;
  excludes?: ProfileCondition;
  comment?: string;
}

export interface SeccompProfile {
  defaultAction: SeccompAction;
  defaultErrnoRet?: number;
  architectures?: string[];
  archMap?: Array<{ architecture: string; subArchitectures?: string[] | null }>;
  flags?: string[];
  listenerPath?: string;
  syscalls?: ProfileSyscall[] | null;
}

const ACTIONS = new Set<string>([
  'SCMP_ACT_KILL', 'SCMP_ACT_KILL_PROCESS', 'SCMP_ACT_KILL_THREAD', 'SCMP_ACT_TRAP', 'SCMP_ACT_ERRNO',
  'SCMP_ACT_TRACE', 'SCMP_ACT_ALLOW', 'SCMP_ACT_LOG', 'SCMP_ACT_NOTIFY',
]);
const OPERATORS = new Set<string>(['SCMP_CMP_NE', 'SCMP_CMP_LT', 'SCMP_CMP_LE', 'SCMP_CMP_EQ', 'SCMP_CMP_GE', 'SCMP_CMP_GT', 'SCMP_CMP_MASKED_EQ']);

/** Node's process.arch to the libseccomp name of the native architecture. */
export function nativeSeccompArch(nodeArch: string): string | undefined {
  const m: Record<string, string> = {
    x64: 'SCMP_ARCH_X86_64', ia32: 'SCMP_ARCH_X86', arm64: 'SCMP_ARCH_AARCH64', arm: 'SCMP_ARCH_ARM',
    ppc64: 'SCMP_ARCH_PPC64LE', s390x: 'SCMP_ARCH_S390X', riscv64: 'SCMP_ARCH_RISCV64',
    mips64el: 'SCMP_ARCH_MIPSEL64', loong64: 'SCMP_ARCH_LOONGARCH64',
  };
  return m[nodeArch];
}

export function kernelAtLeast(min: string, rel: string): boolean {
  const parse = (s: string) => (/^(\d+)\.(\d+)/.exec(s) ?? ['', '0', '0']).slice(1, 3).map(Number);
  const [a, b] = parse(rel);
  const [x, y] = parse(min);
  return a > x || (a === x && b >= y);
}

export interface CompileOptions {
  /** Node's process.arch of the host. */
  arch: string;
  /** The container's bounding capabilities (CAP_ names). */
  capabilities: readonly string[];
  /** os.release() by default. */
  kernel?: string;
}

function matches(cond: ProfileCondition | undefined, native: string | undefined, caps: ReadonlySet<string>, kernel: string, include: boolean): boolean {
  if (!cond) return true;
  if (include) {
    if (cond.caps?.length && !cond.caps.every((c) => caps.has(c))) return false;
    if (cond.arches?.length && !(native && cond.arches.includes(native))) return false;
    if (cond.minKernel && !kernelAtLeast(cond.minKernel, kernel)) return false;
    return true;
  }
  // excludes: the rule is dropped when any listed condition holds.
  if (cond.caps?.some((c) => caps.has(c))) return false;
  if (native && cond.arches?.includes(native)) return false;
  if (cond.minKernel && kernelAtLeast(cond.minKernel, kernel)) return false;
  return true;
}

/** Checks and flattens a profile into the OCI object the runtime reads. */
export function compileSeccompProfile(profile: SeccompProfile, opts: CompileOptions, what = 'seccomp profile'): OciSeccomp {
  if (!profile || typeof profile !== 'object' || !ACTIONS.has(profile.defaultAction)) {
    throw new InvalidArgumentError(`${what}: defaultAction ${JSON.stringify(profile?.defaultAction)} is not a seccomp action`);
  }
  const native = nativeSeccompArch(opts.arch);
  const caps = new Set(opts.capabilities);
  const kernel = opts.kernel ?? release();

  let architectures: string[] = [];
  if (profile.archMap?.length) {
    const entry = profile.archMap.find((a) => a.architecture === native);
    if (entry) architectures = [entry.architecture, ...(entry.subArchitectures ?? [])];
  } else if (profile.architectures?.length) {
    architectures = [...profile.architectures];
  }

  const syscalls: OciSeccompSyscall[] = [];
  for (const [i, s] of (profile.syscalls ?? []).entries()) {
    const names = s.names?.length ? s.names : s.name ? [s.name] : [];
    if (!names.length) throw new InvalidArgumentError(`${what}: syscall rule ${i} names no syscall`);
    if (!ACTIONS.has(s.action)) throw new InvalidArgumentError(`${what}: syscall rule ${i} (${names[0]}) has unknown action ${JSON.stringify(s.action)}`);
    for (const a of s.args ?? []) {
      if (!OPERATORS.has(a.op)) throw new InvalidArgumentError(`${what}: syscall rule ${i} (${names[0]}) has unknown operator ${JSON.stringify(a.op)}`);
    }
    if (!matches(s.includes, native, caps, kernel, true) || !matches(s.excludes, native, caps, kernel, false)) continue;
    const out: OciSeccompSyscall = { names: [...names], action: s.action };
    if (s.errnoRet !== undefined) out.errnoRet = s.errnoRet;
    if (s.args?.length) out.args = s.args.map((a) => ({ index: a.index, value: a.value, ...(a.valueTwo ? { valueTwo: a.valueTwo } : {}), op: a.op as SeccompOperator }));
    syscalls.push(out);
  }

  const result: OciSeccomp = { defaultAction: profile.defaultAction };
  if (profile.defaultErrnoRet !== undefined) result.defaultErrnoRet = profile.defaultErrnoRet;
  if (architectures.length) result.architectures = architectures;
  if (profile.flags?.length) result.flags = [...profile.flags];
  if (profile.listenerPath) result.listenerPath = profile.listenerPath;
  result.syscalls = syscalls;
  return result;
}
