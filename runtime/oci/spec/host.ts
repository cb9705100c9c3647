/**
 * The real host behind SpecDeps. Facts that cannot change while the daemon runs (its
 * capabilities, limits, LSMs) are read once and cached; paths are stat'ed every time.
 */
import { promises as fs } from 'node:fs';
import type { SpecDeps } from './context.js';
import { capabilityNamesFromMask } from './capabilities.js';

function once<T>(fn: () => Promise<T>): () => Promise<T> {
  let p: Promise<T> | undefined;
  return () => (p ??= fn());
}

async function readOr(path: string, fallback: string): Promise<string> {
  try {
    return await fs.readFile(path, 'utf8');
  } catch {
    return fallback;
  }
}

const hostCapabilities = once(async () => {
  const status = await readOr('/proc/self/status', '');
  const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(status);
  return m ? capabilityNamesFromMask(BigInt('0x' + m[1])) : [];
});

const currentOomScoreAdj = once(async () => {
  const n = Number.parseInt((await readOr('/proc/self/oom_score_adj', '0')).trim(), 10);
  return Number.isFinite(n) ? n : 0;
});

const nofileHardLimit = once(async () => {
  const limits = await readOr('/proc/self/limits', '');
  const m = /^Max open files\s+\S+\s+(\S+)/m.exec(limits);
  if (!m || m[1] === 'unlimited') return Number.MAX_SAFE_INTEGER;
  return Number(m[1]);
});

const apparmorEnabled = once(async () => (await readOr('/sys/module/apparmor/parameters/enabled', 'N')).trim() === 'Y');

const selinuxEnabled = once(async () => {
  try {
    await fs.access('/sys/fs/selinux/enforce');
    return true;
  } catch {
    return false;
  }
});

const swapV1 = once(async () => {
  try {
    await fs.access('/sys/fs/cgroup/memory/memory.memsw.limit_in_bytes');
    return true;
  } catch {
    return false;
  }
});

export function hostSpecDeps(): SpecDeps {
  return {
    stat: (p) => fs.stat(p),
    lstat: (p) => fs.lstat(p),
    realpath: (p) => fs.realpath(p),
    readdir: (p) => fs.readdir(p),
    readFile: (p) => fs.readFile(p, 'utf8'),
    hostCapabilities,
    currentOomScoreAdj,
    nofileHardLimit,
    apparmorEnabled,
    // The list changes when profiles are loaded, so it is read each time it is needed.
    apparmorProfiles: async () => (await readOr('/sys/kernel/security/apparmor/profiles', ''))
      .split('\n').map((l) => l.replace(/\s+\((enforce|complain|kill|unconfined|prompt)\)$/, '').trim()).filter(Boolean),
    selinuxEnabled,
    // cgroup v2 accounts swap whenever the kernel has swap support (memory.swap.max); every
    // kernel that boots with the unified hierarchy ships it, so only v1 needs a check.
    swapAccounting: async (mode) => (mode === 'v2' ? true : swapV1()),
    arch: process.arch,
  };
}
