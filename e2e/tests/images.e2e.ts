/**
 * ImageService (issue 4) end to end: crictl against a real daemon and the real test registries
 * (e2e/registry): tags and digests, multi-platform, compressions and media types, every auth
 * variant (with a wrong password), mirrors with fallback, concurrent pulls, remove + GC, hostile
 * images, `corral import`, a restart.
 */
import test from 'ava';
import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, lstatSync } from 'node:fs';
import { join } from 'node:path';
import { startHarness, runOk, run, sleep, type Harness } from '../harness/index.js';
import { DAEMON_MAIN } from '../harness/paths.js';
import { criCall, GRPC_STATUS } from '../harness/cri.js';
import { ensureImages } from '../harness/registry.js';
import { loadImages, localName, type ImagesManifest } from '../images/manifest.js';
import { startRegistry, pushImages, type Registry } from '../registry/registry.js';

let h: Harness;
let imagesDir: string;
let built: ImagesManifest;
const extra: Registry[] = [];
let basic: Registry;
let token: Registry;
let tls: Registry;
let plain: Registry;

/** "corral/busybox:latest" on the harness registry. */
const local = (name: string) => `${h.registry!.host}/${name}`;

interface CriImage { id: string; repoTags: string[]; repoDigests: string[]; size: string; uid?: { value: string } | null; username: string; pinned: boolean }

test.before(async () => {
  imagesDir = await ensureImages();
  built = await loadImages(imagesDir);
  basic = await startRegistry({ variant: 'basic' });
  extra.push(basic);
  token = await startRegistry({ variant: 'token' });
  extra.push(token);
  tls = await startRegistry({ variant: 'tls' });
  extra.push(tls);
  plain = await startRegistry({ variant: 'plain' });
  extra.push(plain);
  for (const r of extra) await pushImages(r, imagesDir, ['busybox']);
  h = await startHarness({
    config: {
      registries: {
        [tls.host]: { ca_file: tls.caFile },
        // A mirror that is down, one without the image, then the one that has it.
        'mirror-test.invalid': { mirrors: ['http://127.0.0.1:9/dead', `${plain.url}/nothing-here`, `${plain.url}/docker.io`] },
      },
      pull: { max_concurrent_downloads: 4 },
      // One pattern of each form: glob, keyword, exact (a name without a tag means :latest).
      image: { pinned_images: ['docker.io/library/busybox:*', '*test-image-user-uid*', 'gcr.io/k8s-staging-cri-tools/test-image-user-username'] },
    },
  });
});

test.after.always(async () => {
  await h?.stop();
  for (const r of extra) await r.stop();
});

async function images(): Promise<CriImage[]> {
  return (await h.crictlJson<{ images: CriImage[] }>(['images', '-o', 'json'])).images;
}

async function inspect(ref: string): Promise<{ status: CriImage; info: Record<string, any> }> {
  return h.crictlJson(['inspecti', ref]);
}

function storeUsage(): { files: number } {
  let files = 0;
  const walk = (d: string) => {
    for (const n of readdirSync(d)) {
      const p = join(d, n);
      files++;
      if (lstatSync(p).isDirectory()) walk(p);
    }
  };
  for (const d of ['content', 'snapshots', 'images']) if (existsSync(join(h.rootDir, d))) walk(join(h.rootDir, d));
  return { files };
}

test.serial('pull by tag through a mirror, then by digest; status reports tags, digests, size, user', async (t) => {
  const out = await h.crictlOk(['pull', 'docker.io/library/busybox:latest']);
  const id = /sha256:[0-9a-f]{64}/.exec(out)?.[0];
  t.truthy(id, out);
  const st = await inspect('busybox');
  t.is(st.status.id, id!);
  t.deepEqual(st.status.repoTags, ['docker.io/library/busybox:latest']);
  t.is(st.status.repoDigests.length, 1);
  t.true(Number(st.status.size) > 0);
  const digest = st.status.repoDigests[0]!.split('@')[1]!;
  const byDigest = await h.crictlOk(['pull', `docker.io/library/busybox@${digest}`]);
  t.true(byDigest.includes(id!));
  t.truthy((await inspect(`docker.io/library/busybox@${digest}`)).status);
  // Verbose info carries manifest and config.
  t.truthy(st.info.info ?? st.info.manifest ?? st.info.config, JSON.stringify(Object.keys(st.info)));
});

