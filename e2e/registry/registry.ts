/**
 * A real registry for e2e tests: Debian's docker-registry (distribution 2.8) on 127.0.0.1 with a
 * free port and storage in a temp dir, in one of four variants, and a pusher that copies the
 * built test images into it with their digests unchanged.
 *
 *   const reg = await startRegistry({ variant: 'plain' | 'tls' | 'basic' | 'token',
 *                                     users?: { user: 'pass' }, tls?: boolean, anonymousPull?: boolean });
 *   reg.url        'http://127.0.0.1:PORT' ('https://...' for tls, or basic/token with tls: true)
 *   reg.host       '127.0.0.1:PORT'
 *   reg.caFile     PEM of the CA that signed the server certificate (TLS only)
 *   reg.users      accepted credentials (basic, token); default { corral: 'corral-e2e-password' }
 *   reg.tokenRealm token server URL (token only; the registry's 401 challenge names it too)
 *   const pushed = await pushImages(reg, imagesDir, filter?);   // imagesDir = build OUTDIR
 *   mirrorsFor(reg)  { 'registry.k8s.io': 'http://127.0.0.1:PORT/registry.k8s.io', ... }
 *   await reg.stop();   // kills the processes this module started (by pid), removes the temp dir
 *
 * Repository names: an image ref with an upstream host is pushed as "<host>/<repo>:<tag>"
 * (registry.k8s.io/e2e-test-images/busybox:1.29-2), so a client mirror configured as
 * http://127.0.0.1:PORT/registry.k8s.io (a mirror with a namespace) resolves upstream names;
 * refs without a host are short names (corral/busybox:latest). MIRRORED_HOSTS lists the hosts.
 *
 * Variants: plain = HTTP, no auth; tls = HTTPS with a CA made by openssl for this run;
 * basic = htpasswd (bcrypt, via apache2-utils' htpasswd); token = distribution's auth.token with
 * the token server of token-server.ts in a child node process (ES256 JWTs, signer trusted via
 * rootcertbundle); reg.tokenServer.requests lists the token requests it answered.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { promises as fs, existsSync, openSync, closeSync, readFileSync } from 'node:fs';
import * as net from 'node:net';
import * as os from 'node:os';
import * as path from 'node:path';
import { RegistryClient, rawRequest } from './client.js';
import { makeCA, makeServerCert, makeTokenSigner } from './pki.js';
import { spawnTokenServer, type TokenServer } from './token-server.js';
import { loadImages, localRepo, type BuiltImage, type ImagesManifest } from '../images/manifest.js';
import { BlobStore, MT, type Descriptor } from '../images/oci.js';

export type RegistryVariant = 'plain' | 'tls' | 'basic' | 'token';

export interface RegistryOptions {
  variant: RegistryVariant;
  /** Credentials for basic/token (default { corral: 'corral-e2e-password' }). */
  users?: Record<string, string>;
  /** Serve HTTPS (default: true for 'tls', false otherwise). */
  tls?: boolean;
  /** token variant: hand out pull-only tokens without credentials. */
  anonymousPull?: boolean;
  /** Binary to run (default /usr/bin/docker-registry). */
  binary?: string;
  /** Milliseconds to wait for /v2/ (default 20000). */
  readyTimeoutMs?: number;
  /** Where the temp dir (config, certs, storage, log) is made (default os.tmpdir()). */
  baseDir?: string;
}

export interface Registry {
  variant: RegistryVariant;
  url: string;
  host: string;
  port: number;
  caFile?: string;
  users: Record<string, string>;
  tokenRealm?: string;
  tokenService?: string;
  tokenServer?: TokenServer;
  /** distribution's filesystem root (docker/registry/v2/... below it). */
  storageDir: string;
  /** Temp dir with config, certificates, logs; removed by stop(). */
  dir: string;
  pid: number;
  logFile: string;
  stop(): Promise<void>;
}

/** Upstream registries whose images are pushed under "<host>/..." (mirror them with a namespace). */
export const MIRRORED_HOSTS = ['registry.k8s.io', 'k8s.gcr.io', 'gcr.io', 'docker.io', 'public.ecr.aws', 'quay.io'];

