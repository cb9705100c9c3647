/**
 * Every test image: what it contains, where it is pushed, what it is for. build.ts turns these
 * definitions into the OCI layout; README.md beside this file explains them for people.
 *
 * critest v1.37.0 names (pkg/validate/*.go, images/ of cri-tools) are kept exactly, with the
 * upstream registry host as the first path component of the local repository, so that a
 * registry mirror with a namespace serves them under their real names.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { euidProgram } from './elf.js';
import {
  BlobStore, makeLayer, writeImage, writeIndex, sha256, MT,
  type Compression, type Descriptor, type Format, type Layer, type Platform, type RunConfig,
} from './oci.js';
import type { Expectations, ImageCategory, ImageRef, NotReproducible } from './manifest.js';
import {
  BASE_GROUPS, BASE_USERS, BUSYBOX, HostFiles, IPCS, NMETER, PGREP, PKILL, binLinks,
  busyboxEntries, groupFile, passwdFile, type Group, type User,
} from './rootfs.js';
import { normalizeEntries, writeTar, type TarEntry } from './tar.js';

export interface LayerOpts { compression?: Compression; format?: Format; level?: number; raw?: boolean }

export interface BuildCtx {
  store: BlobStore;
  host: HostFiles;
  /** Tar (normalized unless raw) -> compressed blob in the store. */
  layer(entries: TarEntry[], opts?: LayerOpts): Promise<Layer>;
}

export interface BuildOutput {
  descriptor: Descriptor;
  configDigest?: string;
  layerMediaTypes: string[];
  platforms: string[];
  tamperedBlobs?: string[];
}

export interface ImageDef {
  name: string;
  category: ImageCategory;
  purpose: string;
  refs: ImageRef[];
  /** Built only on request (slow): buildImages({ large: true }) / --large. */
  large?: boolean;
  expect?: Expectations;
  /** Host files the image is made of (their content goes into the cache key). */
  hostInputs(host: HostFiles): string[];
  build(ctx: BuildCtx): Promise<BuildOutput>;
}

const PATH_ENV = 'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';
const NGINX = '/usr/sbin/nginx';
const CATATONIT = '/usr/bin/catatonit';
const DASH = '/usr/bin/dash';
/**
 * Debian's dynamically linked busybox, unpacked by e2e/setup-test-tools.sh: its ash, unlike
 * busybox-static's, executes commands from PATH and execs the last command of `sh -c`, as the
 * upstream busybox image's shell does. Without it the critest image falls back to dash.
 */
const BUSYBOX_SH = process.env.CORRAL_BUSYBOX_SH
  ?? fileURLToPath(new URL('../../../.tools/busybox-dyn/bin/busybox', import.meta.url));
const CRITEST_SH = existsSync(BUSYBOX_SH) ? BUSYBOX_SH : DASH;

const file = (path: string, data: string | Buffer, mode = 0o644, uid = 0, gid = 0): TarEntry =>
  ({ type: 'file', path, data: typeof data === 'string' ? Buffer.from(data) : data, mode, uid, gid });
const dir = (path: string, mode = 0o755, uid = 0, gid = 0): TarEntry => ({ type: 'dir', path, mode, uid, gid });

/** The busybox root filesystem every busybox-derived image starts from (one shared layer). */
function busyboxRoot(host: HostFiles, users: User[] = BASE_USERS, groups: Group[] = BASE_GROUPS): TarEntry[] {
  return [
    ...busyboxEntries(host),
    file('usr/bin/pgrep', PGREP, 0o755),
    file('usr/bin/pkill', PKILL, 0o755),
    file('usr/bin/ipcs', IPCS, 0o755),
    file('usr/bin/nmeter', NMETER, 0o755),
    file('etc/passwd', passwdFile(users)),
    file('etc/group', groupFile(groups)),
    file('etc/shadow', users.map((u) => `${u.name}:*:10933:0:99999:7:::\n`).join(''), 0o640, 0, 42),
    file('etc/hostname', 'corral-test\n'),
    dir('root', 0o700), dir('home'), dir('tmp', 0o1777), dir('var'), dir('var/www'), dir('var/spool/mail'),
    dir('var/run'), dir('run'), dir('proc', 0o555), dir('sys', 0o555), dir('dev'),
    dir('home/alice', 0o755, 1100, 1100), dir('home/bob', 0o755, 1101, 1101),
  ];
}

async function baseLayer(ctx: BuildCtx, opts: LayerOpts = {}): Promise<Layer> {
  return ctx.layer(busyboxRoot(ctx.host), opts);
}

async function single(ctx: BuildCtx, name: string, layers: Layer[], config: RunConfig,
  opts: { format?: Format; platform?: Platform } = {}): Promise<BuildOutput> {
  const platform = opts.platform ?? { architecture: 'amd64', os: 'linux' };
  const img = await writeImage(ctx.store, {
    layers,
    // The label makes images with identical layers distinct (own config => own image id), as
    // their upstream counterparts are; images meant to be one image share one definition.
    config: { Env: [PATH_ENV], ...config, Labels: { 'io.corral.e2e.image': name, ...(config.Labels ?? {}) } },
    format: opts.format ?? 'oci',
    platform,
  });
  return {
    descriptor: img.manifest,
    configDigest: img.config.digest,
    layerMediaTypes: layers.map((l) => l.descriptor.mediaType),
    platforms: [`${platform.os}/${platform.architecture}`],
  };
}

