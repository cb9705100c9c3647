/**
 * A small OCI distribution client for the test harness (push and inspect), on node:http(s) so a
 * private CA can be passed per request.
 *
 *   const c = new RegistryClient({ url: reg.url, ca: reg.caFile, username, password });
 *   await c.pushBlob('corral/busybox', digest, bytes);
 *   await c.putManifest('corral/busybox', 'latest', mediaType, bytes);   // -> digest
 *   await c.getManifest('corral/busybox', 'latest')                       // -> { mediaType, digest, body }
 *
 * Auth follows the registry's 401 challenge: "Basic" -> resend with credentials; "Bearer realm=,
 * service=, scope=" -> GET a token from the realm (with Basic credentials when given), cache it
 * per scope, resend. That is the flow real clients use, so tests of the registry variants go
 * through it.
 */
import * as http from 'node:http';
import * as https from 'node:https';
import { readFileSync } from 'node:fs';

export interface ClientOptions {
  url: string;
  /** PEM file (or PEM text) of the CA that signed the registry's certificate. */
  ca?: string;
  username?: string;
  password?: string;
}

export interface Response { status: number; headers: http.IncomingHttpHeaders; body: Buffer }

export const MANIFEST_ACCEPT = [
  'application/vnd.oci.image.index.v1+json',
  'application/vnd.oci.image.manifest.v1+json',
  'application/vnd.docker.distribution.manifest.list.v2+json',
  'application/vnd.docker.distribution.manifest.v2+json',
].join(', ');

export class RegistryError extends Error {
  constructor(message: string, readonly status: number, readonly body: string) { super(message); }
}

/** Parses `Bearer realm="...",service="...",scope="..."` (values may contain commas in quotes). */
export function parseChallenge(header: string): { scheme: string; params: Record<string, string> } {
  const sp = header.indexOf(' ');
  const scheme = (sp < 0 ? header : header.slice(0, sp)).toLowerCase();
  const params: Record<string, string> = {};
  const re = /([a-zA-Z_]+)="([^"]*)"|([a-zA-Z_]+)=([^,\s]*)/g;
  for (const m of (sp < 0 ? '' : header.slice(sp + 1)).matchAll(re)) {
    if (m[1]) params[m[1].toLowerCase()] = m[2];
    else params[m[3].toLowerCase()] = m[4];
  }
  return { scheme, params };
}

/** One HTTP(S) request; `ca` is PEM text / Buffer, or the path of a PEM file. */
export function rawRequest(url: string, opts: {
  method?: string; headers?: Record<string, string>; body?: Buffer; ca?: string | Buffer; timeoutMs?: number;
  agent?: http.Agent;
} = {}): Promise<Response> {
  const u = new URL(url);
  const mod = u.protocol === 'https:' ? https : http;
  const ca = typeof opts.ca === 'string' && !opts.ca.includes('-----BEGIN') ? readFileSync(opts.ca) : opts.ca;
  return new Promise((resolve, reject) => {
    const req = mod.request(u, {
      method: opts.method ?? 'GET',
      headers: { ...(opts.headers ?? {}), ...(opts.body ? { 'content-length': String(opts.body.length) } : {}) },
      ...(u.protocol === 'https:' && ca ? { ca } : {}),
      ...(opts.agent ? { agent: opts.agent } : {}),
      timeout: opts.timeoutMs ?? 30_000,
    }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error(`timeout: ${opts.method ?? 'GET'} ${url}`)));
    req.on('error', reject);
    req.end(opts.body);
  });
}

export class RegistryClient {
  private readonly ca?: Buffer;
  private readonly tokens = new Map<string, string>();
  private basic = false;
  /** Token-server requests made by this client (for tests). */
  tokenFetches = 0;

  constructor(private readonly opts: ClientOptions) {
    if (opts.ca) this.ca = opts.ca.includes('-----BEGIN') ? Buffer.from(opts.ca) : readFileSync(opts.ca);
  }

  /** Kept for callers that release clients; connections are not kept alive (measured slower
   * against distribution 2.8 than one connection per request). */
  close(): void {}

  private credentials(): string | undefined {
    if (this.opts.username === undefined) return undefined;
    return 'Basic ' + Buffer.from(`${this.opts.username}:${this.opts.password ?? ''}`).toString('base64');
  }

