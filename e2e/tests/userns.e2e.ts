/**
 * User namespaces (CRI userns_options mode POD, KEP-127) through crictl on a real daemon: the
 * pod's own user namespace with its maps, the rootfs owned by the container's root through
 * idmapped layers, a volume idmapped as the kubelet asks and one that is not, what root in
 * the container is on the host, the validation errors, the runc handler (no idmapped mounts)
 * refusing, and a kill -9 of the daemon with such a pod running. The harness's stop() fails
 * the file if a pin, mount or process is left behind.
 */
import test from 'ava';
import { promises as fs, mkdirSync, chownSync } from 'node:fs';
import { join } from 'node:path';
import { startHarness, type Harness } from '../harness/index.js';

const BUSYBOX = 'registry.k8s.io/e2e-test-images/busybox:1.29-2';
const HOST_ID = 231072;
const LENGTH = 65536;
const MAP = [{ container_id: 0, host_id: HOST_ID, length: LENGTH }];
/** NamespaceMode as crictl's JSON wants it: POD 0, CONTAINER 1, NODE 2, TARGET 3. */
const POD = 0;
const CONTAINER = 1;
const TARGET = 3;
/**
 * In the cgroup v2 guest (CORRAL_E2E_V2) the daemon's dirs are on tmpfs, which its Linux 6.1
 * cannot idmap: corral reports no user namespaces there and refuses such pods, which is what
 * this file then checks.
 */
const SUPPORTED = !process.env.CORRAL_E2E_V2;
let h: Harness;
let n = 0;

test.before(async () => {
  h = await startHarness({ runtime: 'crun' });
  await h.crictlOk(['pull', BUSYBOX], { timeoutMs: 180_000 });
});

test.after.always(async () => {
  await h?.stop();
});

interface Pod { id: string; config: string }

function podConfig(name: string, userns: unknown, extra: Record<string, unknown> = {}) {
  n++;
  return {
    metadata: { name, namespace: 'e2e-userns', uid: `uid-${name}-${n}`, attempt: 0 },
    log_directory: join(h.dir, 'pod-logs', `${name}-${n}`),
    linux: { security_context: { namespace_options: { network: POD, ipc: POD, pid: CONTAINER, userns_options: userns } } },
    ...extra,
  };
}

async function runPod(name: string, userns: unknown = { mode: POD, uids: MAP, gids: MAP }, extra: Record<string, unknown> = {}): Promise<Pod> {
  const config = h.writeJson(`pod-${name}-${n + 1}.json`, podConfig(name, userns, extra));
  return { id: (await h.crictlOk(['runp', config])).trim(), config };
}

async function startCtr(pod: Pod, name: string, command: string[], extra: Record<string, unknown> = {}): Promise<string> {
  const cfg = { metadata: { name }, image: { image: BUSYBOX }, command, log_path: `${name}.log`, linux: {}, ...extra };
  const id = (await h.crictlOk(['create', pod.id, h.writeJson(`ctr-${name}-${n}.json`, cfg), pod.config])).trim();
  await h.crictlOk(['start', id]);
  return id;
}

async function sh(id: string, script: string) {
  return h.crictl(['exec', '-s', id, 'sh', '-c', script]);
}

async function removePod(pod: Pod): Promise<void> {
  await h.crictlOk(['stopp', pod.id]);
  await h.crictlOk(['rmp', pod.id]);
}

test.serial('Status: crun runs pods in a user namespace of their own, runc 1.1 (no idmapped mounts) does not', async (t) => {
  const st = await h.crictlJson<any>(['info']);
  const handlers = Object.fromEntries((st.runtimeHandlers ?? []).map((x: any) => [x.name ?? '', x.features?.user_namespaces ?? false]));
  t.is(handlers.crun, SUPPORTED, JSON.stringify(st.runtimeHandlers));
  t.is(handlers[''], SUPPORTED, 'the default handler (crun)');
  t.false(handlers.runc, JSON.stringify(st.runtimeHandlers));
});