const busyboxInputs = (): string[] => [BUSYBOX];

function busyboxDerived(def: {
  name: string; category: ImageCategory; purpose: string; refs: ImageRef[];
  extra?: (host: HostFiles) => TarEntry[]; config?: RunConfig; extraInputs?: (host: HostFiles) => string[];
  expect?: Expectations;
}): ImageDef {
  return {
    name: def.name, category: def.category, purpose: def.purpose, refs: def.refs, expect: def.expect,
    hostInputs: (host) => [...busyboxInputs(), ...(def.extraInputs?.(host) ?? [])],
    async build(ctx) {
      const layers = [await baseLayer(ctx)];
      const extra = def.extra?.(ctx.host);
      if (extra && extra.length > 0) layers.push(await ctx.layer(extra));
      return single(ctx, def.name, layers, def.config ?? { Cmd: ['sh'] });
    },
  };
}

// ---- critest stand-ins -------------------------------------------------------------------

const K8S = 'registry.k8s.io';
const GCR = 'gcr.io';
const CRITOOLS = 'k8s-staging-cri-tools';

function nginxEntries(host: HostFiles, port: number): TarEntry[] {
  const conf = `user www-data;
worker_processes 1;
pid /var/run/nginx.pid;
events { worker_connections 128; }
http {
  default_type text/html;
  access_log /dev/stdout;
  server {
    listen ${port};
    location / { root /usr/share/nginx/html; index index.html; }
  }
}
`;
  return [
    ...host.binaryWithLibs(NGINX),
    file('etc/nginx/nginx.conf', conf),
    file('usr/share/nginx/html/index.html', '<!DOCTYPE html>\n<html><body><h1>Welcome to nginx!</h1></body></html>\n'),
    dir('var/log/nginx'), dir('var/lib/nginx'), dir('var/cache/nginx'), dir('var/lock'),
  ];
}

function nginxDef(name: string, port: number, refs: ImageRef[], purpose: string, category: ImageCategory = 'critest'): ImageDef {
  return busyboxDerived({
    name, category, refs, purpose,
    extra: (host) => nginxEntries(host, port),
    extraInputs: (host) => [NGINX, ...host.ldd(NGINX)],
    config: { Cmd: ['nginx', '-g', 'daemon off;'], ExposedPorts: { [`${port}/tcp`]: {} }, StopSignal: 'SIGQUIT' },
  });
}

const HTTPD_FOREGROUND = `#!/bin/sh
# Stand-in for the httpd image's httpd-foreground: busybox httpd, with Apache's first log lines.
# sh stays PID 1 with a TERM trap, so the container stops at once on SIGTERM.
echo "AH00558: httpd: Could not reliably determine the server's fully qualified domain name, using $(hostname -i 2>/dev/null). Set the 'ServerName' directive globally to suppress this message" >&2
httpd -f -p 80 -h /usr/local/apache2/htdocs &
pid=$!
trap 'kill $pid; exit 0' TERM INT
echo "[mpm_event:notice] [pid $$:tid $$] AH00489: Apache/2.4.39 (Unix) configured -- resuming normal operations" >&2
wait $pid
`;

function testImage(name: string, repo: string, tags: string[], fileName: string, purpose: string): ImageDef {
  return busyboxDerived({
    name, category: 'critest', purpose,
    refs: tags.map((tag) => ({ host: GCR, repo: `${CRITOOLS}/${repo}`, tag })),
    extra: () => [file(fileName, '')],
    expect: { present: ['/' + fileName] },
  });
}

function userImage(name: string, user: string): ImageDef {
  return busyboxDerived({
    name: `critest-${name}`, category: 'critest',
    purpose: `image config User "${user}": ImageStatus must report it (uid or username), spec "image status get image fields should not have Uid|Username empty"`,
    refs: [{ host: GCR, repo: `${CRITOOLS}/${name}`, tag: 'latest' }],
    config: { Cmd: ['sh'], User: user },
  });
}

const PREDEFINED_USERS: User[] = [...BASE_USERS, { name: 'default-user', uid: 1000, gid: 1000, home: '/home/default-user' }];
const PREDEFINED_GROUPS: Group[] = [
  ...BASE_GROUPS,
  { name: 'default-user', gid: 1000 },
  { name: 'group-defined-in-image', gid: 50000, members: ['default-user'] },
];

