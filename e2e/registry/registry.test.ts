import test from 'ava';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { buildImages } from '../images/build.js';
import { sha256 } from '../images/oci.js';
import type { ImagesManifest } from '../images/manifest.js';
import { parseChallenge, rawRequest, RegistryClient } from './client.js';
import { pushImages, registryClient, startRegistry, type Registry } from './registry.js';

const ACCEPT = 'application/vnd.oci.image.manifest.v1+json';
let imagesDir: string;
let images: ImagesManifest;
const running: Registry[] = [];

test.before(async () => {
  imagesDir = mkdtempSync(join(tmpdir(), 'corral-registry-test-images-'));
  images = await buildImages({ outDir: imagesDir, only: ['busybox', 'hostile-baddigest', 'multiarch-oci'] });
});
test.after.always(async () => {
  for (const r of running) await r.stop();
  rmSync(imagesDir, { recursive: true, force: true });
});

const busyboxDigest = (): string => images.images.find((i) => i.name === 'busybox')!.digest;

async function start(variant: 'plain' | 'tls' | 'basic' | 'token'): Promise<Registry> {
  const reg = await startRegistry({ variant });
  running.push(reg);
  await pushImages(reg, imagesDir, ['busybox']);
  return reg;
}

test('plain: pushed manifests keep their digests under upstream-host and short names', async (t) => {
  const reg = await start('plain');
  t.regex(reg.url, /^http:\/\/127\.0\.0\.1:\d+$/);
  for (const path of ['corral/busybox/manifests/latest', 'docker.io/library/busybox/manifests/1.37.0']) {
    const res = await fetch(`${reg.url}/v2/${path}`, { headers: { accept: ACCEPT } });
    t.is(res.status, 200, path);
    t.is(res.headers.get('docker-content-digest'), busyboxDigest());
    t.is(sha256(Buffer.from(await res.arrayBuffer())), busyboxDigest());
  }
});

test('tls: served over HTTPS with the generated CA only', async (t) => {
  const reg = await start('tls');
  t.truthy(reg.caFile);
  t.regex(reg.url, /^https:/);
  await t.throwsAsync(rawRequest(`${reg.url}/v2/`));
  const res = await rawRequest(`${reg.url}/v2/corral/busybox/manifests/latest`, { ca: reg.caFile, headers: { accept: ACCEPT } });
  t.is(res.status, 200);
  t.is(sha256(res.body), busyboxDigest());
});

