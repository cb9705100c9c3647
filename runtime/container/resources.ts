/**
 * CRI LinuxContainerResources -> OCI linux.resources, for `<runtime> update`. Zero means
 * "not set" in CRI, so zero fields are left out (the runtime keeps the current value).
 * cpu.shares stays shares on v2 too: runc and crun convert it to cpu.weight themselves.
 */
import type { OciResources } from '../oci/spec/types.js';
import type { CriResourcesIn } from '../cgroups/validate.js';

/** The CRI message's fields as the request carries them (checked by cgroups/validate.ts). */
export type CriLinuxResources = CriResourcesIn;

function num(v: string | number | undefined | null): number {
  if (v === undefined || v === null || v === '') return 0;
  const n = Number(v);
  return Number.isFinite(n) ? n : 0;
}

export function ociResourcesFromCri(r: CriLinuxResources | null | undefined): OciResources {
  const out: OciResources = {};
  if (!r) return out;
  const cpu: NonNullable<OciResources['cpu']> = {};
  if (num(r.cpu_shares) > 0) cpu.shares = num(r.cpu_shares);
  if (num(r.cpu_quota) !== 0) cpu.quota = num(r.cpu_quota);
  if (num(r.cpu_period) > 0) cpu.period = num(r.cpu_period);
  if (r.cpuset_cpus) cpu.cpus = r.cpuset_cpus;
  if (r.cpuset_mems) cpu.mems = r.cpuset_mems;
  if (Object.keys(cpu).length) out.cpu = cpu;
  const memory: NonNullable<OciResources['memory']> = {};
  if (num(r.memory_limit_in_bytes) > 0) memory.limit = num(r.memory_limit_in_bytes);
  if (num(r.memory_swap_limit_in_bytes) !== 0) memory.swap = num(r.memory_swap_limit_in_bytes);
  if (Object.keys(memory).length) out.memory = memory;
  const huge = (r.hugepage_limits ?? []).filter((h) => h.page_size).map((h) => ({ pageSize: h.page_size!, limit: num(h.limit) }));
  if (huge.length) out.hugepageLimits = huge;
  if (r.unified && Object.keys(r.unified).length) out.unified = { ...r.unified };
  return out;
}

/** Overlays the non-zero fields of `next` on `prev` (an update names only what changes). */
export function mergeCriResources(prev: CriLinuxResources | null | undefined, next: CriLinuxResources | null | undefined): CriLinuxResources {
  const out: CriLinuxResources = { ...(prev ?? {}) };
  for (const [k, v] of Object.entries(next ?? {})) {
    if (v === undefined || v === null || v === '' || v === '0' || v === 0) continue;
    if (Array.isArray(v) && v.length === 0) continue;
    if (typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length === 0) continue;
    (out as Record<string, unknown>)[k] = v;
  }
  return out;
}
