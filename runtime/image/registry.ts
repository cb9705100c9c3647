/**
 * OCI distribution API client: endpoints (mirrors, then the registry), scheme choice, token
 * and basic auth, manifests and blob streams with Range resume.
 *
 * Mirrors come from config.registries[host].mirrors. A mirror URL may carry a path prefix
 * ("http://127.0.0.1:5000/registry.k8s.io" serves repository "registry.k8s.io/<repo>"), as a
 * containers-registries.conf mirror with a namespace does.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import https from 'node:https';
import { rootCertificates } from 'node:tls';
import type { Config, RegistryConfig } from '../config.js';
import {
  InvalidArgumentError, NotFoundError, RuntimeError, UnauthenticatedError, UnavailableError, errorMessage,
} from '../errors.js';
import type { Logger } from '../util/log.js';
import { basicHeader, credentialsForHost, parseChallenges, type Credentials } from './auth.js';
import { readBody, request, type HttpResponse } from './http.js';
import { DOCKER_DOMAIN } from './reference.js';

export const MEDIA = {
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
} as const;

export const MANIFEST_ACCEPT = [MEDIA.ociIndex, MEDIA.ociManifest, MEDIA.dockerList, MEDIA.dockerManifest].join(', ');

export interface Endpoint {
  /** "https://host:port" */
  origin: string;
  /** Repository prefix on this endpoint (mirrors with a namespace), "" otherwise. */
  prefix: string;
  /** Host name the config knows it by, for messages. */
  host: string;
  mirror: boolean;
  /** Plain HTTP may be tried when TLS fails (insecure or loopback). */
  allowHttp: boolean;
  agent: https.Agent;
}

export interface FetchedManifest {
  endpoint: Endpoint;
  body: Buffer;
  mediaType: string;
  digest: string;
}

export function sha256(data: Buffer | string): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

export function isLoopbackHost(host: string): boolean {
  const h = host.replace(/:\d+$/, '').replace(/^\[|\]$/g, '');
  return h === 'localhost' || h === '::1' || /^127\.\d+\.\d+\.\d+$/.test(h);
}

class HttpStatusError extends Error {
  constructor(readonly status: number, message: string) { super(message); }
}

/** A registry's "try again": 429 Too Many Requests or a 5xx, with its Retry-After when it gave one. */
export class RegistryBusyError extends UnavailableError {
  constructor(message: string, readonly retryAfterMs: number | undefined) { super(message); }
}