function critestImages(): ImageDef[] {
  const busyboxTags = ['1', '1-glibc', '1-musl', '1-uclibc', '1.35.0-glibc'];
  return [
    busyboxDerived({
      name: 'critest-busybox', category: 'critest',
      purpose: 'critest DefaultTestContainerImage (most specs): busybox with hard-linked applets, pgrep/pkill/ipcs stand-ins, users incl. nobody; /bin/sh is the ash of Debian\'s dynamic busybox (dash if absent)',
      refs: [{ host: K8S, repo: 'e2e-test-images/busybox', tag: '1.29-2' }],
      // busybox-static's shell runs applets in-process, so `sh -c ls` never executes /bin/ls and
      // the MaskedPaths spec (mask /bin/ls, expect "/bin/sh: ls: Permission denied") cannot fail
      // as it must. The ash of Debian's dynamic busybox executes commands from PATH and, like the
      // upstream image's shell, execs the last command of `sh -c` (StopContainer specs: `sh -c
      // top` must leave top, which handles SIGTERM, as pid 1).
      extra: (host) => [host.entry(CRITEST_SH, { at: 'bin/sh' }), ...host.ldd(CRITEST_SH).map((lib) => host.entry(lib))],
      extraInputs: (host) => [CRITEST_SH, ...host.ldd(CRITEST_SH)],
      config: { Cmd: ['sh'] },
    }),
    nginxDef('critest-nginx', 80, [{ host: K8S, repo: 'e2e-test-images/nginx', tag: '1.14-2' }],
      'critest web server (networking port mapping/forward on :80) and the HostPID/PodPID/ContainerPID specs: real nginx, /var/run/nginx.pid, "nginx: master process" in /proc/1/cmdline'),
    nginxDef('critest-hostnet-nginx', 12003, [{ host: GCR, repo: `${CRITOOLS}/hostnet-nginx-amd64`, tag: 'latest' }],
      'critest streaming hostNetwork port-forward spec: nginx listening on 12003'),
    busyboxDerived({
      name: 'critest-httpd', category: 'critest',
      purpose: 'critest "Multiple Containers" specs: web server on :80 whose log contains "httpd" (busybox httpd with Apache-like startup lines)',
      refs: [{ host: K8S, repo: 'e2e-test-images/httpd', tag: '2.4.39-4' }],
      extra: () => [
        file('usr/local/bin/httpd-foreground', HTTPD_FOREGROUND, 0o755),
        file('usr/local/apache2/htdocs/index.html', '<html><body><h1>It works!</h1></body></html>\n'),
      ],
      config: { Cmd: ['httpd-foreground'], ExposedPorts: { '80/tcp': {} } },
    }),
    busyboxDerived({
      name: 'critest-nonewprivs', category: 'critest',
      purpose: 'critest NoNewPrivs specs: setuid-root /usr/local/bin/nnp prints "Effective uid: N" (0 unless no_new_privs)',
      refs: [{ host: K8S, repo: 'e2e-test-images/nonewprivs', tag: '1.3' }, { host: K8S, repo: 'e2e-test-images/nonewprivs', tag: '1.4' }],
      extra: () => [file('usr/local/bin/nnp', euidProgram(), 0o4755)],
      config: { Entrypoint: ['/usr/local/bin/nnp'] },
      expect: { modes: { '/usr/local/bin/nnp': 0o4755 } },
    }),
    userImage('test-image-user-uid', '1002'),
    userImage('test-image-user-username', 'www-data'),
    userImage('test-image-user-uid-group', '1003:1004'),
    userImage('test-image-user-username-group', 'www-data:1004'),
    {
      name: 'critest-test-image-predefined-group', category: 'critest',
      purpose: 'critest SupplementalGroupsPolicy and image-volume subPath specs: USER 1000 (default-user), member of group-defined-in-image (50000) in /etc/group',
      refs: [{ host: GCR, repo: `${CRITOOLS}/test-image-predefined-group`, tag: 'latest' }],
      hostInputs: busyboxInputs,
      async build(ctx) {
        const base = await baseLayer(ctx);
        const groups = await ctx.layer([
          file('etc/passwd', passwdFile(PREDEFINED_USERS)),
          file('etc/group', groupFile(PREDEFINED_GROUPS)),
          dir('home/default-user', 0o755, 1000, 1000),
        ]);
        return single(ctx, this.name, [base, groups], { Cmd: ['sh'], User: '1000' });
      },
    },
    testImage('critest-test-image-latest', 'test-image-latest', ['latest'], 'test-image-latest',
      'critest "public image without tag" spec (pulled as test-image-latest, expects repo tag :latest)'),
    testImage('critest-test-image-tag-test', 'test-image-tag', ['test'], 'test',
      'critest image pull/status/consistency and image-volume specs (testImageWithTag)'),
    testImage('critest-test-image-tag-all', 'test-image-tag', ['all'], 'all',
      'critest "image status should support all kinds of references"'),
    testImage('critest-test-image-1', 'test-image-1', ['latest'], 'test-image-1', 'critest "listImage should get exactly 3 image": three different images'),
    testImage('critest-test-image-2', 'test-image-2', ['latest'], 'test-image-2', 'critest "listImage should get exactly 3 image": three different images'),
    testImage('critest-test-image-3', 'test-image-3', ['latest'], 'test-image-3', 'critest "listImage should get exactly 3 image": three different images'),
    testImage('critest-test-image-tags', 'test-image-tags', ['1', '2', '3'], 'same-image',
      'critest "exactly 3 repoTags" and "removing image by one tag" specs: ONE image under three tags'),
    testImage('critest-test-image-digest', 'test-image-digest', ['latest'], 'test-image-digest',
      'NOT the image critest pins by digest (see notReproducible); pushed by tag only for manual use'),
    {
      name: 'pause', category: 'critest',
      purpose: 'critest "removing image from one registry should remove all tags from other registries": the SAME image as registry.k8s.io/pause:3.9 and k8s.gcr.io/pause:3.9; also a sandbox pause image (catatonit -P as /pause)',
      refs: [
        { host: K8S, repo: 'pause', tag: '3.9' },
        { host: 'k8s.gcr.io', repo: 'pause', tag: '3.9' },
        { host: K8S, repo: 'pause', tag: '3.10' },
        { host: K8S, repo: 'pause', tag: '3.10.2' },
        { repo: 'corral/pause', tag: 'latest' },
      ],
      hostInputs: () => [CATATONIT],
      async build(ctx) {
        const layer = await ctx.layer([ctx.host.entry(CATATONIT, { at: 'pause' })]);
        return single(ctx, 'pause', [layer], { Entrypoint: ['/pause', '-P'], User: '65535:65535' });
      },
    },
    ...busyboxTags.map((tag) => busyboxDerived({
      name: `bench-busybox-${tag}`, category: 'bench',
      purpose: 'critest -benchmark image listing/pulling default images (public.ecr.aws/docker/library/busybox:*), each a distinct image',
      refs: [{ host: 'public.ecr.aws', repo: 'docker/library/busybox', tag }],
      config: { Cmd: ['sh'] },
    })),
  ];
}

