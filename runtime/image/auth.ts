/**
 * Registry authentication: WWW-Authenticate challenges and the CRI AuthConfig.
 * Secrets never appear in messages or logs.
 */
import { InvalidArgumentError } from '../errors.js';

export interface Challenge {
  scheme: string;
  params: Record<string, string>;
}

/** CRI AuthConfig, as the proto-loader delivers it (every field may be empty). */
export interface AuthConfig {
  username?: string;
  password?: string;
  auth?: string;
  server_address?: string;
  identity_token?: string;
  registry_token?: string;
}

export type Credentials =
  | { kind: 'anonymous' }
  | ((
    | { kind: 'basic'; username: string; password: string }
    /** An OAuth2 refresh token, exchanged at the token endpoint. */
    | { kind: 'identity'; token: string }
    /** A bearer token sent to the registry as it is. */
    | { kind: 'registry'; token: string }
  ) & {
    /**
     * The registry host[:port] the credentials were given for (AuthConfig.server_address,
     * normalised by registryHostOf); absent when the caller named none.
     */
    server?: string;
  });

export function credentialsFrom(a: AuthConfig | null | undefined): Credentials {
  if (!a) return { kind: 'anonymous' };
  for (const field of ['username', 'password', 'auth', 'identity_token', 'registry_token', 'server_address'] as const) {
    // These go into HTTP headers (or decide where they go): control characters cannot.
    if (/[\0-\x1f\x7f]/.test(a[field] ?? '')) throw new InvalidArgumentError(`auth.${field} contains control characters`);
  }
  const server = a.server_address ? { server: registryHostOf(a.server_address) } : {};
  if (a.registry_token) return { kind: 'registry', token: a.registry_token, ...server };
  if (a.identity_token) return { kind: 'identity', token: a.identity_token, ...server };
  if (a.username) return { kind: 'basic', username: a.username, password: a.password ?? '', ...server };
  if (a.auth) {
    const dec = Buffer.from(a.auth, 'base64').toString('utf8');
    const i = dec.indexOf(':');
    if (i > 0) return { kind: 'basic', username: dec.slice(0, i), password: dec.slice(i + 1), ...server };
  }
  return { kind: 'anonymous' };
}

/** Names of Docker Hub in docker config files and references; all mean the registry "docker.io". */
const DOCKER_HUB_ALIASES = new Set(['docker.io', 'index.docker.io', 'registry-1.docker.io']);

/**
 * The host[:port] of a registry as AuthConfig.server_address or an endpoint names it: "host",
 * "host:port" or a URL ("https://index.docker.io/v1/", "http://host:5000/path"). Lower-cased;
 * ":443" and Docker Hub's aliases are folded, since docker config files key Docker Hub as
 * "https://index.docker.io/v1/" while references say "docker.io".
 */
export function registryHostOf(address: string): string {
  const a = address.trim();
  let host = a.split(/[/?#]/, 1)[0]!;
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(a)) {
    try {
      host = new URL(a).host;
    } catch {
      host = a.replace(/^[^:]*:\/\//, '').split(/[/?#]/, 1)[0]!;
    }
  }
  host = host.toLowerCase().replace(/:443$/, '');
  return DOCKER_HUB_ALIASES.has(host) ? 'docker.io' : host;
}

/**
 * The credentials to present to the registry or mirror at `host`: a caller that said which
 * registry its credentials are for (server_address) gets them sent there only, everything else
 * is asked anonymously, as containerd does; without server_address they go to every endpoint
 * of the pull (the image's registry and the mirrors the operator configured for it).
 */
export function credentialsForHost(creds: Credentials, host: string): Credentials {
  if (creds.kind === 'anonymous' || creds.server === undefined) return creds;
  return creds.server === registryHostOf(host) ? creds : { kind: 'anonymous' };
}

export function basicHeader(username: string, password: string): string {
  return `Basic ${Buffer.from(`${username}:${password}`).toString('base64')}`;
}

/**
 * Parses a WWW-Authenticate header (RFC 7235): one or more challenges, each a scheme followed
 * by comma-separated auth-params whose values may be quoted (scope values contain commas).
 */
export function parseChallenges(header: string): Challenge[] {
  const out: Challenge[] = [];
  let i = 0;
  const n = header.length;
  const ws = () => { while (i < n && (header[i] === ' ' || header[i] === '\t' || header[i] === ',')) i++; };
  const token = () => {
    const s = i;
    while (i < n && !/[\s,=]/.test(header[i]!)) i++;
    return header.slice(s, i);
  };
  let cur: Challenge | undefined;
  while (i < n) {
    ws();
    if (i >= n) break;
    const start = i;
    const t = token();
    let j = i;
    while (j < n && (header[j] === ' ' || header[j] === '\t')) j++;
    if (header[j] === '=' && cur) {
      i = j + 1;
      while (i < n && (header[i] === ' ' || header[i] === '\t')) i++;
      let value = '';
      if (header[i] === '"') {
        i++;
        while (i < n && header[i] !== '"') {
          if (header[i] === '\\' && i + 1 < n) i++;
          value += header[i];
          i++;
        }
        i++;
      } else {
        const s = i;
        while (i < n && header[i] !== ',') i++;
        value = header.slice(s, i).trim();
      }
      cur.params[t.toLowerCase()] = value;
    } else {
      if (!t) { i = start + 1; continue; }
      cur = { scheme: t.toLowerCase(), params: {} };
      out.push(cur);
    }
  }
  return out;
}
