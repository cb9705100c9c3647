/**
 * A small Docker/OCI registry token server (the "auth.token" realm of distribution).
 *
 *   const ts = await startTokenServer({ signer, service, issuer, users, anonymousPull });
 *   ts.realm  // 'http://127.0.0.1:PORT/token', for the registry config and clients
 *   await ts.stop();
 *
 * GET  /token?service=S&scope=repository:NAME:pull,push[&scope=...]  with optional Basic auth
 *      -> {"token", "access_token", "expires_in", "issued_at"}  (the Docker token protocol)
 * POST /token  form grant_type=password (username, password) or grant_type=refresh_token,
 *      service, scope -> {"access_token", "refresh_token", "expires_in", "scope"}  (OAuth2 flavour)
 *
 * Policy: a user with the right password gets every action asked for; without credentials only
 * "pull" is granted, and only when anonymousPull is set; a wrong password is 401. Tokens are ES256
 * JWTs with the signing certificate in x5c. Every request is recorded in `requests` so tests can
 * check that a client really went through the token flow.
 *
 * spawnTokenServer(opts, dir) runs the same server in a child node process (what registry.ts
 * uses): a harness that blocks its event loop (execFileSync of crictl...) must not stall the
 * daemon's token fetches. `requests` is then read from a JSON-lines file the child appends to.
 * As a program: node dist/e2e/registry/token-server.js CONFIG.json  (prints {"port":N} when ready).
 */
import { createSign, randomBytes } from 'node:crypto';
import { spawn } from 'node:child_process';
import { appendFileSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import * as path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import type { TokenSigner } from './pki.js';

export interface TokenServerOptions {
  signer: Pick<TokenSigner, 'keyPem' | 'certB64'>;
  service: string;
  issuer: string;
  users: Record<string, string>;
  anonymousPull?: boolean;
  /** Token lifetime in seconds (default 300). */
  ttl?: number;
}

export interface TokenRequestLog { method: string; user?: string; scopes: string[]; status: number }

export interface TokenServer {
  realm: string;
  port: number;
  /** Child process id (spawnTokenServer only). */
  pid?: number;
  readonly requests: TokenRequestLog[];
  stop(): Promise<void>;
}

interface Access { type: string; name: string; actions: string[] }

const b64url = (b: Buffer | string): string => Buffer.from(b).toString('base64url');

function parseScope(scope: string): Access | undefined {
  // repository:name/with/slashes:pull,push  (the name may contain ':' only for a port, not here)
  const first = scope.indexOf(':');
  const last = scope.lastIndexOf(':');
  if (first < 0 || last <= first) return undefined;
  return { type: scope.slice(0, first), name: scope.slice(first + 1, last), actions: scope.slice(last + 1).split(',').filter(Boolean) };
}

export function signToken(opts: TokenServerOptions, subject: string, access: Access[]): string {
  const now = Math.floor(Date.now() / 1000);
  const header = { typ: 'JWT', alg: 'ES256', x5c: [opts.signer.certB64] };
  const claims = {
    iss: opts.issuer, sub: subject, aud: opts.service, exp: now + (opts.ttl ?? 300), nbf: now - 30, iat: now,
    jti: randomBytes(12).toString('hex'), access,
  };
  const input = `${b64url(JSON.stringify(header))}.${b64url(JSON.stringify(claims))}`;
  // JWS ES256 wants the raw r||s signature, not DER.
  const sig = createSign('sha256').update(input).sign({ key: opts.signer.keyPem, dsaEncoding: 'ieee-p1363' });
  return `${input}.${b64url(sig)}`;
}

function basicUser(header: string | undefined): { user: string; pass: string } | undefined {
  if (!header?.startsWith('Basic ')) return undefined;
  const text = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const i = text.indexOf(':');
  return i < 0 ? undefined : { user: text.slice(0, i), pass: text.slice(i + 1) };
}

/** Runs the token server in this process. */
export async function startTokenServer(opts: TokenServerOptions, onRequest?: (r: TokenRequestLog) => void): Promise<TokenServer> {
  const requests: TokenRequestLog[] = [];
  const refreshTokens = new Map<string, string>();

  const grant = (user: string | undefined, scopes: string[]): Access[] => scopes
    .map(parseScope).filter((a): a is Access => !!a)
    .map((a) => ({ ...a, actions: user ? a.actions : a.actions.filter((x) => x === 'pull') }))
    .filter((a) => a.actions.length > 0);

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url ?? '/', 'http://localhost');
      const reply = (status: number, body: unknown, user?: string, scopes: string[] = []): void => {
        const entry = { method: req.method ?? '', user, scopes, status };
        requests.push(entry);
        onRequest?.(entry);
        res.writeHead(status, { 'content-type': 'application/json' });
        res.end(JSON.stringify(body));
      };
      if (url.pathname !== '/token') return reply(404, { error: 'not found' });
      let user: string | undefined;
      let scopes: string[];
      let oauth = false;
      if (req.method === 'POST') {
        oauth = true;
        const form = new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
        scopes = (form.getAll('scope').join(' ')).split(' ').filter(Boolean);
        const gt = form.get('grant_type');
        if (gt === 'password') {
          const u = form.get('username') ?? '';
          if (opts.users[u] === undefined || opts.users[u] !== form.get('password')) return reply(401, { error: 'invalid_grant' }, u, scopes);
          user = u;
        } else if (gt === 'refresh_token') {
          user = refreshTokens.get(form.get('refresh_token') ?? '');
          if (!user) return reply(401, { error: 'invalid_grant' }, undefined, scopes);
        } else {
          return reply(400, { error: 'unsupported_grant_type' }, undefined, scopes);
        }
      } else {
        scopes = url.searchParams.getAll('scope').flatMap((s) => s.split(' ')).filter(Boolean);
        const cred = basicUser(req.headers.authorization);
        if (cred) {
          if (opts.users[cred.user] === undefined || opts.users[cred.user] !== cred.pass) return reply(401, { errors: [{ code: 'UNAUTHORIZED', message: 'bad credentials' }] }, cred.user, scopes);
          user = cred.user;
        } else if (!opts.anonymousPull) {
          return reply(401, { errors: [{ code: 'UNAUTHORIZED', message: 'credentials required' }] }, undefined, scopes);
        }
      }
      const service = oauth ? undefined : url.searchParams.get('service');
      if (service && service !== opts.service) return reply(400, { error: `unknown service ${service}` }, user, scopes);
      const token = signToken(opts, user ?? '', grant(user, scopes));
      const ttl = opts.ttl ?? 300;
      if (oauth) {
        const refresh = randomBytes(16).toString('hex');
        refreshTokens.set(refresh, user!);
        return reply(200, { access_token: token, refresh_token: refresh, expires_in: ttl, scope: scopes.join(' ') }, user, scopes);
      }
      return reply(200, { token, access_token: token, expires_in: ttl, issued_at: new Date().toISOString() }, user, scopes);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  return {
    realm: `http://127.0.0.1:${port}/token`,
    port,
    requests,
    stop: () => new Promise<void>((resolve) => {
      server.closeAllConnections();
      server.close(() => resolve());
    }),
  };
}