// ---- node conformance suite stand-ins (k8s.io/kubernetes test/e2e_node, v1.37.2) --------------
//
// The images test/utils/image/manifest.go names that the NodeConformance specs run. busybox,
// nonewprivs and pause are the critest images above under one more tag each. agnhost is the real
// program, built from the Go module proxy by e2e/kube/build.sh --e2e-node into .tools/bin; without
// it the agnhost-based images are skipped (the builder records why) and every other image builds.

const E2E = 'e2e-test-images';
const BASH = '/bin/bash';
/** netcat-openbsd's nc (UDP: `nc -u`) and curl, which agnhost's Alpine image installs and specs exec. */
const NC = '/bin/nc.openbsd';
const HOSTNAME = '/bin/hostname';
const CURL = '/usr/bin/curl';
const AGNHOST = process.env.CORRAL_AGNHOST
  ?? fileURLToPath(new URL('../../../.tools/bin/agnhost', import.meta.url));
/** The porter's localhost certificate and key, beside the program (build.sh copies them from the module). */
const AGNHOST_FILES = (name: string) => join(AGNHOST + '.d', name);

/** user-defined-in-image (1000) in group-defined-in-image (50000), as agnhost's Dockerfile adds them. */
const AGNHOST_USERS: User[] = [...BASE_USERS, { name: 'user-defined-in-image', uid: 1000, gid: 1000, home: '/home/user-defined-in-image' }];
const AGNHOST_GROUPS: Group[] = [
  ...BASE_GROUPS,
  { name: 'user-defined-in-image', gid: 1000 },
  { name: 'group-defined-in-image', gid: 50000, members: ['user-defined-in-image'] },
];

/**
 * agnhost's image is Alpine with /agnhost; the Image Volume spec reads the image's
 * /etc/os-release and looks for "Alpine Linux". This one says what it is and names what it stands in for.
 */
const AGNHOST_OS_RELEASE = `NAME="corral test image"
ID=corral-e2e
PRETTY_NAME="corral busybox stand-in for the Alpine Linux based agnhost image"
`;

/** agnhost (and the kitten/nautilus web pages on top of it): entrypoint /agnhost, command pause. */
function agnhostDef(name: string, refs: ImageRef[], purpose: string, page?: { jpg: string; data: string }): ImageDef {
  return {
    name, category: 'node-e2e', purpose, refs,
    hostInputs: (host) => [BUSYBOX, AGNHOST, AGNHOST_FILES('localhost.crt'), AGNHOST_FILES('localhost.key'), ...[BASH, NC, CURL].flatMap((b) => [b, ...host.ldd(b)])],
    async build(ctx) {
      const base = await baseLayer(ctx);
      // Alpine's shell in the upstream image (and its bash): here bash, for both (see node-e2e-busybox).
      const shell = await ctx.layer([
        ctx.host.entry(BASH, { at: 'bin/sh' }), { type: 'hardlink', path: 'bin/bash', target: 'bin/sh' },
        ...ctx.host.ldd(BASH).map((lib) => ctx.host.entry(lib)),
        ...ctx.host.binaryWithLibs(NC, { at: 'usr/bin/nc' }),
        ...ctx.host.binaryWithLibs(CURL),
      ]);
      const agnhost = await ctx.layer([
        ctx.host.entry(AGNHOST, { at: 'agnhost' }),
        { type: 'symlink', path: 'agnhost-2', target: 'agnhost' },
        ctx.host.entry(AGNHOST_FILES('localhost.crt'), { at: 'localhost.crt', mode: 0o644 }),
        ctx.host.entry(AGNHOST_FILES('localhost.key'), { at: 'localhost.key', mode: 0o644 }),
        dir('uploads'),
        file('etc/passwd', passwdFile(AGNHOST_USERS)),
        file('etc/group', groupFile(AGNHOST_GROUPS)),
        file('etc/os-release', AGNHOST_OS_RELEASE),
        dir('home/user-defined-in-image', 0o755, 1000, 1000),
      ]);
      const layers = [base, shell, agnhost];
      if (page) layers.push(await ctx.layer([file(page.jpg, `corral stand-in for ${page.jpg}\n`), file('data.json', page.data)]));
      return single(ctx, name, layers, { Entrypoint: ['/agnhost'], Cmd: page ? ['test-webserver'] : ['pause'], ExposedPorts: { '80/tcp': {}, '8080/tcp': {} } });
    },
  };
}