/** Retry-After as delay-seconds or an HTTP date, in ms (undefined when absent or unreadable). */
export function retryAfterMs(value: string | string[] | undefined, now = Date.now()): number | undefined {
  const v = Array.isArray(value) ? value[0] : value;
  if (!v) return undefined;
  if (/^\d+$/.test(v.trim())) return Number(v.trim()) * 1000;
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

export class RegistryClient {
  private readonly agents = new Map<string, https.Agent>();
  /** Origins found to speak plain HTTP only. */
  private readonly plain = new Set<string>();
  /** Origins that answered over TLS. */
  private readonly tlsOk = new Set<string>();
  private readonly tokens = new Map<string, string>();

  constructor(private readonly config: Config, private readonly logger: Logger) {}

  private registryConfig(host: string): RegistryConfig | undefined {
    return this.config.registries[host];
  }

  private agentFor(host: string, rc: RegistryConfig | undefined): https.Agent {
    const key = `${host}|${rc?.ca_file ?? ''}|${rc?.insecure ?? false}`;
    let a = this.agents.get(key);
    if (!a) {
      const opts: https.AgentOptions = { keepAlive: true, maxSockets: 16 };
      if (rc?.ca_file) opts.ca = [...rootCertificates, readFileSync(rc.ca_file, 'utf8')];
      if (rc?.insecure) opts.rejectUnauthorized = false;
      a = new https.Agent(opts);
      this.agents.set(key, a);
    }
    return a;
  }

  /** Mirrors in config order, then the registry itself. */
  endpoints(domain: string): Endpoint[] {
    const rc = this.registryConfig(domain);
    const out: Endpoint[] = [];
    for (const m of rc?.mirrors ?? []) {
      const u = new URL(m);
      const mrc = this.registryConfig(u.host) ?? rc;
      out.push({
        origin: u.origin,
        prefix: u.pathname.replace(/^\/+|\/+$/g, '').replace(/^v2(\/|$)/, ''),
        host: u.host,
        mirror: true,
        allowHttp: u.protocol === 'http:' || !!mrc?.insecure || isLoopbackHost(u.host),
        agent: this.agentFor(u.host, mrc),
      });
    }
    const host = domain === DOCKER_DOMAIN ? 'registry-1.docker.io' : domain;
    out.push({
      origin: `https://${host}`,
      prefix: '',
      host: domain,
      mirror: false,
      allowHttp: !!rc?.insecure || isLoopbackHost(host),
      agent: this.agentFor(host, rc),
    });
    return out;
  }

  /** "http://127.0.0.1:5000/registry.k8s.io" as actually used, for log lines. */
  describe(ep: Endpoint): string {
    const origin = this.plain.has(ep.origin) ? ep.origin.replace(/^https:/, 'http:') : ep.origin;
    return `${origin}${ep.prefix ? '/' + ep.prefix : ''}`;
  }

  private repoOn(ep: Endpoint, repo: string): string {
    return ep.prefix ? `${ep.prefix}/${repo}` : repo;
  }

  /** Sends a request to the endpoint, choosing https or http and answering auth challenges. */
  private async call(ep: Endpoint, repo: string, path: string, given: Credentials, signal: AbortSignal, headers: Record<string, string> = {}, method = 'GET'): Promise<HttpResponse> {
    // Credentials given for one registry (server_address) are never shown to another host,
    // mirrors included: that host is asked anonymously.
    const creds = credentialsForHost(given, ep.host);
    const withheld = creds !== given && given.kind !== 'anonymous' ? given.server : undefined;
    const scope = `repository:${this.repoOn(ep, repo)}:pull`;
    const tokenKey = `${ep.origin}|${scope}|${credsKey(creds)}`;
    const send = async (auth?: string): Promise<HttpResponse> => {
      const h = { ...headers, ...(auth ? { Authorization: auth } : {}) };
      const origin = this.plain.has(ep.origin) ? ep.origin.replace(/^https:/, 'http:') : ep.origin;
      // Until an endpoint that may be plain HTTP has answered over TLS, the probe gets a short
      // header timeout: some plain servers never answer a TLS ClientHello.
      const probing = ep.allowHttp && origin.startsWith('https:') && !this.tlsOk.has(ep.origin);
      try {
        const res = await request(new URL(path, origin), { method, headers: h, signal, httpsAgent: ep.agent, ...(probing ? { headerTimeoutMs: 5000 } : {}) });
        if (probing) this.tlsOk.add(ep.origin);
        return res;
      } catch (err) {
        if (signal.aborted || !ep.allowHttp || !origin.startsWith('https:')) throw err;
        // As docker does for insecure and loopback registries: no TLS offered, so speak plain HTTP.
        const res = await request(new URL(path, origin.replace(/^https:/, 'http:')), { method, headers: h, signal });
        this.plain.add(ep.origin);
        this.logger.debug(`registry ${ep.host}: TLS failed (${errorMessage(err)}), using plain HTTP`);
        return res;
      }
    };
    let auth = creds.kind === 'registry' ? `Bearer ${creds.token}` : this.tokens.get(tokenKey);
    let res = await send(auth);
    if (res.status !== 401) return res;
    res.body.resume();
    const challenges = parseChallenges(String(res.headers['www-authenticate'] ?? ''));
    const bearer = challenges.find((c) => c.scheme === 'bearer');
    const basic = challenges.find((c) => c.scheme === 'basic');
    if (bearer && creds.kind !== 'registry') {
      auth = `Bearer ${await this.fetchToken(ep, bearer.params, scope, creds, signal)}`;
      this.tokens.set(tokenKey, auth);
    } else if (basic && creds.kind === 'basic') {
      auth = basicHeader(creds.username, creds.password);
    } else {
      throw this.unauthorized(ep, creds, withheld);
    }
    res = await send(auth);
    if (res.status === 401) {
      res.body.resume();
      this.tokens.delete(tokenKey);
      throw this.unauthorized(ep, creds, withheld);
    }
    return res;
  }

  private unauthorized(ep: Endpoint, creds: Credentials, withheldFor?: string): UnauthenticatedError {
    let how = creds.kind === 'anonymous' ? 'anonymous access denied' : 'the credentials were rejected';
    if (withheldFor !== undefined) how += ` (the pull's credentials are for registry ${withheldFor} and were not sent here)`;
    return new UnauthenticatedError(`unauthorized: registry ${ep.host}${ep.mirror ? ' (mirror)' : ''}: ${how}`);
  }

  private async fetchToken(ep: Endpoint, params: Record<string, string>, scope: string, creds: Credentials, signal: AbortSignal): Promise<string> {
    const realm = params.realm;
    if (!realm) throw new UnauthenticatedError(`registry ${ep.host}: bearer challenge without a realm`);
    const url = new URL(realm);
    const service = params.service ?? '';
    const wantScope = params.scope || scope;
    let res: HttpResponse;
    const httpsAgent = ep.agent;
    if (creds.kind === 'identity') {
      // OAuth2 refresh-token grant, as docker's identity tokens require.
      const form = new URLSearchParams({ grant_type: 'refresh_token', refresh_token: creds.token, service, scope: wantScope, client_id: 'corral' });
      res = await request(url, { method: 'POST', body: form.toString(), headers: { 'Content-Type': 'application/x-www-form-urlencoded' }, signal, httpsAgent });
      if (res.status === 404 || res.status === 405) {
        res.body.resume();
        res = await request(withQuery(url, service, wantScope), { headers: {}, signal, httpsAgent });
      }
    } else {
      const headers: Record<string, string> = {};
      if (creds.kind === 'basic') headers.Authorization = basicHeader(creds.username, creds.password);
      res = await request(withQuery(url, service, wantScope), { headers, signal, httpsAgent });
    }
    const body = await readBody(res, 1 << 20);
    if (res.status === 401 || res.status === 403) throw this.unauthorized(ep, creds);
    if (res.status !== 200) throw new UnavailableError(`registry ${ep.host}: token endpoint ${url.origin}${url.pathname} answered ${res.status}`);
    let parsed: { token?: string; access_token?: string };
    try {
      parsed = JSON.parse(body.toString('utf8'));
    } catch {
      throw new UnavailableError(`registry ${ep.host}: token endpoint answered invalid JSON`);
    }
    const token = parsed.token ?? parsed.access_token;
    if (!token) throw new UnavailableError(`registry ${ep.host}: token endpoint answered no token`);
    return token;
  }

  /**
   * Fetches a manifest by tag or digest, trying each endpoint in order. A digest reference is
   * verified against the bytes received.
   */
  async manifest(domain: string, repo: string, refOrDigest: string, creds: Credentials, signal: AbortSignal, ref: string, endpoints?: Endpoint[]): Promise<FetchedManifest> {
    const errors: Array<{ ep: Endpoint; err: unknown }> = [];
    for (const ep of endpoints ?? this.endpoints(domain)) {
      try {
        return await this.manifestFrom(ep, repo, refOrDigest, creds, signal);
      } catch (err) {
        if (signal.aborted) throw err;
        if (err instanceof InvalidArgumentError && !ep.mirror) throw err;
        errors.push({ ep, err });
        this.logger.debug(`pull ${ref}: ${ep.mirror ? 'mirror' : 'registry'} ${ep.origin}/${ep.prefix}: ${errorMessage(err)}`);
      }
    }
    throw summarise(ref, errors, (ep) => this.describe(ep));
  }

  async manifestFrom(ep: Endpoint, repo: string, refOrDigest: string, creds: Credentials, signal: AbortSignal): Promise<FetchedManifest> {
    const res = await this.call(ep, repo, `/v2/${this.repoOn(ep, repo)}/manifests/${refOrDigest}`, creds, signal, { Accept: MANIFEST_ACCEPT });
    if (res.status === 404) {
      res.body.resume();
      throw new HttpStatusError(404, `manifest ${refOrDigest} not found`);
    }
    if (res.status !== 200) {
      const b = await readBody(res, 64 << 10).catch(() => Buffer.alloc(0));
      throw new HttpStatusError(res.status, `manifest ${refOrDigest}: HTTP ${res.status} ${b.toString('utf8').slice(0, 200)}`);
    }
    const body = await readBody(res, 4 << 20);
    const digest = refOrDigest.startsWith('sha256:') ? refOrDigest : sha256(body);
    if (refOrDigest.startsWith('sha256:') && sha256(body) !== refOrDigest) {
      throw new InvalidArgumentError(`manifest digest mismatch from ${ep.host}: expected ${refOrDigest}, got ${sha256(body)}`);
    }
    let mediaType = String(res.headers['content-type'] ?? '').split(';')[0]!.trim();
    try {
      const m = JSON.parse(body.toString('utf8'));
      if (typeof m.mediaType === 'string') mediaType = m.mediaType;
      else if (Array.isArray(m.manifests)) mediaType = MEDIA.ociIndex;
      else if (m.config) mediaType = MEDIA.ociManifest;
    } catch {
      throw new InvalidArgumentError(`manifest ${refOrDigest} from ${ep.host} is not JSON`);
    }
    return { endpoint: ep, body, mediaType, digest };
  }

  /** Starts a blob download at `offset` (206 expected when offset > 0). */
  async blob(ep: Endpoint, repo: string, digest: string, creds: Credentials, signal: AbortSignal, offset = 0): Promise<HttpResponse> {
    const headers: Record<string, string> = offset > 0 ? { Range: `bytes=${offset}-` } : {};
    const res = await this.call(ep, repo, `/v2/${this.repoOn(ep, repo)}/blobs/${digest}`, creds, signal, headers);
    if (res.status === 200 || res.status === 206) return res;
    res.body.resume();
    if (res.status === 404) throw new NotFoundError(`blob ${digest} not found on ${ep.host}`);
    if (res.status === 429 || res.status >= 500) {
      throw new RegistryBusyError(`blob ${digest} from ${ep.host}: HTTP ${res.status}`, retryAfterMs(res.headers['retry-after']));
    }
    throw new UnavailableError(`blob ${digest} from ${ep.host}: HTTP ${res.status}`);
  }
}

function withQuery(url: URL, service: string, scope: string): URL {
  const u = new URL(url);
  if (service) u.searchParams.set('service', service);
  if (scope) u.searchParams.set('scope', scope);
  return u;
}

function credsKey(c: Credentials): string {
  // Tokens are cached per credential; the key is a hash so the secret is not kept in a map key.
  if (c.kind === 'anonymous') return 'anon';
  return createHash('sha256').update(JSON.stringify(c)).digest('hex').slice(0, 16);
}

/** One error for a failed manifest lookup over all endpoints: auth beats not-found beats unavailable. */
function summarise(ref: string, errors: Array<{ ep: Endpoint; err: unknown }>, describe: (ep: Endpoint) => string): Error {
  const only = errors.length === 1;
  const lines = errors.map(({ ep, err }) => `${ep.mirror ? 'mirror ' : ''}${describe(ep)}: ${errorMessage(err)}`).join('; ');
  const upstream = errors.find((e) => !e.ep.mirror)?.err;
  const auth = errors.find((e) => e.err instanceof UnauthenticatedError)?.err as UnauthenticatedError | undefined;
  if (auth) return new UnauthenticatedError(only ? `${auth.message} (pulling ${ref})` : `${auth.message} (pulling ${ref}; ${lines})`);
  const notFound = errors.every((e) => e.err instanceof HttpStatusError && e.err.status === 404);
  if (notFound) return new NotFoundError(`image "${ref}" not found: ${lines}`);
  if (upstream instanceof RuntimeError && upstream.kind !== 'Internal') return new RuntimeError(upstream.kind, `pulling ${ref}: ${lines}`);
  return new UnavailableError(`pulling ${ref}: ${lines}`);
}
