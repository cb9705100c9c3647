/**
 * Image volumes (CRI Mount.image, KEP-4639) through crictl on a real daemon and a real OCI
 * runtime: the layers of corral/layers (4 layers, whiteouts, a setuid file) seen read-only in
 * a busybox container, a sub path, the errors the kubelet relies on, RemoveImage refused while
 * a volume uses the image, and the views unmounted after a kill -9 of the daemon. The
 * harness's stop() fails the file if a mount is left behind.
 */
import test from 'ava';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { startHarness, type Harness } from '../harness/index.js';

const BUSYBOX = 'registry.k8s.io/e2e-test-images/busybox:1.29-2';
let h: Harness;
let layers = '';
let n = 0;

test.before(async () => {
  h = await startHarness({ runtime: (process.env.CORRAL_E2E_RUNTIME as 'crun' | 'runc' | undefined) ?? 'crun' });
  layers = `${h.registry!.host}/corral/layers:latest`;
  await h.crictlOk(['pull', BUSYBOX], { timeoutMs: 180_000 });
  await h.crictlOk(['pull', layers], { timeoutMs: 180_000 });
});

test.after.always(async () => {
  await h?.stop();
});

interface Pod { id: string; config: string }

async function runPod(name: string): Promise<Pod> {
  n++;
  const cfg = { metadata: { name, namespace: 'e2e-volumes', uid: `uid-${name}-${n}`, attempt: 0 }, log_directory: join(h.dir, 'pod-logs', `${name}-${n}`), linux: {} };
  const config = h.writeJson(`pod-${name}-${n}.json`, cfg);
  return { id: (await h.crictlOk(['runp', config])).trim(), config };
}

function createCtr(pod: Pod, name: string, mounts: unknown[], extra: Record<string, unknown> = {}) {
  const cfg = { metadata: { name }, image: { image: BUSYBOX }, command: ['sleep', '3600'], log_path: `${name}.log`, mounts, linux: {}, ...extra };
  return h.crictl(['create', pod.id, h.writeJson(`ctr-${name}-${n}.json`, cfg), pod.config]);
}

const imageVolume = (path: string, image: string, extra: Record<string, unknown> = {}) =>
  ({ container_path: path, readonly: true, image: { image, user_specified_image: image }, ...extra });

async function sh(id: string, script: string): Promise<{ stdout: string; stderr: string; code: number }> {
  const r = await h.crictl(['exec', '-s', id, 'sh', '-c', script]);
  return { stdout: r.stdout, stderr: r.stderr, code: r.code ?? -1 };
}

/** Mount points under the daemon's root (the harness's own dir): the views among them. */
async function viewMounts(): Promise<string[]> {
  const mi = await fs.readFile('/proc/self/mountinfo', 'utf8');
  return mi.split('\n').map((l) => l.split(' ')[4] ?? '').filter((p) => p.startsWith(h.dir) && p.includes('/image-volumes/'));
}

async function removePod(pod: Pod): Promise<void> {
  await h.crictlOk(['stopp', pod.id]);
  await h.crictlOk(['rmp', pod.id]);
}

