/**
 * Pinned images (config image.pinned_images): ListImages and ImageStatus report them with
 * pinned=true, and the kubelet's image garbage collector never removes a pinned image.
 * RemoveImage still removes them when asked: pinning protects from GC, not from an operator.
 */
import { repoName, tagRef, tryParseReference } from './reference.js';

/** The names an image answers to: its repo tags and repo digests. */
export interface Pinnable {
  repoTags: readonly string[];
  repoDigests: readonly string[];
}

/**
 * A predicate over images from the configured patterns, in CRI-O's three forms: exact
 * ("registry.k8s.io/pause:3.10"; a short name is normalised as a pull would, so "busybox" means
 * docker.io/library/busybox:latest), glob with a trailing * ("registry.k8s.io/pause:*", compared
 * as written against the normalised names that `crictl images` shows) and keyword ("*pause*",
 * a substring). config.ts refuses a * anywhere else.
 */
export function pinnedMatcher(patterns: readonly string[]): (img: Pinnable) => boolean {
  const exact = new Set<string>();
  const prefixes: string[] = [];
  const keywords: string[] = [];
  for (const p of patterns) {
    if (p.length > 1 && p.startsWith('*') && p.endsWith('*')) keywords.push(p.slice(1, -1));
    else if (p.endsWith('*')) prefixes.push(p.slice(0, -1));
    else exact.add(normalise(p));
  }
  if (exact.size + prefixes.length + keywords.length === 0) return () => false;
  const matches = (name: string) =>
    exact.has(name) || prefixes.some((x) => name.startsWith(x)) || keywords.some((k) => name.includes(k));
  return (img) => img.repoTags.some(matches) || img.repoDigests.some(matches);
}

/** "name:tag" or "name@digest" as the image store records them; the text itself when it is no reference. */
function normalise(p: string): string {
  const r = tryParseReference(p);
  if (!r) return p;
  return r.digest ? `${repoName(r)}@${r.digest}` : tagRef(r) ?? p;
}