test.serial('uid and username come from the image config', async (t) => {
  for (const [name, field] of [['gcr.io/k8s-staging-cri-tools/test-image-user-uid:latest', 'uid'], ['gcr.io/k8s-staging-cri-tools/test-image-user-username:latest', 'username']] as const) {
    await h.crictlOk(['pull', name]);
    const st = await inspect(name);
    if (field === 'uid') t.truthy(st.status.uid?.value, JSON.stringify(st.status));
    else t.truthy(st.status.username, JSON.stringify(st.status));
  }
});

test.serial('pinned images: image.pinned_images patterns mark images pinned in images and inspecti; rmi still removes them', async (t) => {
  const other = local('corral/compress:gzip');
  await h.crictlOk(['pull', other]);
  const pinned = Object.fromEntries((await images()).flatMap((i) => i.repoTags.map((tag) => [tag, i.pinned])));
  t.true(pinned['docker.io/library/busybox:latest'], 'glob');
  t.true(pinned['gcr.io/k8s-staging-cri-tools/test-image-user-uid:latest'], 'keyword');
  t.true(pinned['gcr.io/k8s-staging-cri-tools/test-image-user-username:latest'], 'exact');
  t.false(pinned[other]);
  t.true((await inspect('busybox')).status.pinned);
  t.false((await inspect(other)).status.pinned);
  // Pinning keeps the kubelet's image GC away; an explicit RemoveImage still removes.
  const uid = 'gcr.io/k8s-staging-cri-tools/test-image-user-uid:latest';
  await h.crictlOk(['rmi', uid]);
  t.false((await images()).some((i) => i.repoTags.includes(uid)));
});

test.serial('multi-platform index and manifest list resolve to this host', async (t) => {
  for (const tag of ['latest', 'docker']) {
    await h.crictlOk(['pull', local(`corral/multiarch:${tag}`)]);
    const st = await inspect(local(`corral/multiarch:${tag}`));
    // crictl merges the verbose info keys (parsed as JSON) into its top-level object.
    const cfg = (st as unknown as { config?: { architecture: string } }).config ?? st.info?.imageSpec;
    t.is(cfg.architecture, 'amd64', tag);
  }
});

test.serial('gzip, zstd and uncompressed layers; OCI and Docker media types', async (t) => {
  for (const tag of ['corral/compress:gzip', 'corral/compress:zstd', 'corral/compress:uncompressed', 'corral/mediatypes:oci', 'corral/mediatypes:docker']) {
    const r = await h.crictl(['pull', local(tag)]);
    t.is(r.code, 0, `${tag}: ${r.stderr}`);
  }
});

test.serial('basic auth: right credentials pull, a wrong password says unauthorized for that registry', async (t) => {
  const [user, pass] = Object.entries(basic.users)[0]!;
  const ref = `${basic.host}/corral/busybox:latest`;
  const bad = await h.crictl(['pull', '--creds', `${user}:WRONG-e2e-PASSWORD`, ref]);
  t.not(bad.code, 0);
  t.regex(bad.stderr, /unauthorized/i);
  t.true(bad.stderr.includes(basic.host), bad.stderr);
  t.false(bad.stderr.includes('WRONG-e2e-PASSWORD'));
  t.false(h.daemonLog().includes('WRONG-e2e-PASSWORD'));
  const anon = await h.crictl(['pull', ref]);
  t.not(anon.code, 0);
  await h.crictlOk(['pull', '--creds', `${user}:${pass}`, ref]);
  t.false(h.daemonLog().includes(pass));
});