function nodeE2eImages(): ImageDef[] {
  const page = (img: string) => ({ jpg: `${img}.jpg`, data: `{\n  "image": "${img}.jpg"\n}\n` });
  return [
    busyboxDerived({
      name: 'node-e2e-busybox', category: 'node-e2e',
      purpose: 'node e2e BusyBox (most specs): busybox with hard-linked applets, every applet also in /bin as upstream has them (`/bin/top`), the pgrep/pkill/ipcs/nmeter stand-ins; /bin/sh is bash, which passes environment variables whose names are not shell identifiers (data-1, from a ConfigMap) on to the commands it runs, as the ash of busybox 1.37 does and the ash of Debian\'s busybox 1.35 does not',
      refs: [{ host: K8S, repo: `${E2E}/busybox`, tag: '1.37.0-2' }],
      extra: (host) => [host.entry(BASH, { at: 'bin/sh' }), ...host.ldd(BASH).map((lib) => host.entry(lib)), ...binLinks()],
      extraInputs: (host) => [BASH, ...host.ldd(BASH)],
      config: { Cmd: ['sh'] },
    }),
    agnhostDef('node-e2e-agnhost', [{ host: K8S, repo: `${E2E}/agnhost`, tag: '2.66.1' }],
      'node e2e Agnhost: the real agnhost (netexec, liveness, mounttest, entrypoint-tester, pause ...) over busybox; /agnhost-2 links to it'),
    agnhostDef('node-e2e-agnhost-prev', [{ host: K8S, repo: `${E2E}/agnhost`, tag: '2.55' }],
      'node e2e AgnhostPrev: the same program as a DIFFERENT image (image pull and update specs need two)'),
    agnhostDef('node-e2e-kitten', [{ host: K8S, repo: `${E2E}/kitten`, tag: '1.8' }],
      'node e2e Kitten: agnhost test-webserver with /kitten.jpg and /data.json (the Image Volume spec reads data.json)', page('kitten')),
    agnhostDef('node-e2e-nautilus', [{ host: K8S, repo: `${E2E}/nautilus`, tag: '1.8' }],
      'node e2e Nautilus: agnhost test-webserver with /nautilus.jpg and /data.json', page('nautilus')),
    nginxDef('node-e2e-nginx', 80, [{ host: K8S, repo: `${E2E}/nginx`, tag: '1.27.0-2' }],
      'node e2e Nginx: real nginx on :80', 'node-e2e'),
    nginxDef('node-e2e-nginx-new', 80, [{ host: K8S, repo: `${E2E}/nginx`, tag: '1.28.0-2' }],
      'node e2e NginxNew: the same nginx as a DIFFERENT image (image update specs)', 'node-e2e'),
    busyboxDerived({
      name: 'node-e2e-glibc-dns-testing', category: 'node-e2e',
      purpose: 'node e2e GlibcDnsTesting (hostname override specs: `hostname -f`): upstream is debian:bookworm-slim; here busybox with bash as /bin/sh, Debian\'s glibc hostname (getaddrinfo through /etc/nsswitch.conf and /etc/hosts) and its libraries',
      refs: [{ host: K8S, repo: `${E2E}/glibc-dns-testing`, tag: '2.1.1' }],
      extra: (host) => [
        host.entry(BASH, { at: 'bin/sh' }), ...host.ldd(BASH).map((lib) => host.entry(lib)),
        ...host.binaryWithLibs(HOSTNAME),
        file('etc/nsswitch.conf', 'passwd: files\ngroup: files\nhosts: files dns\n'),
      ],
      extraInputs: (host) => [BASH, ...host.ldd(BASH), HOSTNAME, ...host.ldd(HOSTNAME)],
      config: { Cmd: ['sh'] },
    }),
    busyboxDerived({
      name: 'node-e2e-nonroot', category: 'node-e2e',
      purpose: 'node e2e NonRoot: busybox with USER 1234 (runAsNonRoot specs)',
      refs: [{ host: K8S, repo: `${E2E}/nonroot`, tag: '1.5' }],
      config: { Cmd: ['sh'], User: '1234' },
    }),
  ];
}

export const NOT_REPRODUCIBLE: NotReproducible[] = [
  {
    ref: 'gcr.io/k8s-staging-cri-tools/test-image-digest@sha256:9700f9a2f5bf2c45f2f605a0bd3bce7cf37420ec9d3ed50ac2758413308766bf',
    usedBy: 'critest "public image with digest should be pulled and removed"',
    reason: 'pinned by the digest of an upstream manifest whose bytes are not available offline; a stand-in cannot have that digest, so this spec is expected to fail',
  },
];

// ---- general images ------------------------------------------------------------------------

const WEB_PAGE = 'corral e2e web server: hello\n';

