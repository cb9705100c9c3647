/**
 * Image references as the kubelet and crictl write them, normalised the way docker and
 * containerd do: "busybox" is docker.io/library/busybox:latest; the first component is a
 * registry host only when it has a dot, a colon or is "localhost".
 */
import { InvalidArgumentError } from '../errors.js';

export interface Reference {
  /** Registry host[:port], "docker.io" for Docker Hub. */
  readonly domain: string;
  /** Repository path inside the registry, e.g. "library/busybox". */
  readonly path: string;
  readonly tag?: string;
  readonly digest?: string;
}

export const DOCKER_DOMAIN = 'docker.io';

const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const DOMAIN_LABEL = '(?:[a-zA-Z0-9]|[a-zA-Z0-9][a-zA-Z0-9-]*[a-zA-Z0-9])';
const DOMAIN = new RegExp(`^(?:${DOMAIN_LABEL}(?:\\.${DOMAIN_LABEL})*|\\[[0-9a-fA-F:.]+\\])(?::[0-9]+)?$`);
const TAG = /^[\w][\w.-]{0,127}$/;
const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-zA-Z0-9=_-]{32,}$/;
const SHA256 = /^sha256:[a-f0-9]{64}$/;

export function isDigest(s: string): boolean {
  return DIGEST.test(s) && (!s.startsWith('sha256:') || SHA256.test(s));
}

export function parseReference(ref: string): Reference {
  const bad = (why: string): never => {
    throw new InvalidArgumentError(`invalid image reference "${ref}": ${why}`);
  };
  if (!ref) bad('empty');
  if (ref.length > 512) bad('too long');
  let rest = ref;
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at !== -1) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!isDigest(digest)) bad(`bad digest "${digest}"`);
  }
  let tag: string | undefined;
  const slash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > slash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) bad(`bad tag "${tag}"`);
  }
  if (!rest) bad('no repository name');
  let domain = DOCKER_DOMAIN;
  let path = rest;
  const first = rest.indexOf('/');
  if (first !== -1) {
    const head = rest.slice(0, first);
    if (head.includes('.') || head.includes(':') || head === 'localhost' || head !== head.toLowerCase()) {
      domain = head;
      path = rest.slice(first + 1);
      if (!DOMAIN.test(domain)) bad(`bad registry host "${domain}"`);
    }
  }
  if (domain === 'index.docker.io' || domain === 'registry-1.docker.io') domain = DOCKER_DOMAIN;
  if (domain === DOCKER_DOMAIN && !path.includes('/')) path = `library/${path}`;
  for (const c of path.split('/')) {
    if (c !== c.toLowerCase() && COMPONENT.test(c.toLowerCase())) bad('repository name must be lowercase');
    if (!COMPONENT.test(c)) bad(`bad repository path component "${c}"`);
  }
  if (domain.length + 1 + path.length > 255) bad('repository name longer than 255 characters');
  if (!tag && !digest) tag = 'latest';
  return { domain, path, ...(tag ? { tag } : {}), ...(digest ? { digest } : {}) };
}

/** "docker.io/library/busybox" */
export function repoName(r: Reference): string {
  return `${r.domain}/${r.path}`;
}

/** Full normalised form: name[:tag][@digest]. */
export function formatReference(r: Reference): string {
  return `${repoName(r)}${r.tag ? `:${r.tag}` : ''}${r.digest ? `@${r.digest}` : ''}`;
}

/** "name:tag" when the reference has a tag. */
export function tagRef(r: Reference): string | undefined {
  return r.tag ? `${repoName(r)}:${r.tag}` : undefined;
}

/** Parses, or undefined when the string is not a reference (e.g. an image id prefix). */
export function tryParseReference(ref: string): Reference | undefined {
  try {
    return parseReference(ref);
  } catch {
    return undefined;
  }
}