test('basic: 401 without credentials, 200 with them', async (t) => {
  const reg = await start('basic');
  const url = `${reg.url}/v2/corral/busybox/manifests/latest`;
  const anon = await fetch(url, { headers: { accept: ACCEPT } });
  t.is(anon.status, 401);
  t.regex(anon.headers.get('www-authenticate') ?? '', /^Basic realm=/);
  const [user, pass] = Object.entries(reg.users)[0];
  const bad = await fetch(url, { headers: { accept: ACCEPT, authorization: 'Basic ' + Buffer.from(`${user}:nope`).toString('base64') } });
  t.is(bad.status, 401);
  const ok = await fetch(url, { headers: { accept: ACCEPT, authorization: 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64') } });
  t.is(ok.status, 200);
  t.is(ok.headers.get('docker-content-digest'), busyboxDigest());
});

test('token: the WWW-Authenticate challenge leads to a token that opens the manifest', async (t) => {
  const reg = await start('token');
  const url = `${reg.url}/v2/corral/busybox/manifests/latest`;
  const anon = await fetch(url, { headers: { accept: ACCEPT } });
  t.is(anon.status, 401);
  const { scheme, params } = parseChallenge(anon.headers.get('www-authenticate') ?? '');
  t.is(scheme, 'bearer');
  t.is(params.realm, reg.tokenRealm!);
  t.is(params.scope, 'repository:corral/busybox:pull');

  const tokenUrl = new URL(params.realm);
  tokenUrl.searchParams.set('service', params.service);
  tokenUrl.searchParams.set('scope', params.scope);
  const [user, pass] = Object.entries(reg.users)[0];
  const refused = await fetch(tokenUrl, { headers: { authorization: 'Basic ' + Buffer.from(`${user}:wrong`).toString('base64') } });
  t.is(refused.status, 401);
  t.is((await fetch(tokenUrl)).status, 401, 'no anonymous tokens unless anonymousPull');
  const tokRes = await fetch(tokenUrl, { headers: { authorization: 'Basic ' + Buffer.from(`${user}:${pass}`).toString('base64') } });
  t.is(tokRes.status, 200);
  const { token } = await tokRes.json() as { token: string };
  const claims = JSON.parse(Buffer.from(token.split('.')[1], 'base64url').toString()) as { access: unknown };
  t.deepEqual(claims.access, [{ type: 'repository', name: 'corral/busybox', actions: ['pull'] }]);

  const ok = await fetch(url, { headers: { accept: ACCEPT, authorization: `Bearer ${token}` } });
  t.is(ok.status, 200);
  t.is(ok.headers.get('docker-content-digest'), busyboxDigest());
  // A pull token does not open another repository.
  const other = await fetch(`${reg.url}/v2/docker.io/library/busybox/manifests/latest`, { headers: { accept: ACCEPT, authorization: `Bearer ${token}` } });
  t.is(other.status, 401);
  t.true(reg.tokenServer!.requests.some((r) => r.user === user && r.status === 200));
});

test('token: OAuth2 password grant (POST) issues tokens too', async (t) => {
  const reg = running.find((r) => r.variant === 'token') ?? await start('token');
  const [user, pass] = Object.entries(reg.users)[0];
  const res = await fetch(reg.tokenRealm!, {
    method: 'POST',
    headers: { 'content-type': 'application/x-www-form-urlencoded' },
    body: new URLSearchParams({ grant_type: 'password', username: user, password: pass, service: reg.tokenService!, scope: 'repository:corral/busybox:pull' }),
  });
  t.is(res.status, 200);
  const doc = await res.json() as { access_token: string; refresh_token: string };
  const ok = await fetch(`${reg.url}/v2/corral/busybox/manifests/latest`, { headers: { accept: ACCEPT, authorization: `Bearer ${doc.access_token}` } });
  t.is(ok.status, 200);
});

test('the planted blob is served with bytes that do not match its digest; an index keeps its digest', async (t) => {
  const reg = running.find((r) => r.variant === 'plain') ?? await start('plain');
  const pushed = await pushImages(reg, imagesDir, ['hostile-baddigest', 'multiarch-oci']);
  t.deepEqual(pushed.map((p) => p.reference).sort(), [`${reg.host}/corral/hostile-baddigest:latest`, `${reg.host}/corral/multiarch:latest`]);
  const bad = images.images.find((i) => i.name === 'hostile-baddigest')!;
  const client = registryClient(reg);
  const blob = await client.getBlob('corral/hostile-baddigest', bad.tamperedBlobs![0]);
  t.not(sha256(blob), bad.tamperedBlobs![0]);
  const idx = await client.getManifest('corral/multiarch', 'latest');
  t.is(idx.digest, images.images.find((i) => i.name === 'multiarch-oci')!.digest);
  t.is(idx.mediaType, 'application/vnd.oci.image.index.v1+json');
});

test('stop() ends the registry process and removes its directory', async (t) => {
  const reg = await startRegistry({ variant: 'token' });
  const { pid, dir } = reg;
  const tokenPid = reg.tokenServer!.pid!;
  await reg.stop();
  t.false(existsSync(dir));
  for (const p of [pid, tokenPid]) t.throws(() => process.kill(p, 0));
  // The client sees a refused connection, not a hang.
  await t.throwsAsync(new RegistryClient({ url: reg.url }).ping());
});