function generalImages(): ImageDef[] {
  return [
    busyboxDerived({
      name: 'busybox', category: 'general',
      purpose: 'general-purpose test container: busybox (all applets hard-linked), users root/nobody/alice/bob, group devs (alice,bob)',
      refs: [
        { repo: 'corral/busybox', tag: 'latest' },
        { host: 'docker.io', repo: 'library/busybox', tag: 'latest' },
        { host: 'docker.io', repo: 'library/busybox', tag: '1.37.0' },
        { host: 'quay.io', repo: 'prometheus/busybox', tag: 'latest' },
      ],
      config: { Cmd: ['sh'] },
      expect: {
        present: ['/bin/sh', '/bin/ls', '/usr/bin/env', '/etc/passwd', '/etc/group'],
        hardlinks: [['/bin/busybox', '/bin/sh', '/bin/ls', '/usr/bin/env', '/sbin/ip']],
        modes: { '/tmp': 0o1777 },
      },
    }),
    busyboxDerived({
      name: 'webserver', category: 'general',
      purpose: `port mapping / port-forward tests: busybox httpd on :80 in the foreground serving "${WEB_PAGE.trim()}" at /`,
      refs: [{ repo: 'corral/webserver', tag: 'latest' }],
      extra: () => [file('www/index.html', WEB_PAGE)],
      config: {
        Cmd: ['sh', '-c', "trap 'exit 0' TERM INT; httpd -f -p 80 -h /www & wait"],
        ExposedPorts: { '80/tcp': {} },
      },
      expect: { content: { '/www/index.html': WEB_PAGE } },
    }),
  ];
}

// ---- image-service exercisers --------------------------------------------------------------

/** vfs_cap_data revision 2 with CAP_NET_RAW (13) permitted + effective. */
function netRawCapability(): Buffer {
  const b = Buffer.alloc(20);
  b.writeUInt32LE(0x02000001, 0); // VFS_CAP_REVISION_2 | VFS_CAP_FLAGS_EFFECTIVE
  b.writeUInt32LE(1 << 13, 4); // permitted[0]
  b.writeUInt32LE(0, 8); // inheritable[0]
  return b;
}

function layeredImage(): ImageDef {
  const cap = netRawCapability();
  return {
    name: 'layers', category: 'exerciser',
    purpose: 'unpack/snapshot tests: 4 layers with whiteouts, an opaque dir, a dir deleted and re-created, hard links, a setuid file and a security.capability xattr',
    refs: [{ repo: 'corral/layers', tag: 'latest' }],
    hostInputs: busyboxInputs,
    expect: {
      present: ['/data/a.txt', '/data/hardlink-a', '/data/dir1/z', '/data/new.txt', '/data/keep/k', '/opt/old/f3', '/usr/local/bin/suid-euid', '/usr/local/bin/cap-euid'],
      absent: ['/data/b.txt', '/data/dir1/x', '/data/dir1/y', '/opt/old/f1', '/opt/old/f2', '/data/gone'],
      content: { '/data/a.txt': 'a\n', '/data/c.txt': 'c version 2\n', '/data/dir1/z': 'z\n', '/opt/old/f3': 'f3\n' },
      modes: { '/usr/local/bin/suid-euid': 0o4755, '/data/private': 0o700 },
      hardlinks: [['/data/a.txt', '/data/hardlink-a', '/data/sub/hardlink-a2']],
      xattrs: { '/usr/local/bin/cap-euid': { 'security.capability': cap.toString('hex') } },
    },
    async build(ctx) {
      const base = await baseLayer(ctx);
      const l2 = await ctx.layer([
        file('data/a.txt', 'a\n'), file('data/b.txt', 'b\n'), file('data/c.txt', 'c version 1\n'),
        { type: 'hardlink', path: 'data/hardlink-a', target: 'data/a.txt' },
        { type: 'hardlink', path: 'data/sub/hardlink-a2', target: 'data/a.txt' },
        file('data/dir1/x', 'x\n'), file('data/dir1/y', 'y\n'), file('data/keep/k', 'k\n'),
        dir('data/gone'), file('data/gone/inside', 'i\n'),
        dir('data/private', 0o700, 1100, 1100),
        file('opt/old/f1', 'f1\n'), file('opt/old/f2', 'f2\n'),
        file('usr/local/bin/suid-euid', euidProgram(), 0o4755),
      ]);
      const l3 = await ctx.layer([
        file('data/.wh.b.txt', ''),
        file('data/.wh.gone', ''),
        file('data/dir1/.wh..wh..opq', ''), file('data/dir1/z', 'z\n'),
        file('data/c.txt', 'c version 2\n'),
        file('opt/.wh.old', ''),
        { type: 'file', path: 'usr/local/bin/cap-euid', data: euidProgram(), mode: 0o755, xattrs: { 'security.capability': cap } },
      ]);
      const l4 = await ctx.layer([file('opt/old/f3', 'f3\n'), file('data/new.txt', 'new\n')]);
      return single(ctx, 'layers', [base, l2, l3, l4], { Cmd: ['sh'] });
    },
  };
}

function compressionImage(c: Compression, tag: string): ImageDef {
  return {
    name: `compress-${tag}`, category: 'exerciser',
    purpose: `layer compression: every layer ${c === 'none' ? 'uncompressed (application/vnd.oci.image.layer.v1.tar)' : c}; same files in each variant`,
    refs: [{ repo: 'corral/compress', tag }],
    hostInputs: busyboxInputs,
    expect: { content: { '/payload/hello.txt': 'compressed hello\n' } },
    async build(ctx) {
      const base = await baseLayer(ctx, { compression: c });
      const data = await ctx.layer([file('payload/hello.txt', 'compressed hello\n'), file('payload/zeros', Buffer.alloc(65536))], { compression: c });
      return single(ctx, `compress-${tag}`, [base, data], { Cmd: ['cat', '/payload/hello.txt'] });
    },
  };
}