export const DEFAULT_USERS: Record<string, string> = { corral: 'corral-e2e-password' };

const TOKEN_SERVICE = 'corral-e2e-registry';
const TOKEN_ISSUER = 'corral-e2e-token-server';

/**
 * Runs cmd under `setpriv --pdeathsig SIGTERM` (util-linux; it execs cmd, so the pid is cmd's):
 * if the test process dies without calling stop(), the kernel still ends the registry.
 */
export function withParentDeathSignal(cmd: string, args: string[]): [string, string[]] {
  return existsSync('/usr/bin/setpriv') ? ['/usr/bin/setpriv', ['--pdeathsig', 'SIGTERM', '--', cmd, ...args]] : [cmd, args];
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(port));
    });
  });
}

function yamlConfig(o: {
  port: number; storage: string; tls?: { cert: string; key: string };
  htpasswd?: string; token?: { realm: string; bundle: string };
}): string {
  const lines = [
    'version: 0.1',
    'log:',
    '  level: warn',
    '  accesslog:',
    '    disabled: true',
    'storage:',
    '  filesystem:',
    `    rootdirectory: ${JSON.stringify(o.storage)}`,
    '  delete:',
    '    enabled: true',
    '  maintenance:',
    '    uploadpurging:',
    '      enabled: false',
    'http:',
    `  addr: 127.0.0.1:${o.port}`,
    '  secret: corral-e2e-upload-state-secret',
  ];
  if (o.tls) lines.push('  tls:', `    certificate: ${JSON.stringify(o.tls.cert)}`, `    key: ${JSON.stringify(o.tls.key)}`);
  if (o.htpasswd) lines.push('auth:', '  htpasswd:', '    realm: corral-e2e', `    path: ${JSON.stringify(o.htpasswd)}`);
  if (o.token) {
    lines.push('auth:', '  token:', `    realm: ${JSON.stringify(o.token.realm)}`, `    service: ${TOKEN_SERVICE}`,
      `    issuer: ${TOKEN_ISSUER}`, `    rootcertbundle: ${JSON.stringify(o.token.bundle)}`);
  }
  return lines.join('\n') + '\n';
}

function tail(file: string, n = 20): string {
  try { return readFileSync(file, 'utf8').split('\n').slice(-n).join('\n'); } catch { return ''; }
}

async function killPid(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null || !child.pid) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  process.kill(child.pid, 'SIGTERM');
  const timer = setTimeout(() => { try { process.kill(child.pid!, 'SIGKILL'); } catch { /* gone */ } }, 5000);
  await exited;
  clearTimeout(timer);
}