test.serial('AuthConfig.server_address: credentials go only to the registry they name', async (t) => {
  const [user, pass] = Object.entries(basic.users)[0]!;
  const ref = `${basic.host}/corral/busybox:latest`;
  // crictl has no flag for server_address: PullImage directly.
  const pull = (server_address: string) => criCall<{ image_ref: string }>(h.socket, 'ImageService', 'PullImage', { image: { image: ref }, auth: { username: user, password: pass, server_address } });
  // Drop the tag an earlier test pulled, so that every pull below asks the registry.
  await h.crictl(['rmi', ref]);
  const hostOnly = basic.host.replace(/:\d+$/, '');
  for (const other of ['registry.example.com', `https://registry.example.com/v2/`, hostOnly, `${hostOnly}:1`]) {
    const err = await pull(other).then(() => undefined, (e: { code: number; details: string }) => e);
    t.is(err?.code, GRPC_STATUS.UNAUTHENTICATED, other);
    t.regex(err?.details ?? '', new RegExp(`unauthorized: registry ${basic.host.replace(/\./g, '\\.')}: anonymous access denied \\(.*not sent`), other);
  }
  t.false((await images()).some((i) => i.repoTags.includes(ref)));
  for (const same of [basic.host, `http://${basic.host}/v2/`]) {
    t.regex((await pull(same)).image_ref, /^sha256:[0-9a-f]{64}$/, same);
    await h.crictlOk(['rmi', ref]);
  }
  t.false(h.daemonLog().includes(pass));
});

test.serial('token auth: bearer flow with credentials and with the auth field; wrong password refused', async (t) => {
  const [user, pass] = Object.entries(token.users)[0]!;
  const ref = `${token.host}/corral/busybox:latest`;
  const bad = await h.crictl(['pull', '--creds', `${user}:nope`, ref]);
  t.not(bad.code, 0);
  t.regex(bad.stderr, new RegExp(`unauthorized.*${token.host.replace(/\./g, '\\.')}`));
  await h.crictlOk(['pull', '--auth', Buffer.from(`${user}:${pass}`).toString('base64'), ref]);
  t.true((token.tokenServer?.requests ?? []).some((r) => r.user === user && r.status === 200));
});

test.serial('TLS registry with a per-registry CA file', async (t) => {
  const r = await h.crictl(['pull', `${tls.host}/corral/busybox:latest`]);
  t.is(r.code, 0, r.stderr);
});

test.serial('mirrors are tried in order: down, missing, then the one with the image', async (t) => {
  const r = await h.crictl(['pull', 'mirror-test.invalid/library/busybox:1.37.0']);
  t.is(r.code, 0, r.stderr);
  t.true((await inspect('mirror-test.invalid/library/busybox:1.37.0')).status.repoTags.includes('mirror-test.invalid/library/busybox:1.37.0'));
});

test.serial('concurrent pulls of one image download it once', async (t) => {
  const ref = local('corral/layers:latest');
  const before = (h.daemonLog().match(/pulled \S*corral\/layers:latest /g) ?? []).length;
  // Four RPCs in the same tick (crictl processes start too far apart on a loaded host: the
  // first pull could finish before the last one started, which then logs a pull of its own).
  await Promise.all([1, 2, 3, 4].map(() => criCall(h.socket, 'ImageService', 'PullImage', { image: { image: ref } })));
  const after = (h.daemonLog().match(/pulled \S*corral\/layers:latest /g) ?? []).length;
  t.is(after - before, 1);
});

