/**
 * An in-process OCI registry for unit tests: serves manifests and blobs over plain HTTP on
 * 127.0.0.1, with optional basic or token auth, request counting and fault injection
 * (stalled or cut blob transfers). Also builds small images from tar entries.
 */
import { createHash } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { gzipSync } from 'node:zlib';
import { writeTar, type WEntry } from '../snapshot/tar-writer.js';

export const sha = (b: Buffer | string) => `sha256:${createHash('sha256').update(b).digest('hex')}`;

export interface Blob { digest: string; size: number; mediaType: string; data: Buffer }

export interface BuiltImage {
  manifest: Buffer;
  manifestDigest: string;
  config: Buffer;
  configDigest: string;
  layers: Blob[];
  diffIds: string[];
}

/** A zstd frame of raw (stored) blocks: valid zstd without needing a compressor. */
export function zstdStored(data: Buffer): Buffer {
  const parts: Buffer[] = [Buffer.from([0x28, 0xb5, 0x2f, 0xfd, 0x00, 0x58])]; // magic, FHD, window 2^21
  const max = 128 << 10;
  for (let off = 0; off < data.length || off === 0; off += max) {
    const chunk = data.subarray(off, off + max);
    const last = off + max >= data.length ? 1 : 0;
    const h = (chunk.length << 3) | (0 << 1) | last;
    parts.push(Buffer.from([h & 0xff, (h >> 8) & 0xff, (h >> 16) & 0xff]), chunk);
    if (data.length === 0) break;
  }
  return Buffer.concat(parts);
}

export function buildImage(layers: WEntry[][], opts: { compression?: 'gzip' | 'zstd' | 'none'; config?: Record<string, unknown>; docker?: boolean } = {}): BuiltImage {
  const comp = opts.compression ?? 'gzip';
  const blobs: Blob[] = [];
  const diffIds: string[] = [];
  for (const entries of layers) {
    const tar = writeTar(entries);
    diffIds.push(sha(tar));
    const data = comp === 'gzip' ? gzipSync(tar) : comp === 'zstd' ? zstdStored(tar) : tar;
    const mediaType = opts.docker
      ? 'application/vnd.docker.image.rootfs.diff.tar.gzip'
      : `application/vnd.oci.image.layer.v1.tar${comp === 'none' ? '' : '+' + comp}`;
    blobs.push({ digest: sha(data), size: data.length, mediaType, data });
  }
  const config = Buffer.from(JSON.stringify({
    architecture: 'amd64', os: 'linux', config: { Env: ['PATH=/bin'], Cmd: ['sh'], ...(opts.config ?? {}) },
    rootfs: { type: 'layers', diff_ids: diffIds },
  }));
  const manifest = Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: opts.docker ? 'application/vnd.docker.distribution.manifest.v2+json' : 'application/vnd.oci.image.manifest.v1+json',
    config: { mediaType: opts.docker ? 'application/vnd.docker.container.image.v1+json' : 'application/vnd.oci.image.config.v1+json', digest: sha(config), size: config.length },
    layers: blobs.map((b) => ({ mediaType: b.mediaType, digest: b.digest, size: b.size })),
  }));
  return { manifest, manifestDigest: sha(manifest), config, configDigest: sha(config), layers: blobs, diffIds };
}

export interface FakeRegistryOptions {
  auth?: { kind: 'basic' | 'bearer'; username: string; password: string };
}

export class FakeRegistry {
  readonly server: http.Server;
  /** repo -> reference (tag or digest) -> manifest */
  private readonly manifests = new Map<string, Map<string, { body: Buffer; mediaType: string }>>();
  private readonly blobs = new Map<string, Buffer>();
  /** "GET /v2/..." -> count */
  readonly hits = new Map<string, number>();
  readonly log: Array<{ method: string; url: string; headers: http.IncomingHttpHeaders }> = [];
  /** Blob digests whose transfer stops after half the bytes, once (then cleared). */
  readonly cutOnce = new Set<string>();
  /** Blob digests whose transfer never sends a byte. */
  readonly stall = new Set<string>();
  /** Blob digests served with other bytes of the same length. */
  readonly tamper = new Set<string>();
  /** Blob GETs answer 307 to /storage/<digest> on "localhost" (another host name, as a CDN is). */
  redirectBlobs = false;
  /** Delay before each blob response, ms. */
  blobDelayMs = 0;
  port = 0;

  constructor(private readonly opts: FakeRegistryOptions = {}) {
    this.server = http.createServer((req, res) => this.handle(req, res));
  }