/** Runs the token server in a child node process; its request log lives in dir. */
export async function spawnTokenServer(opts: TokenServerOptions, dir: string): Promise<TokenServer> {
  const configFile = path.join(dir, 'token-server.json');
  const logFile = path.join(dir, 'token-requests.jsonl');
  writeFileSync(configFile, JSON.stringify({ ...opts, logFile }), { mode: 0o600 });
  writeFileSync(logFile, '');
  // setpriv --pdeathsig: the child dies with the test process even if stop() is never called.
  const argv = [process.execPath, fileURLToPath(import.meta.url), configFile];
  const [cmd, ...args] = existsSync('/usr/bin/setpriv') ? ['/usr/bin/setpriv', '--pdeathsig', 'SIGTERM', '--', ...argv] : argv;
  const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => { child.kill('SIGKILL'); reject(new Error('token server did not start in 10 s')); }, 10_000);
    child.stdout!.on('data', (d: Buffer) => {
      out += d.toString();
      const m = out.match(/\{"port":(\d+)\}/);
      if (m) { clearTimeout(timer); resolve(Number(m[1])); }
    });
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`token server exited ${code}`)); });
    child.once('error', reject);
  });
  child.stdout!.resume();
  return {
    realm: `http://127.0.0.1:${port}/token`,
    port,
    pid: child.pid,
    get requests(): TokenRequestLog[] {
      let text = '';
      try { text = readFileSync(logFile, 'utf8'); } catch { /* removed by stop() */ }
      return text.split('\n').filter(Boolean).map((l) => JSON.parse(l) as TokenRequestLog);
    },
    stop: () => new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolve();
      child.once('exit', () => resolve());
      child.kill('SIGTERM');
    }),
  };
}

async function main(configFile: string): Promise<void> {
  const cfg = JSON.parse(readFileSync(configFile, 'utf8')) as TokenServerOptions & { logFile: string };
  const ts = await startTokenServer(cfg, (r) => appendFileSync(cfg.logFile, JSON.stringify(r) + '\n'));
  process.on('SIGTERM', () => { void ts.stop().then(() => process.exit(0)); });
  process.stdout.write(JSON.stringify({ port: ts.port }) + '\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(path.resolve(process.argv[1])).href) {
  main(process.argv[2] ?? '').catch((err: unknown) => {
    process.stderr.write(`token server: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(1);
  });
}