test.serial('a pod user namespace: the maps, root owning its rootfs, an unprivileged uid on the host', async (t) => {
  if (!SUPPORTED) {
    const r = await h.crictl(['runp', h.writeJson(`pod-refused-${n}.json`, podConfig('refused', { mode: POD, uids: MAP, gids: MAP }))]);
    t.regex(r.stderr.replace(/\\"/g, '"'), /FailedPrecondition.*handler "crun" cannot run pods in a user namespace/);
    return;
  }
  const hostDir = join(h.dir, 'userns-host');
  const mappedDir = join(h.dir, 'userns-mapped');
  mkdirSync(hostDir, { mode: 0o777 });
  await fs.chmod(hostDir, 0o777);
  mkdirSync(mappedDir, { mode: 0o755 });
  await fs.writeFile(join(mappedDir, 'by-host-root'), 'x');
  const pod = await runPod('mapped');
  t.teardown(() => removePod(pod).catch(() => undefined));
  const id = await startCtr(pod, 'main', ['sleep', '3600'], {
    mounts: [
      { container_path: '/plain', host_path: hostDir },
      // As the kubelet sends every volume of such a pod: mapped like the namespace.
      { container_path: '/mapped', host_path: mappedDir, uidMappings: MAP, gidMappings: MAP },
      // An image volume, mapped as the kubelet sends it: a view on idmapped layers.
      { container_path: '/iv', readonly: true, image: { image: BUSYBOX }, uidMappings: MAP, gidMappings: MAP },
    ],
  });
  const iv = await sh(id, 'stat -c "%u:%g" /iv/bin /iv/etc/passwd; touch /iv/x 2>&1; echo "status $?"');
  t.regex(iv.stdout, /^0:0\n0:0\n[\s\S]*Read-only[\s\S]*status 1/, iv.stdout + iv.stderr);
  const maps = await sh(id, 'cat /proc/self/uid_map /proc/self/gid_map; id -u; id -g');
  t.regex(maps.stdout.trim(), new RegExp(`^0\\s+${HOST_ID}\\s+${LENGTH}\\s+0\\s+${HOST_ID}\\s+${LENGTH}\\s+0\\s+0$`), maps.stdout + maps.stderr);

  // The image's files belong to the container's root, and it writes where root may.
  const own = await sh(id, 'stat -c "%u:%g" /bin /etc/passwd /; echo hi > /root-file && cat /root-file');
  t.is(own.stdout.trim(), '0:0\n0:0\n0:0\nhi', own.stderr);

  // Not mapped: the file lands on the host as the mapped root; the mapped volume shows the
  // host's root as the container's and what root writes is the host's root's.
  const w = await sh(id, 'touch /plain/by-ctr-root && stat -c %u /mapped/by-host-root && touch /mapped/by-ctr-root');
  t.is(w.code, 0, w.stderr);
  t.is(w.stdout.trim(), '0');
  t.is((await fs.stat(join(hostDir, 'by-ctr-root'))).uid, HOST_ID);
  t.is((await fs.stat(join(mappedDir, 'by-ctr-root'))).uid, 0);

  // Root in the container is HOST_ID on the host, and cannot do what the host's root can.
  const pid = (await h.crictlJson<any>(['inspect', id])).info.pid as number;
  const status = await fs.readFile(`/proc/${pid}/status`, 'utf8');
  t.regex(status, new RegExp(`^Uid:\\s+${HOST_ID}\\s+${HOST_ID}\\s+${HOST_ID}\\s+${HOST_ID}$`, 'm'));
  for (const [cmd, re] of [
    ['mount -t tmpfs none /etc', /denied|not permitted/i],
    ['mknod /dev/x b 8 0', /not permitted/],
    ['echo 1 > /proc/sys/kernel/ctrl-alt-del', /Read-only|denied|not permitted/],
  ] as const) {
    // crictl prints no output for a failed command: report the status instead.
    const r = await sh(id, `(${cmd}) 2>&1; echo "status $?"`);
    t.notRegex(r.stdout, /status 0/, cmd);
    t.regex(r.stdout, re, `${cmd}: ${r.stdout} ${r.stderr}`);
  }

  // The pod's sysfs and mqueue mount (its net and ipc namespaces belong to its user namespace).
  const sys = await sh(id, 'ls /sys/class/net; grep -c " /dev/mqueue " /proc/self/mountinfo');
  t.regex(sys.stdout, /eth0[\s\S]*lo\n1\n/);
});

test.serial('bad user namespace requests are InvalidArgument, runc is FailedPrecondition; nothing is left', async (t) => {
  const cases: Array<[unknown, RegExp, string?]> = [
    [{ mode: CONTAINER }, /InvalidArgument.*userns_options\.mode: CONTAINER/],
    [{ mode: TARGET }, /InvalidArgument.*userns_options\.mode: TARGET/],
    [{ mode: POD, uids: [...MAP, { container_id: 0, host_id: 2000, length: 1 }], gids: MAP }, /InvalidArgument.*uids: exactly one mapping/],
    [{ mode: POD, uids: [{ container_id: 1, host_id: 1000, length: 100 }], gids: MAP }, /InvalidArgument.*container id 0 must be mapped/],
    [{ mode: POD, uids: MAP, gids: MAP }, /FailedPrecondition.*runtime handler "runc" cannot run pods in a user namespace/, 'runc'],
  ];
  for (const [userns, re, handler] of cases) {
    const config = h.writeJson(`bad-${n}.json`, podConfig('bad', userns));
    const r = await h.crictl(['runp', ...(handler ? ['--runtime', handler] : []), config]);
    t.not(r.code, 0);
    t.regex(r.stderr.replace(/\n/g, ' ').replace(/\\"/g, '"'), re); // crictl escapes the quotes
  }
  t.deepEqual((await h.crictlJson<any>(['pods', '-o', 'json'])).items, []);
});

test.serial('a shared pid namespace (infra process) in the user namespace; kill -9 of the daemon; cleanup', async (t) => {
  if (!SUPPORTED) {
    t.pass('no user namespaces here');
    return;
  }
  const pod = await runPod('shared', undefined, {});
  const cfg = JSON.parse(await fs.readFile(pod.config, 'utf8'));
  await removePod(pod);
  cfg.linux.security_context.namespace_options.pid = POD;
  cfg.metadata.uid += '-pid';
  const config = h.writeJson(`pod-shared-pid-${n}.json`, cfg);
  const shared = { id: (await h.crictlOk(['runp', config])).trim(), config };
  const a = await startCtr(shared, 'a', ['sleep', '3600']);
  const b = await startCtr(shared, 'b', ['sleep', '3600']);
  const ps = await sh(b, 'ps -o pid,user,args');
  t.regex(ps.stdout, /sleep 3600[\s\S]*sleep 3600/, 'b sees a');
  await h.stopDaemon('SIGKILL');
  await h.startDaemon();
  const again = await sh(a, 'cat /proc/self/uid_map');
  t.regex(again.stdout, new RegExp(`0\\s+${HOST_ID}\\s+${LENGTH}`));
  t.is((await h.crictlJson<any>(['inspectp', shared.id])).status.state, 'SANDBOX_READY');
  await removePod(shared);
});