test.serial('remove by tag drops that tag only; remove by id garbage-collects back to the size before', async (t) => {
  for (const i of await images()) await h.crictlOk(['rmi', i.id]);
  t.deepEqual(await images(), []);
  const before = storeUsage();
  const a = local('gcr.io/k8s-staging-cri-tools/test-image-tags:1');
  const b = local('gcr.io/k8s-staging-cri-tools/test-image-tags:2');
  await h.crictlOk(['pull', a]);
  await h.crictlOk(['pull', b]);
  const id = (await inspect(a)).status.id;
  t.deepEqual((await inspect(a)).status.repoTags.sort(), [a, b].sort());
  // RemoveImage with a tag removes only that name (crictl prints every tag as deleted anyway).
  await h.crictlOk(['rmi', a]);
  t.deepEqual((await inspect(b)).status.repoTags, [b]);
  await h.crictlOk(['rmi', id]);
  t.deepEqual(await images(), []);
  t.deepEqual(storeUsage(), before);
  // Unknown images: success.
  const r = await h.crictl(['rmi', 'sha256:' + 'e'.repeat(64)]);
  t.false(/Internal|Unknown desc/.test(r.stderr), r.stderr);
});

test.serial('imagefsinfo reports used bytes, inodes and mountpoints', async (t) => {
  await h.crictlOk(['pull', 'docker.io/library/busybox:latest']);
  const info = await h.crictlJson<{ status: { imageFilesystems: any[]; containerFilesystems: any[] } }>(['imagefsinfo']);
  const img = info.status.imageFilesystems[0];
  t.true(Number(img.usedBytes.value) > 0);
  t.true(Number(img.inodesUsed.value) > 0);
  t.true(img.fsId.mountpoint.startsWith(h.rootDir));
  t.true(info.status.containerFilesystems[0].fsId.mountpoint.startsWith(h.rootDir));
});

for (const img of ['hostile-dotdot', 'hostile-abspath', 'hostile-symlink', 'hostile-symlink-layers', 'hostile-hardlink', 'hostile-whiteout', 'hostile-baddigest']) {
  test.serial(`hostile image ${img} is refused and touches nothing outside`, async (t) => {
    const b = built.images.find((i) => i.name === img)!;
    const r = await h.crictl(['pull', local(localName(b.refs[0]!))]);
    t.not(r.code, 0, r.stdout);
    t.regex(r.stderr, img === 'hostile-baddigest' ? /digest mismatch/ : /rejected/);
    for (const p of b.expect?.hostPaths ?? []) t.false(existsSync(p), p);
    t.false((await images()).some((i) => i.repoTags.some((x) => x.includes(img))));
  });
}

test.serial('corral import loads an OCI archive and a docker save archive (daemon stopped: one writer)', async (t) => {
  const oci = join(h.dir, 'import-oci.tar');
  const docker = join(h.dir, 'import-docker.tar');
  execFileSync('skopeo', ['copy', '-q', `oci:${join(imagesDir, 'oci')}:busybox`, `oci-archive:${oci}:example.com/imported/oci:1`]);
  execFileSync('skopeo', ['copy', '-q', `oci:${join(imagesDir, 'oci')}:layers`, `docker-archive:${docker}:example.com/imported/docker:2`]);
  await h.stopDaemon();
  try {
    for (const file of [oci, docker]) {
      const res = await runOk(process.execPath, [DAEMON_MAIN, 'import', '--config', h.configPath, file]);
      t.regex(res.stdout, /sha256:[0-9a-f]{64}/);
    }
  } finally {
    await h.startDaemon();
  }
  const tags = (await images()).flatMap((x) => x.repoTags);
  t.true(tags.includes('example.com/imported/oci:1'), tags.join(' '));
  t.true(tags.includes('example.com/imported/docker:2'), tags.join(' '));
});

test.serial('images survive a daemon restart', async (t) => {
  const before = (await images()).map((i) => i.id).sort();
  t.true(before.length > 0);
  await h.stopDaemon();
  await h.startDaemon();
  t.deepEqual((await images()).map((i) => i.id).sort(), before);
  const r = await run('true', []);
  t.is(r.code, 0);
});