test.serial('an image volume shows the merged layers read-only, runs their programs, and a sub path', async (t) => {
  const pod = await runPod('iv');
  const r = await createCtr(pod, 'reader', [imageVolume('/iv', layers), imageVolume('/iv-data', layers, { image_sub_path: 'data' })], {
    linux: { security_context: { run_as_user: { value: 1000 } } },
  });
  t.is(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  await h.crictlOk(['start', id]);

  // The layers merged as for a rootfs: whiteouts hide, the top layer's version wins.
  const seen = await sh(id, 'cat /iv/data/a.txt /iv/data/c.txt /iv/opt/old/f3; ls /iv/data/b.txt /iv/opt/old/f1 2>&1; ls /iv-data');
  t.regex(seen.stdout, /^a\nc version 2\nf3\n/);
  t.regex(seen.stdout, /b\.txt: No such file/);
  t.regex(seen.stdout, /f1: No such file/);
  t.regex(seen.stdout, /a\.txt\n.*new\.txt/s);
  t.notRegex(seen.stdout, /^data$/m);

  // Read-only, also for root (crictl exec runs as the container's user; check both ways).
  const write = await sh(id, 'touch /iv/x 2>&1; touch /iv-data/x 2>&1; echo end');
  t.regex(write.stdout, /Read-only file system[\s\S]*Read-only file system[\s\S]*end/);
  const mounts = await sh(id, 'grep -E " /iv(-data)? " /proc/self/mountinfo');
  for (const line of mounts.stdout.trim().split('\n')) {
    const opts = line.split(' ')[5] ?? '';
    t.true(opts.split(',').includes('ro'), line);
    t.false(opts.split(',').includes('noexec'), line);
    t.true(opts.split(',').includes('nosuid'), line);
  }
  t.is(mounts.stdout.trim().split('\n').length, 2, mounts.stdout);
  // Executable (no noexec); setuid is not honoured (nosuid): the program's euid stays 1000.
  const exe = await sh(id, '/iv/usr/local/bin/suid-euid');
  t.is(exe.code, 0, exe.stderr);
  t.regex(exe.stdout, /1000/);

  // Status reports the image and the image_ref PullImage returned (the image id).
  const imageId = (await h.crictlJson<any>(['inspecti', layers])).status.id;
  const st = await h.crictlJson<any>(['inspect', id]);
  const ivs = st.status.mounts.filter((m: any) => m.containerPath.startsWith('/iv'));
  t.deepEqual(ivs.map((m: any) => [m.containerPath, m.image?.imageRef, m.imageSubPath ?? '']), [['/iv', imageId, ''], ['/iv-data', imageId, 'data']]);

  // The image is in use: RemoveImage by id (as the kubelet's image GC does) fails and the
  // image stays (by tag it would only untag, as for a container's own image).
  const rmi = await h.crictl(['rmi', imageId]);
  t.not(rmi.code, 0);
  t.regex(rmi.stderr, /in use by container/);
  t.is((await h.crictl(['inspecti', layers])).code, 0);

  t.is((await viewMounts()).length, 2);
  await removePod(pod);
  t.deepEqual(await viewMounts(), []);
});

test.serial('bad image volumes fail CreateContainer with the field named, and leave nothing mounted', async (t) => {
  const pod = await runPod('bad');
  const cases: Array<[unknown, RegExp]> = [
    [imageVolume('/iv', layers, { readonly: false }), /InvalidArgument.*must be readonly/],
    [imageVolume('/iv', layers, { image_sub_path: 'not-existing' }), /InvalidArgument.*sub path "not-existing" \(for \/iv\) does not exist in the image/],
    [imageVolume('/iv', layers, { image_sub_path: 'data/a.txt' }), /InvalidArgument.*is not a directory/],
    [imageVolume('/iv', layers, { image_sub_path: '../../etc' }), /InvalidArgument.*must not contain/],
    [imageVolume('/iv', `${h.registry!.host}/corral/not-pulled:latest`), /NotFound.*is not present/],
  ];
  for (const [i, [mount, re]] of cases.entries()) {
    const r = await createCtr(pod, `bad${i}`, [imageVolume('/ok', layers), mount]);
    t.not(r.code, 0);
    t.regex(r.stderr.replace(/\n/g, ' ').replace(/\\"/g, '"'), re); // crictl escapes the quotes
    t.deepEqual(await viewMounts(), []);
  }
  t.deepEqual((await h.crictlJson<any>(['ps', '-a', '-o', 'json'])).containers, []);
  await removePod(pod);
});

test.serial('kill -9 of the daemon: the volume keeps working, and is unmounted when its container goes', async (t) => {
  const pod = await runPod('survivor');
  const r = await createCtr(pod, 'survivor', [imageVolume('/iv', layers)]);
  t.is(r.code, 0, r.stderr);
  const id = r.stdout.trim();
  await h.crictlOk(['start', id]);
  await h.stopDaemon('SIGKILL');
  await h.startDaemon();
  t.regex((await sh(id, 'cat /iv/data/new.txt')).stdout, /^new$/m);
  t.is((await viewMounts()).length, 1);
  const imageId = (await h.crictlJson<any>(['inspecti', layers])).status.id;
  t.not((await h.crictl(['rmi', imageId])).code, 0);
  await removePod(pod);
  t.deepEqual(await viewMounts(), []);
  // Nothing holds the image any more.
  await h.crictlOk(['rmi', imageId]);
});