async function waitReady(reg: { url: string; caFile?: string }, child: ChildProcess, logFile: string, timeoutMs: number): Promise<void> {
  const ca = reg.caFile ? readFileSync(reg.caFile) : undefined;
  const deadline = Date.now() + timeoutMs;
  let last = '';
  while (Date.now() < deadline) {
    if (child.exitCode !== null || child.signalCode !== null) {
      throw new Error(`docker-registry exited (${child.exitCode ?? child.signalCode}) before answering:\n${tail(logFile)}`);
    }
    try {
      // Unauthenticated on purpose: a 401 challenge is an answer too.
      const res = await rawRequest(`${reg.url}/v2/`, { ca, timeoutMs: 2000 });
      if (res.status === 200 || res.status === 401) return;
      last = `HTTP ${res.status}`;
    } catch (err) {
      last = (err as Error).message;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`docker-registry did not answer /v2/ within ${timeoutMs} ms (${last}):\n${tail(logFile)}`);
}

export async function startRegistry(opts: RegistryOptions): Promise<Registry> {
  const variant = opts.variant;
  const useTls = opts.tls ?? variant === 'tls';
  const users = opts.users ?? DEFAULT_USERS;
  const dir = await fs.mkdtemp(path.join(opts.baseDir ?? os.tmpdir(), `corral-registry-${variant}-`));
  let tokenServer: TokenServer | undefined;
  let child: ChildProcess | undefined;
  try {
    const storageDir = path.join(dir, 'storage');
    await fs.mkdir(storageDir);
    let caFile: string | undefined;
    let tls: { cert: string; key: string } | undefined;
    if (useTls) {
      const ca = makeCA(dir);
      const srv = makeServerCert(dir, ca, ['127.0.0.1', 'localhost']);
      caFile = ca.certFile;
      tls = { cert: srv.certFile, key: srv.keyFile };
    }
    let htpasswd: string | undefined;
    if (variant === 'basic') {
      htpasswd = path.join(dir, 'htpasswd');
      // distribution accepts bcrypt entries only.
      const lines = Object.entries(users).map(([u, p]) => execFileSync('htpasswd', ['-nbB', u, p], { encoding: 'utf8' }).trim());
      await fs.writeFile(htpasswd, lines.join('\n') + '\n');
    }
    let token: { realm: string; bundle: string } | undefined;
    if (variant === 'token') {
      const signer = makeTokenSigner(dir);
      tokenServer = await spawnTokenServer({
        signer: { keyPem: signer.keyPem, certB64: signer.certB64 }, service: TOKEN_SERVICE, issuer: TOKEN_ISSUER,
        users, anonymousPull: opts.anonymousPull,
      }, dir);
      token = { realm: tokenServer.realm, bundle: signer.certFile };
    }

    const logFile = path.join(dir, 'registry.log');
    const configFile = path.join(dir, 'config.yml');
    for (let attempt = 0; ; attempt++) {
      const port = await freePort();
      await fs.writeFile(configFile, yamlConfig({ port, storage: storageDir, tls, htpasswd, token }));
      const fd = openSync(logFile, 'a');
      const [cmd, args] = withParentDeathSignal(opts.binary ?? '/usr/bin/docker-registry', ['serve', configFile]);
      child = spawn(cmd, args, { stdio: ['ignore', fd, fd] });
      closeSync(fd);
      const url = `${useTls ? 'https' : 'http'}://127.0.0.1:${port}`;
      try {
        await waitReady({ url, caFile }, child, logFile, opts.readyTimeoutMs ?? 20_000);
      } catch (err) {
        await killPid(child);
        // Another process may have taken the port between probing and binding: try another.
        if (attempt < 2 && /address already in use/.test(tail(logFile))) continue;
        throw err;
      }
      const proc = child;
      const ts = tokenServer;
      let stopped = false;
      return {
        variant, url, host: `127.0.0.1:${port}`, port, caFile, users, storageDir, dir, pid: proc.pid!, logFile,
        ...(ts ? { tokenRealm: ts.realm, tokenService: TOKEN_SERVICE, tokenServer: ts } : {}),
        async stop() {
          if (stopped) return;
          stopped = true;
          await killPid(proc);
          await ts?.stop();
          await fs.rm(dir, { recursive: true, force: true });
        },
      };
    }
  } catch (err) {
    if (child) await killPid(child);
    await tokenServer?.stop();
    await fs.rm(dir, { recursive: true, force: true });
    throw err;
  }
}

/**
 * Mirror endpoints with a namespace for each upstream host: { 'registry.k8s.io':
 * 'http://127.0.0.1:PORT/registry.k8s.io', ... } (the pushed repositories start with the host).
 */
export function mirrorsFor(reg: Pick<Registry, 'url'>, hosts: string[] = MIRRORED_HOSTS): Record<string, string> {
  return Object.fromEntries(hosts.map((h) => [h, `${reg.url}/${h}`]));
}

/** A client for the registry with the first configured user's credentials (or the given ones). */
export function registryClient(reg: Registry, user?: { username: string; password: string }): RegistryClient {
  const first = Object.entries(reg.users)[0];
  const needsAuth = reg.variant === 'basic' || reg.variant === 'token';
  const cred = user ?? (needsAuth && first ? { username: first[0], password: first[1] } : undefined);
  return new RegistryClient({ url: reg.url, ca: reg.caFile, ...(cred ?? {}) });
}

export interface PushedRef {
  image: string;
  /** Repository on the local registry, e.g. 'registry.k8s.io/pause' or 'corral/busybox'. */
  repository: string;
  tag: string;
  /** Digest of the top-level manifest / index as the registry reports it (== the layout's). */
  digest: string;
  /** Pullable reference through the local registry: '127.0.0.1:PORT/<repository>:<tag>'. */
  reference: string;
}

export type PushFilter = string[] | ((img: BuiltImage) => boolean);

/**
 * distribution verifies every uploaded blob against its digest, so a blob whose bytes lie about
 * their digest can only be planted in the storage directly: the data file and the repository's
 * layer link, exactly where the filesystem driver keeps them.
 */
async function plantBlob(reg: Registry, repo: string, digest: string, data: Buffer): Promise<void> {
  const hex = digest.slice('sha256:'.length);
  const root = path.join(reg.storageDir, 'docker', 'registry', 'v2');
  const blobDir = path.join(root, 'blobs', 'sha256', hex.slice(0, 2), hex);
  await fs.mkdir(blobDir, { recursive: true });
  await fs.writeFile(path.join(blobDir, 'data'), data);
  const link = path.join(root, 'repositories', repo, '_layers', 'sha256', hex);
  await fs.mkdir(link, { recursive: true });
  await fs.writeFile(path.join(link, 'link'), digest);
}

/** Pushes built images (all, or those the filter selects) to every ref, digests preserved. */
export async function pushImages(reg: Registry, imagesDir: string, filter?: PushFilter): Promise<PushedRef[]> {
  const manifest: ImagesManifest = await loadImages(imagesDir);
  const store = new BlobStore(path.join(imagesDir, manifest.layout));
  const client = registryClient(reg);
  if (Array.isArray(filter)) {
    const unknown = filter.filter((n) => !manifest.images.some((i) => i.name === n));
    if (unknown.length > 0) throw new Error(`pushImages: not built in ${imagesDir}: ${unknown.join(', ')} (the large image needs --large)`);
  }
  const selected = manifest.images.filter((img) =>
    !filter ? true : Array.isArray(filter) ? filter.includes(img.name) : filter(img));
  const done = new Set<string>();
  const pushed: PushedRef[] = [];

  const pushManifestTree = async (img: BuiltImage, repo: string, d: Pick<Descriptor, 'digest' | 'mediaType'>): Promise<Buffer> => {
    const bytes = await store.read(d.digest);
    const key = `${repo}@${d.digest}`;
    if (done.has(key)) return bytes;
    const doc = JSON.parse(bytes.toString()) as { manifests?: Descriptor[]; config?: Descriptor; layers?: Descriptor[] };
    if (d.mediaType === MT.ociIndex || d.mediaType === MT.dockerList) {
      for (const m of doc.manifests ?? []) {
        const child = await pushManifestTree(img, repo, m);
        await client.putManifest(repo, m.digest, m.mediaType, child);
      }
    } else {
      for (const b of [doc.config!, ...(doc.layers ?? [])]) {
        const bkey = `${repo}@${b.digest}`;
        if (done.has(bkey)) continue;
        const data = await store.read(b.digest);
        if (img.tamperedBlobs?.includes(b.digest)) await plantBlob(reg, repo, b.digest, data);
        else await client.pushBlob(repo, b.digest, data);
        done.add(bkey);
      }
    }
    done.add(key);
    return bytes;
  };

  for (const img of selected) {
    for (const ref of img.refs) {
      const repo = localRepo(ref);
      const bytes = await pushManifestTree(img, repo, img);
      const digest = await client.putManifest(repo, ref.tag, img.mediaType, bytes);
      if (digest && digest !== img.digest) throw new Error(`push ${repo}:${ref.tag}: registry says ${digest}, layout has ${img.digest}`);
      pushed.push({ image: img.name, repository: repo, tag: ref.tag, digest: img.digest, reference: `${reg.host}/${repo}:${ref.tag}` });
    }
  }
  client.close();
  return pushed;
}