  private async fetchToken(params: Record<string, string>, scope: string): Promise<string> {
    const u = new URL(params.realm);
    if (params.service) u.searchParams.set('service', params.service);
    for (const s of (params.scope ?? scope).split(' ').filter(Boolean)) u.searchParams.append('scope', s);
    const cred = this.credentials();
    this.tokenFetches++;
    const res = await rawRequest(u.toString(), { headers: cred ? { authorization: cred } : {}, ca: this.ca });
    if (res.status !== 200) throw new RegistryError(`token server ${u.origin}: HTTP ${res.status}`, res.status, res.body.toString());
    const doc = JSON.parse(res.body.toString()) as { token?: string; access_token?: string };
    const token = doc.token ?? doc.access_token;
    if (!token) throw new RegistryError('token server returned no token', res.status, res.body.toString());
    return token;
  }

  /** A request to the registry; scope is the token scope this request needs. */
  async request(method: string, pathOrUrl: string, scope: string, opts: { headers?: Record<string, string>; body?: Buffer } = {}): Promise<Response> {
    const url = new URL(pathOrUrl, this.opts.url).toString();
    for (let attempt = 0; attempt < 3; attempt++) {
      const headers: Record<string, string> = { ...(opts.headers ?? {}) };
      const token = this.tokens.get(scope);
      if (token) headers.authorization = `Bearer ${token}`;
      else if (this.basic && this.credentials()) headers.authorization = this.credentials()!;
      const res = await rawRequest(url, { method, headers, body: opts.body, ca: this.ca });
      if (res.status !== 401) return res;
      const challenge = res.headers['www-authenticate'];
      if (!challenge || attempt === 2) return res;
      const { scheme, params } = parseChallenge(String(challenge));
      if (scheme === 'basic') {
        if (!this.credentials() || this.basic) return res;
        this.basic = true;
      } else if (scheme === 'bearer') {
        if (token) this.tokens.delete(scope);
        this.tokens.set(scope, await this.fetchToken(params, scope));
      } else {
        return res;
      }
    }
    throw new Error('unreachable');
  }

  private static check(res: Response, what: string, ok: number[]): Response {
    if (!ok.includes(res.status)) throw new RegistryError(`${what}: HTTP ${res.status} ${res.body.toString().slice(0, 300)}`, res.status, res.body.toString());
    return res;
  }

  async ping(): Promise<Response> {
    return this.request('GET', '/v2/', '');
  }

  async hasBlob(repo: string, digest: string): Promise<boolean> {
    const res = await this.request('HEAD', `/v2/${repo}/blobs/${digest}`, `repository:${repo}:pull`);
    return res.status === 200;
  }

  /** Monolithic upload (POST + PUT ?digest=); skipped when the repository already has the blob. */
  async pushBlob(repo: string, digest: string, data: Buffer): Promise<void> {
    const scope = `repository:${repo}:pull,push`;
    if ((await this.request('HEAD', `/v2/${repo}/blobs/${digest}`, scope)).status === 200) return;
    const start = RegistryClient.check(await this.request('POST', `/v2/${repo}/blobs/uploads/`, scope), `start upload ${repo}`, [202]);
    const loc = new URL(String(start.headers.location), this.opts.url);
    loc.searchParams.set('digest', digest);
    RegistryClient.check(await this.request('PUT', loc.toString(), scope, {
      headers: { 'content-type': 'application/octet-stream' }, body: data,
    }), `upload ${repo}@${digest}`, [201]);
  }

  async putManifest(repo: string, reference: string, mediaType: string, body: Buffer): Promise<string> {
    const res = RegistryClient.check(await this.request('PUT', `/v2/${repo}/manifests/${reference}`, `repository:${repo}:pull,push`, {
      headers: { 'content-type': mediaType }, body,
    }), `put manifest ${repo}:${reference}`, [201]);
    return String(res.headers['docker-content-digest'] ?? '');
  }

  async getManifest(repo: string, reference: string, accept = MANIFEST_ACCEPT): Promise<{ mediaType: string; digest: string; body: Buffer }> {
    const res = RegistryClient.check(await this.request('GET', `/v2/${repo}/manifests/${reference}`, `repository:${repo}:pull`, {
      headers: { accept },
    }), `get manifest ${repo}:${reference}`, [200]);
    return { mediaType: String(res.headers['content-type'] ?? ''), digest: String(res.headers['docker-content-digest'] ?? ''), body: res.body };
  }

  async getBlob(repo: string, digest: string): Promise<Buffer> {
    let res = await this.request('GET', `/v2/${repo}/blobs/${digest}`, `repository:${repo}:pull`);
    // The filesystem driver serves blobs itself; other drivers may redirect.
    if (res.status === 307 || res.status === 302) res = await rawRequest(String(res.headers.location), { ca: this.ca });
    return RegistryClient.check(res, `get blob ${repo}@${digest}`, [200]).body;
  }
}