function mediaTypeImage(format: Format): ImageDef {
  return {
    name: `mediatypes-${format}`, category: 'exerciser',
    purpose: format === 'docker'
      ? 'Docker schema2 manifest, config and gzip layer media types'
      : 'OCI manifest, config and gzip layer media types',
    refs: [{ repo: 'corral/mediatypes', tag: format }],
    hostInputs: busyboxInputs,
    expect: { content: { '/etc/format': `${format}\n` } },
    async build(ctx) {
      const base = await baseLayer(ctx, { format });
      const l = await ctx.layer([file('etc/format', `${format}\n`)], { format });
      return single(ctx, `mediatypes-${format}`, [base, l], { Cmd: ['cat', '/etc/format'] }, { format });
    },
  };
}

function multiArchImage(format: Format): ImageDef {
  return {
    name: `multiarch-${format}`, category: 'exerciser',
    purpose: `multi-platform ${format === 'docker' ? 'Docker manifest list' : 'OCI index'} (linux/amd64 runnable busybox, linux/arm64 with data only): the client must pick amd64`,
    refs: [{ repo: 'corral/multiarch', tag: format === 'docker' ? 'docker' : 'latest' }],
    hostInputs: busyboxInputs,
    expect: { content: { '/etc/platform': 'linux/amd64\n' } },
    async build(ctx) {
      const amd = await single(ctx, `multiarch-${format}`, [
        await baseLayer(ctx, { format }), await ctx.layer([file('etc/platform', 'linux/amd64\n')], { format }),
      ], { Cmd: ['cat', '/etc/platform'] }, { format });
      // No arm64 binaries on an amd64 host: the arm64 image carries a marker file only.
      const arm = await single(ctx, `multiarch-${format}`, [
        await ctx.layer([file('etc/platform', 'linux/arm64\n')], { format }),
      ], { Cmd: ['cat', '/etc/platform'] }, { format, platform: { architecture: 'arm64', os: 'linux', variant: 'v8' } });
      const idx = await writeIndex(ctx.store, [amd.descriptor, arm.descriptor], format);
      return {
        descriptor: idx.descriptor, configDigest: amd.configDigest,
        layerMediaTypes: [...new Set([...amd.layerMediaTypes, ...arm.layerMediaTypes])],
        platforms: ['linux/amd64', 'linux/arm64'],
      };
    },
  };
}

/** xoshiro128** seeded through splitmix32: deterministic, fast, incompressible for gzip. */
function prng(seed: number): (out: Buffer) => void {
  let s = seed >>> 0;
  const split = (): number => {
    s = (s + 0x9e3779b9) >>> 0;
    let z = s;
    z = Math.imul(z ^ (z >>> 16), 0x85ebca6b);
    z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35);
    return (z ^ (z >>> 16)) >>> 0;
  };
  let a = split(), b = split(), c = split(), d = split();
  return (out: Buffer) => {
    const words = new Uint32Array(out.buffer, out.byteOffset, out.length >>> 2);
    for (let i = 0; i < words.length; i++) {
      const m = Math.imul(b, 5);
      words[i] = Math.imul((m << 7) | (m >>> 25), 9);
      const t = b << 9;
      c ^= a; d ^= b; b ^= c; a ^= d; c ^= t; d = (d << 11) | (d >>> 21);
    }
  };
}

function largeImage(): ImageDef {
  const LAYERS = 12;
  const FILES = 4;
  const FILE_SIZE = 4 * 1024 * 1024 + 512 * 1024; // 4.5 MiB: 12 x 4 x 4.5 = 216 MiB
  return {
    name: 'large', category: 'bench', large: true,
    purpose: `pull/unpack benchmarks: ${LAYERS} layers of ${FILES} x ${FILE_SIZE} bytes of seeded pseudo-random data (~216 MiB) over busybox`,
    refs: [{ repo: 'corral/large', tag: 'latest' }],
    hostInputs: busyboxInputs,
    async build(ctx) {
      const layers = [await baseLayer(ctx)];
      for (let l = 0; l < LAYERS; l++) {
        const fill = prng(l + 1);
        const entries: TarEntry[] = [];
        for (let f = 0; f < FILES; f++) {
          const data = Buffer.alloc(FILE_SIZE);
          fill(data);
          entries.push(file(`data/layer${String(l).padStart(2, '0')}/blob${f}`, data));
        }
        layers.push(await ctx.layer(entries, { level: 1 }));
      }
      return single(ctx, 'large', layers, { Cmd: ['sh'] });
    },
  };
}

// ---- hostile images --------------------------------------------------------------------------

function hostile(name: string, purpose: string, layers: TarEntry[][], hostPaths: string[]): ImageDef {
  return {
    name: `hostile-${name}`, category: 'hostile', purpose,
    refs: [{ repo: `corral/hostile-${name}`, tag: 'latest' }],
    hostInputs: () => [],
    expect: { hostPaths, mustFail: true },
    async build(ctx) {
      const ls: Layer[] = [];
      for (const entries of layers) ls.push(await ctx.layer(entries, { raw: true }));
      return single(ctx, `hostile-${name}`, ls, { Cmd: ['/bin/true'] });
    },
  };
}

