/** The platform this host runs and the choice of one manifest out of a multi-platform index. */
import { NotFoundError } from '../errors.js';

export interface Platform {
  os: string;
  architecture: string;
  variant?: string;
}

export interface PlatformDescriptor {
  mediaType?: string;
  digest: string;
  size?: number;
  platform?: Platform & { 'os.version'?: string };
  annotations?: Record<string, string>;
}

/** Node's process.arch in GOARCH terms (what image indexes use). */
export function hostPlatform(): Platform {
  const map: Record<string, string> = { x64: 'amd64', arm64: 'arm64', arm: 'arm', ia32: '386', ppc64: 'ppc64le', s390x: 's390x', riscv64: 'riscv64', loong64: 'loong64', mips: 'mips', mipsel: 'mipsle' };
  const architecture = map[process.arch] ?? process.arch;
  if (architecture === 'arm64') return { os: 'linux', architecture, variant: 'v8' };
  if (architecture === 'arm') {
    const v = (process.config.variables as Record<string, unknown>).arm_version;
    return { os: 'linux', architecture, variant: `v${typeof v === 'string' || typeof v === 'number' ? v : '7'}` };
  }
  return { os: 'linux', architecture };
}

export function formatPlatform(p: Platform | undefined): string {
  if (!p) return 'unknown';
  return [p.os, p.architecture, p.variant].filter(Boolean).join('/');
}

/** How well a descriptor's platform fits: -1 not at all; higher is better. */
function score(p: Platform | undefined, want: Platform): number {
  if (!p || p.os !== want.os || p.architecture !== want.architecture) return -1;
  const v = p.variant ?? '';
  const w = want.variant ?? '';
  if (v === w) return 2;
  // arm64 images rarely state "v8"; treat an absent variant as the baseline variant.
  if (want.architecture === 'arm64' && (v === '' || v === 'v8') && (w === '' || w === 'v8')) return 2;
  if (v === '') return 1;
  // An armv7 host runs armv6 and armv5 images.
  if (want.architecture === 'arm' && /^v\d$/.test(v) && /^v\d$/.test(w) && v < w) return 0.5;
  return -1;
}

/** Picks the manifest for `want`; NotFound listing the platforms the index has. */
export function selectPlatform(manifests: PlatformDescriptor[], want: Platform, ref: string): PlatformDescriptor {
  let best: PlatformDescriptor | undefined;
  let bestScore = -1;
  for (const m of manifests) {
    const s = score(m.platform, want);
    if (s > bestScore) {
      best = m;
      bestScore = s;
    }
  }
  if (!best) {
    const have = manifests
      .filter((m) => m.platform && m.platform.os !== 'unknown')
      .map((m) => formatPlatform(m.platform));
    throw new NotFoundError(`image "${ref}" has no manifest for platform ${formatPlatform(want)}; it has: ${[...new Set(have)].join(', ') || 'none'}`);
  }
  return best;
}