  get host(): string {
    return `127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    await new Promise<void>((r) => this.server.listen(0, '127.0.0.1', () => r()));
    this.port = (this.server.address() as AddressInfo).port;
    return this;
  }

  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  push(repo: string, tag: string, img: BuiltImage): void {
    const m = this.manifests.get(repo) ?? new Map();
    const mt = JSON.parse(img.manifest.toString()).mediaType;
    m.set(tag, { body: img.manifest, mediaType: mt });
    m.set(img.manifestDigest, { body: img.manifest, mediaType: mt });
    this.manifests.set(repo, m);
    this.blobs.set(img.configDigest, img.config);
    for (const l of img.layers) this.blobs.set(l.digest, l.data);
  }

  pushIndex(repo: string, tag: string, entries: Array<{ img: BuiltImage; platform: { os: string; architecture: string; variant?: string } }>): string {
    const index = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: 'application/vnd.oci.image.index.v1+json',
      manifests: entries.map((e) => ({ mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: e.img.manifestDigest, size: e.img.manifest.length, platform: e.platform })),
    }));
    for (const e of entries) this.push(repo, `_${e.img.manifestDigest.slice(7, 15)}`, e.img);
    const m = this.manifests.get(repo)!;
    m.set(tag, { body: index, mediaType: 'application/vnd.oci.image.index.v1+json' });
    m.set(sha(index), { body: index, mediaType: 'application/vnd.oci.image.index.v1+json' });
    return sha(index);
  }

  count(prefix: string): number {
    let n = 0;
    for (const [k, v] of this.hits) if (k.startsWith(prefix)) n += v;
    return n;
  }

  private authorized(req: http.IncomingMessage, res: http.ServerResponse): boolean {
    const a = this.opts.auth;
    if (!a) return true;
    const h = req.headers.authorization ?? '';
    const basic = `Basic ${Buffer.from(`${a.username}:${a.password}`).toString('base64')}`;
    if (a.kind === 'basic') {
      if (h === basic) return true;
      res.writeHead(401, { 'WWW-Authenticate': 'Basic realm="fake"' }).end();
      return false;
    }
    if (h === 'Bearer good-token') return true;
    res.writeHead(401, { 'WWW-Authenticate': `Bearer realm="http://${this.host}/token",service="fake-registry",scope="repository:x:pull"` }).end();
    return false;
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://x');
    this.log.push({ method: req.method ?? '', url: url.pathname + url.search, headers: req.headers });
    const key = `${req.method} ${url.pathname}`;
    this.hits.set(key, (this.hits.get(key) ?? 0) + 1);
    if (url.pathname === '/token') {
      const a = this.opts.auth!;
      const basic = `Basic ${Buffer.from(`${a.username}:${a.password}`).toString('base64')}`;
      if (req.headers.authorization !== basic) return void res.writeHead(401).end('{"errors":[{"code":"UNAUTHORIZED"}]}');
      return void res.writeHead(200, { 'Content-Type': 'application/json' }).end(JSON.stringify({ token: 'good-token' }));
    }
    const storage = /^\/storage\/(sha256:[0-9a-f]{64})$/.exec(url.pathname);
    if (storage) {
      const b = this.blobs.get(storage[1]!);
      return void (b ? res.writeHead(200, { 'Content-Length': b.length }).end(b) : res.writeHead(404).end());
    }
    if (url.pathname === '/v2/') return void (this.authorized(req, res) && res.writeHead(200).end('{}'));
    const m = /^\/v2\/(.+)\/(manifests|blobs)\/([^/]+)$/.exec(url.pathname);
    if (!m) return void res.writeHead(404).end();
    if (!this.authorized(req, res)) return;
    const [, repo, kind, ref] = m as unknown as [string, string, string, string];
    if (kind === 'manifests') {
      const man = this.manifests.get(repo)?.get(ref);
      if (!man) return void res.writeHead(404, { 'Content-Type': 'application/json' }).end('{"errors":[{"code":"MANIFEST_UNKNOWN"}]}');
      return void res.writeHead(200, { 'Content-Type': man.mediaType, 'Docker-Content-Digest': sha(man.body), 'Content-Length': man.body.length }).end(req.method === 'HEAD' ? undefined : man.body);
    }
    let blob = this.blobs.get(ref);
    if (!blob) return void res.writeHead(404).end();
    if (this.redirectBlobs) return void res.writeHead(307, { Location: `http://localhost:${this.port}/storage/${ref}` }).end();
    if (this.tamper.has(ref)) {
      blob = Buffer.from(blob);
      blob[blob.length - 1] = blob[blob.length - 1]! ^ 0xff;
    }
    const send = () => {
      if (this.stall.has(ref)) {
        res.writeHead(200, { 'Content-Length': blob!.length });
        res.flushHeaders();
        return;
      }
      const range = /^bytes=(\d+)-$/.exec(String(req.headers.range ?? ''));
      const start = range ? Number(range[1]) : 0;
      const body = blob!.subarray(start);
      res.writeHead(range ? 206 : 200, { 'Content-Length': body.length, 'Content-Type': 'application/octet-stream' });
      if (this.cutOnce.has(ref) && body.length > 1) {
        this.cutOnce.delete(ref);
        res.write(body.subarray(0, Math.floor(body.length / 2)), () => res.destroy());
        return;
      }
      res.end(body);
    };
    if (this.blobDelayMs) setTimeout(send, this.blobDelayMs);
    else send();
  }
}