const T = '/tmp/corral-hostile';
const rawFile = (p: string, data = 'pwned by a hostile layer\n'): TarEntry => ({ type: 'file', path: p, data: Buffer.from(data), mode: 0o644 });
const rawDir = (p: string): TarEntry => ({ type: 'dir', path: p, mode: 0o755 });

function hostileImages(): ImageDef[] {
  const badDigest: ImageDef = {
    name: 'hostile-baddigest', category: 'hostile',
    purpose: 'a layer blob whose bytes do not hash to the digest the manifest names (same size): pulls must fail verification',
    refs: [{ repo: 'corral/hostile-baddigest', tag: 'latest' }],
    hostInputs: () => [],
    expect: { mustFail: true },
    async build(ctx) {
      const good = writeTar([rawDir('etc/'), rawFile('etc/corral-layer', 'original content\n')]);
      const layer = await ctx.layer([rawDir('etc/'), rawFile('etc/corral-layer', 'original content\n')], { raw: true, compression: 'none' });
      const tampered = writeTar([rawDir('etc/'), rawFile('etc/corral-layer', 'TAMPERED content\n')]);
      if (tampered.length !== good.length || sha256(good) !== layer.diffId) throw new Error('baddigest: unexpected tar sizes');
      const out = await single(ctx, 'hostile-baddigest', [layer], { Cmd: ['/bin/true'] });
      await ctx.store.putAs(layer.descriptor.digest, tampered);
      return { ...out, tamperedBlobs: [layer.descriptor.digest] };
    },
  };
  return [
    hostile('dotdot', 'entries whose names climb out of the root with ".."',
      [[rawDir('etc/'), rawFile(`../../../../../../../..${T}-dotdot`), rawFile(`etc/../../../../../../../..${T}-dotdot2`)]],
      [`${T}-dotdot`, `${T}-dotdot2`]),
    hostile('abspath', 'entries with absolute names',
      [[rawDir('etc/'), rawFile(`${T}-abspath`), rawDir('/tmp/corral-hostile-absdir/'), rawFile('/tmp/corral-hostile-absdir/f')]],
      [`${T}-abspath`, '/tmp/corral-hostile-absdir']),
    hostile('symlink', 'a symlink pointing out of the root (absolute and relative), then writes through it in the same layer',
      [[
        { type: 'symlink', path: 'escape', target: '/tmp' },
        rawFile('escape/corral-hostile-symlink'),
        { type: 'symlink', path: 'up', target: '../../../../../../../../tmp' },
        rawFile('up/corral-hostile-symlink-rel'),
        { type: 'symlink', path: 'victim-link', target: `${T}-symlink-victim` },
        rawFile('victim-link', 'overwritten through a symlink\n'),
      ]],
      [`${T}-symlink`, `${T}-symlink-rel`, `${T}-symlink-victim`]),
    hostile('symlink-layers', 'a symlink to /tmp in layer 1, a write through it in layer 2',
      [
        [{ type: 'symlink', path: 'escape', target: '/tmp' }, { type: 'symlink', path: 'etc', target: '../../../../../../tmp' }],
        [rawFile('escape/corral-hostile-symlink-layers'), rawFile('etc/corral-hostile-symlink-layers2')],
      ],
      [`${T}-symlink-layers`, `${T}-symlink-layers2`]),
    hostile('hardlink', 'hard links to paths outside the root, then a regular file written over the link name',
      [[
        rawDir('etc/'),
        { type: 'hardlink', path: 'etc/abs-link', target: `${T}-hardlink-victim` },
        { type: 'hardlink', path: 'etc/rel-link', target: `../../../../../../../..${T}-hardlink-victim` },
        rawFile('etc/abs-link', 'written through a hard link\n'),
      ]],
      [`${T}-hardlink-victim`]),
    hostile('whiteout', 'whiteouts and an opaque marker naming paths outside the root',
      [
        [rawDir('etc/'), rawFile('etc/keep', 'keep\n')],
        [
          rawFile(`../../../../../../../..${T}-whiteout-victim-dir/.wh.victim`, ''),
          rawFile(`/tmp/.wh.corral-hostile-whiteout-victim`, ''),
          rawFile(`../../../../../../../..${T}-whiteout-victim-dir/.wh..wh..opq`, ''),
        ],
      ],
      [`${T}-whiteout-victim`, `${T}-whiteout-victim-dir/victim`]),
    badDigest,
  ];
}

export function catalog(): ImageDef[] {
  return [
    ...critestImages(),
    ...nodeE2eImages(),
    ...generalImages(),
    layeredImage(),
    compressionImage('gzip', 'gzip'),
    compressionImage('zstd', 'zstd'),
    compressionImage('none', 'uncompressed'),
    mediaTypeImage('oci'),
    mediaTypeImage('docker'),
    multiArchImage('oci'),
    multiArchImage('docker'),
    largeImage(),
    ...hostileImages(),
  ];
}

export function createBuildCtx(store: BlobStore, host: HostFiles): BuildCtx {
  return {
    store, host,
    async layer(entries, opts = {}) {
      const tar = writeTar(opts.raw ? entries : normalizeEntries(entries));
      return makeLayer(store, tar, opts.compression ?? 'gzip', opts.format ?? 'oci', opts.level ?? 6);
    },
  };
}

export { MT };
