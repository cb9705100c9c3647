/**
 * The standalone kubelet suite (static pods, no API server), defined once and run per OCI
 * runtime handler by standalone-<handler>.e2e.ts: what the kubelet does that critest never
 * asks, asserted through the kubelet's own read-only API (/pods, /stats/summary) and on the host.
 */
import test from 'ava';
import { existsSync, mkdirSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { join } from 'node:path';
import { run, sleep, startHarness, type Harness } from '../harness/index.js';
import { httpGet, kubeletAvailable, startKubelet, type Kubelet } from '../harness/kubelet.js';

export const BUSYBOX = 'registry.k8s.io/e2e-test-images/busybox:1.29-2';
/** busybox httpd on :80 serving "... hello", on the harness registry under its own host name. */
export const webImage = (h: Harness): string => `${h.registry!.host}/corral/webserver:latest`;

export const ready = (p: any): boolean => (p.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True');
export const ctrStatus = (p: any, name: string): any => [...(p.status?.containerStatuses ?? []), ...(p.status?.initContainerStatuses ?? [])].find((c: any) => c.name === name);

export function defineStandaloneSuite(runtime: 'crun' | 'runc'): void {
  let h: Harness;
  let k: Kubelet;
  const skip = !kubeletAvailable();

  test.before(async () => {
    if (skip) return;
    h = await startHarness({ runtime });
    k = await startKubelet(h);
  });

  test.after.always(async (t) => {
    if (k) {
      // Every manifest gone: the kubelet itself must tear the pods down through corral.
      for (const f of readdirSync(k.manifests)) k.removePod(f.replace(/\.json$/, ''));
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline && (await h.crictlJson<any>(['pods', '-o', 'json']).then((r) => r.items?.filter((p: any) => p.state === 'SANDBOX_READY').length ?? 0, () => 0)) > 0) await sleep(500);
      await k.stop().catch((e: Error) => t.log(`kubelet stop: ${e.message}`));
      if (process.env.CORRAL_E2E_PRINT_LOGS) console.error(k.log().slice(-30000));
    }
    await h?.stop();
  });

  /** Removes a pod's manifest and waits (up to a minute) until the kubelet removed its container. */
  const removeAndWait = async (pod: string, containerId: string): Promise<boolean> => {
    k.removePod(pod);
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline) {
      if ((await h.crictl(['inspect', containerId])).code !== 0) return true;
      await sleep(500);
    }
    return false;
  };

  const kt = (title: string, fn: (t: import('ava').ExecutionContext) => Promise<void>) =>
    test.serial(`${runtime}: ${title}`, async (t) => {
      if (skip) {
        t.log('no kubelet in .tools/bin (bash e2e/kube/build.sh)');
        t.pass();
        return;
      }
      try {
        await fn(t);
        // Whatever corral answered, the kubelet must still be up (a nil it did not expect crashes it).
        t.true(k.running, `the kubelet is running: ${k.running ? '' : k.log().slice(-3000)}`);
      } catch (e) {
        t.log(`kubelet log tail:\n${k.log().split('\n').filter((l) => /^[EW]\d{4}/.test(l)).slice(-40).join('\n')}`);
        throw e;
      }
    });

  kt('a pod with limits and the kubelet\'s hugepage limits runs, turns Ready, and sits in the QoS cgroup tree', async (t) => {
    k.writePod({
      metadata: { name: 'limits', namespace: 'default' },
      spec: {
        containers: [{
          name: 'main', image: BUSYBOX, command: ['sh', '-c', 'touch /tmp/ready; exec sleep 3600'],
          resources: { limits: { cpu: '200m', memory: '64Mi' }, requests: { cpu: '100m', memory: '32Mi' } },
          readinessProbe: { exec: { command: ['cat', '/tmp/ready'] }, periodSeconds: 1 },
        }],
      },
    });
    const pod = await k.waitPod('limits', ready, 120_000, 'Ready');
    t.is(pod.status.phase, 'Running');
    t.is(pod.status.qosClass, 'Burstable');
    // The container's cgroup is under the kubelet's burstable/pod<uid> cgroup, with the limit.
    const id = ctrStatus(pod, 'main').containerID.replace(/^[a-z]+:\/\//, '');
    const info = await h.crictlJson<any>(['inspect', id]);
    const cg: string = info.info.runtimeSpec.linux.cgroupsPath;
    t.true(cg.startsWith(`${k.cgroupRoot}/kubepods/burstable/pod${pod.metadata.uid}`), cg);
    t.is(info.info.runtimeSpec.linux.resources.memory.limit, 64 * 1024 * 1024);
    t.is(info.info.runtimeSpec.linux.resources.hugepageLimits, undefined);
  });

  kt('probes: httpGet and tcpSocket readiness on the pod IP, exec liveness through ExecSync; a failing liveness probe restarts the container', async (t) => {
    k.writePod({
      metadata: { name: 'probes', namespace: 'default' },
      spec: {
        containers: [
          {
            name: 'web', image: webImage(h),
            readinessProbe: { httpGet: { path: '/', port: 80 }, periodSeconds: 1 },
            livenessProbe: { tcpSocket: { port: 80 }, periodSeconds: 2 },
          },
          {
            name: 'flaky', image: BUSYBOX, command: ['sh', '-c', 'touch /tmp/alive; sleep 4; rm /tmp/alive; exec sleep 3600'],
            livenessProbe: { exec: { command: ['cat', '/tmp/alive'] }, periodSeconds: 1, failureThreshold: 2 },
          },
        ],
        terminationGracePeriodSeconds: 2,
      },
    });
    const pod = await k.waitPod('probes', (p) => ctrStatus(p, 'web')?.ready === true && ctrStatus(p, 'flaky')?.restartCount >= 1, 120_000, 'web ready and flaky restarted');
    t.true(ctrStatus(pod, 'flaky').restartCount >= 1);
    t.is(ctrStatus(pod, 'web').restartCount, 0);
    t.truthy(pod.status.podIP);
    t.regex((await httpGet(`http://${pod.status.podIP}/`)).body, /hello/);
  });

  kt('a crasher goes into restart backoff (new attempts while the old record is there), with its exit code in lastState', async (t) => {
    k.writePod({
      metadata: { name: 'crasher', namespace: 'default' },
      spec: { containers: [{ name: 'crash', image: BUSYBOX, command: ['sh', '-c', 'echo crashing; exit 3'] }] },
    });
    const pod = await k.waitPod('crasher', (p) => (ctrStatus(p, 'crash')?.restartCount ?? 0) >= 2, 120_000, 'two restarts');
    const st = ctrStatus(pod, 'crash');
    t.is(st.lastState.terminated?.exitCode, 3);
    t.is(st.lastState.terminated?.reason, 'Error');
    // Each restart is a new container with the next attempt number; the kubelet's container GC
    // keeps one dead attempt per container (for `logs --previous`) and removes the rest.
    const ps = await h.crictlJson<any>(['ps', '-a', '-o', 'json', '--name', '^crash$']);
    const attempts = ps.containers.map((c: any) => c.metadata.attempt as number);
    t.true(attempts.length >= 1 && attempts.length <= 2, JSON.stringify(attempts));
    t.true(Math.max(...attempts) >= 2, JSON.stringify(attempts));
  });

  kt('termination messages: the file as written (not doubled), and the log tail for FallbackToLogsOnError', async (t) => {
    k.writePod({
      metadata: { name: 'term', namespace: 'default' },
      spec: {
        restartPolicy: 'Never',
        containers: [
          { name: 'file', image: BUSYBOX, command: ['sh', '-c', 'printf DONE > /dev/termination-log'] },
          { name: 'fallback', image: BUSYBOX, command: ['sh', '-c', 'echo last words; exit 1'], terminationMessagePolicy: 'FallbackToLogsOnError' },
        ],
      },
    });
    const pod = await k.waitPod('term', (p) => ctrStatus(p, 'file')?.state?.terminated && ctrStatus(p, 'fallback')?.state?.terminated, 60_000, 'both terminated');
    t.is(ctrStatus(pod, 'file').state.terminated.message, 'DONE');
    t.is(ctrStatus(pod, 'file').state.terminated.reason, 'Completed');
    t.is(ctrStatus(pod, 'fallback').state.terminated.message.trim(), 'last words');
    t.is(ctrStatus(pod, 'fallback').state.terminated.exitCode, 1);
  });

  kt('init containers run in order before a restartable sidecar and the main container; volumes are shared', async (t) => {
    k.writePod({
      metadata: { name: 'init', namespace: 'default', labels: { app: 'init' } },
      spec: {
        initContainers: [
          { name: 'one', image: BUSYBOX, command: ['sh', '-c', 'echo one >> /work/order'], volumeMounts: [{ name: 'work', mountPath: '/work' }] },
          { name: 'two', image: BUSYBOX, command: ['sh', '-c', 'echo two >> /work/order'], volumeMounts: [{ name: 'work', mountPath: '/work' }] },
          {
            name: 'sidecar', image: BUSYBOX, restartPolicy: 'Always', command: ['sh', '-c', 'echo sidecar >> /work/order; exec sleep 3600'],
            volumeMounts: [{ name: 'work', mountPath: '/work' }],
          },
        ],
        containers: [{
          name: 'main', image: BUSYBOX, command: ['sh', '-c', 'echo main >> /work/order; exec sleep 3600'],
          volumeMounts: [{ name: 'work', mountPath: '/work' }, { name: 'mem', mountPath: '/mem' }, { name: 'info', mountPath: '/info' }],
        }],
        volumes: [
          { name: 'work', emptyDir: {} },
          { name: 'mem', emptyDir: { medium: 'Memory', sizeLimit: '16Mi' } },
          { name: 'info', downwardAPI: { items: [{ path: 'labels', fieldRef: { fieldPath: 'metadata.labels' } }] } },
        ],
      },
    });
    const pod = await k.waitPod('init', ready, 120_000, 'Ready');
    const id = ctrStatus(pod, 'main').containerID.replace(/^[a-z]+:\/\//, '');
    t.is((await h.crictlOk(['exec', id, 'cat', '/work/order'])).trim(), 'one\ntwo\nsidecar\nmain');
    t.regex(await h.crictlOk(['exec', id, 'cat', '/proc/mounts']), /\/mem tmpfs/);
    t.regex(await h.crictlOk(['exec', id, 'cat', '/info/labels']), /app="init"/);
  });

  kt('image volumes: an image\'s merged layers, whole and by subPath, read-only in the pod; the image stays while in use', async (t) => {
    const image = `${h.registry!.host}/corral/layers:latest`;
    k.writePod({
      metadata: { name: 'imagevol', namespace: 'default' },
      spec: {
        containers: [{
          name: 'main', image: BUSYBOX,
          command: ['sh', '-c', 'cat /iv/data/c.txt /sub/new.txt > /tmp/seen; touch /iv/x 2>/tmp/rw; exec sleep 3600'],
          readinessProbe: { exec: { command: ['grep', '-q', 'Read-only', '/tmp/rw'] }, periodSeconds: 1 },
          volumeMounts: [{ name: 'iv', mountPath: '/iv' }, { name: 'iv', mountPath: '/sub', subPath: 'data' }],
        }],
        volumes: [{ name: 'iv', image: { reference: image, pullPolicy: 'IfNotPresent' } }],
        terminationGracePeriodSeconds: 1,
      },
    });
    const pod = await k.waitPod('imagevol', ready, 120_000, 'Ready');
    const id = ctrStatus(pod, 'main').containerID.replace(/^[a-z]+:\/\//, '');
    const seen = await h.crictl(['exec', '-s', id, 'cat', '/tmp/seen']);
    t.regex(seen.stdout, /^c version 2\nnew\n/);
    const st = await h.crictlJson<any>(['inspect', id]);
    const imageId = (await h.crictlJson<any>(['inspecti', image])).status.id;
    t.deepEqual(st.status.mounts.filter((m: any) => m.image?.image).map((m: any) => [m.containerPath, m.imageSubPath ?? '', m.image.imageRef]), [['/iv', '', imageId], ['/sub', 'data', imageId]]);
    t.not((await h.crictl(['rmi', imageId])).code, 0, 'RemoveImage of an image a volume uses fails');
    t.true(await removeAndWait('imagevol', id), 'the container is gone');
  });

  kt('hostUsers: false: the pod runs in a user namespace of its own, root owns its emptyDir and hostPath volumes (where the handler and file system allow; else refused)', async (t) => {
    const hostDir = join(h.dir, 'userns-hostpath');
    mkdirSync(hostDir, { recursive: true });
    k.writePod({
      metadata: { name: 'userns', namespace: 'default' },
      spec: {
        hostUsers: false,
        containers: [{
          name: 'main', image: BUSYBOX,
          command: ['sh', '-c', 'cat /proc/self/uid_map > /work/map; echo a > /work/a; echo h > /host/h; stat -c %u /work/a /host/h > /work/owners; touch /tmp/ready; exec sleep 3600'],
          readinessProbe: { exec: { command: ['cat', '/tmp/ready'] }, periodSeconds: 1 },
          volumeMounts: [{ name: 'work', mountPath: '/work' }, { name: 'host', mountPath: '/host' }],
        }],
        volumes: [{ name: 'work', emptyDir: {} }, { name: 'host', hostPath: { path: hostDir, type: 'Directory' } }],
        terminationGracePeriodSeconds: 1,
      },
    });
    const status = await h.crictlJson<any>(['info']);
    const supported = (status.runtimeHandlers ?? []).some((x: any) => (x.name ?? '') === '' && x.features?.user_namespaces);
    t.is(supported, runtime === 'crun' && !process.env.CORRAL_E2E_V2, 'crun here; not runc 1.1, nor the v2 guest (its layers on tmpfs, which Linux 6.1 cannot idmap)');
    if (!supported) {
      // corral says so in Status, and the pod is refused.
      await sleep(8000);
      t.regex(k.log(), /user namespace/);
      const pod = await k.waitPod('userns', () => true, 30_000, 'a status');
      t.false(ready(pod));
      k.removePod('userns');
      return;
    }
    const pod = await k.waitPod('userns', ready, 120_000, 'Ready');
    const id = ctrStatus(pod, 'main').containerID.replace(/^[a-z]+:\/\//, '');
    const map = await h.crictl(['exec', '-s', id, 'cat', '/work/map']);
    const [inside, host, len] = map.stdout.trim().split(/\s+/).map(Number);
    t.is(inside, 0);
    t.true(host! >= 65536 && len! >= 65536, map.stdout);
    // The kubelet maps every volume: what root writes is the host's root's, as without a user namespace.
    t.is((await h.crictl(['exec', '-s', id, 'cat', '/work/owners'])).stdout.trim().split(/\s+/).join(' '), '0 0');
    const { statSync } = await import('node:fs');
    t.is(statSync(join(hostDir, 'h')).uid, 0);
    const info = await h.crictlJson<any>(['inspect', id]);
    t.regex(readFileSync(`/proc/${info.info.pid}/uid_map`, 'utf8'), new RegExp(`^\\s*0\\s+${host}\\s+${len}`));
    t.true(await removeAndWait('userns', id), 'the container is gone');
  });

  kt('namespaces: hostNetwork, hostPID and hostIPC are the host\'s; shareProcessNamespace shares one; pod sysctls apply', async (t) => {
    k.writePod({
      metadata: { name: 'hostns', namespace: 'default' },
      spec: { hostNetwork: true, hostPID: true, hostIPC: true, terminationGracePeriodSeconds: 1, containers: [{ name: 'main', image: BUSYBOX, command: ['sleep', '3600'] }] },
    });
    k.writePod({
      metadata: { name: 'shared', namespace: 'default' },
      spec: {
        shareProcessNamespace: true,
        terminationGracePeriodSeconds: 1,
        securityContext: { sysctls: [{ name: 'net.ipv4.ip_unprivileged_port_start', value: '100' }, { name: 'kernel.shm_rmid_forced', value: '1' }] },
        containers: [
          { name: 'a', image: BUSYBOX, command: ['sleep', '3601'] },
          { name: 'b', image: BUSYBOX, command: ['sleep', '3602'] },
        ],
      },
    });
    const host = await k.waitPod('hostns', ready, 120_000, 'Ready');
    const shared = await k.waitPod('shared', ready, 120_000, 'Ready');
    const idOf = (p: any, c: string) => ctrStatus(p, c).containerID.replace(/^[a-z]+:\/\//, '');
    for (const ns of ['net', 'pid', 'ipc']) {
      const inside = (await h.crictlOk(['exec', idOf(host, 'main'), 'readlink', `/proc/self/ns/${ns}`])).trim();
      t.is(inside, readlinkSync(`/proc/self/ns/${ns}`), ns);
    }
    t.is(host.status.podIP, host.status.hostIP);
    const ps = await h.crictlOk(['exec', idOf(shared, 'b'), 'ps', '-o', 'args']);
    t.regex(ps, /sleep 3601/);
    t.regex(ps, /sleep 3602/);
    t.is((await h.crictlOk(['exec', idOf(shared, 'a'), 'cat', '/proc/sys/net/ipv4/ip_unprivileged_port_start'])).trim(), '100');
    t.is((await h.crictlOk(['exec', idOf(shared, 'a'), 'cat', '/proc/sys/kernel/shm_rmid_forced'])).trim(), '1');
    t.not(readFileSync('/proc/sys/net/ipv4/ip_unprivileged_port_start', 'utf8').trim(), '100', 'the host keeps its own value');
    k.removePod('hostns');
    k.removePod('shared');
  });

  kt('lifecycle hooks: postStart before Running; on deletion preStop runs, then the stop signal, within the grace period', async (t) => {
    const hooks = join(h.dir, 'hooks');
    mkdirSync(hooks, { recursive: true });
    k.writePod({
      metadata: { name: 'hooks', namespace: 'default' },
      spec: {
        terminationGracePeriodSeconds: 10,
        containers: [{
          name: 'main', image: BUSYBOX,
          command: ['sh', '-c', "trap 'echo term >> /hooks/log; exit 0' TERM; while true; do sleep 0.1; done"],
          lifecycle: {
            postStart: { exec: { command: ['sh', '-c', 'echo post >> /hooks/log'] } },
            preStop: { exec: { command: ['sh', '-c', 'echo pre >> /hooks/log; sleep 1'] } },
          },
          volumeMounts: [{ name: 'hooks', mountPath: '/hooks' }],
        }],
        volumes: [{ name: 'hooks', hostPath: { path: hooks, type: 'Directory' } }],
      },
    });
    await k.waitPod('hooks', ready, 120_000, 'Ready');
    t.is(readFileSync(join(hooks, 'log'), 'utf8'), 'post\n');
    k.removePod('hooks');
    // The pod leaves the kubelet's list at once; its containers are killed after that.
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && !readFileSync(join(hooks, 'log'), 'utf8').includes('term')) await sleep(300);
    t.is(readFileSync(join(hooks, 'log'), 'utf8'), 'post\npre\nterm\n');
  });

  kt('hostPath propagation: a Bidirectional mount made in a privileged pod (CSI-like) reaches the host and a HostToContainer pod', async (t) => {
    const shared = join(h.dir, 'propagation');
    mkdirSync(shared, { recursive: true });
    k.writePod({
      metadata: { name: 'csi', namespace: 'default' },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [{
          name: 'driver', image: BUSYBOX, securityContext: { privileged: true },
          command: ['sh', '-c', 'mkdir -p /plugin/vol && mount -t tmpfs csi-vol /plugin/vol && echo published > /plugin/vol/f && touch /tmp/ready; exec sleep 3600'],
          readinessProbe: { exec: { command: ['cat', '/tmp/ready'] }, periodSeconds: 1 },
          volumeMounts: [{ name: 'plugin', mountPath: '/plugin', mountPropagation: 'Bidirectional' }],
        }],
        volumes: [{ name: 'plugin', hostPath: { path: shared, type: 'Directory' } }],
      },
    });
    k.writePod({
      metadata: { name: 'consumer', namespace: 'default' },
      spec: {
        terminationGracePeriodSeconds: 1,
        containers: [{
          name: 'main', image: BUSYBOX, command: ['sleep', '3600'],
          volumeMounts: [{ name: 'plugin', mountPath: '/plugin', mountPropagation: 'HostToContainer', readOnly: true }],
        }],
        volumes: [{ name: 'plugin', hostPath: { path: shared, type: 'Directory' } }],
      },
    });
    try {
      await k.waitPod('csi', ready, 120_000, 'Ready');
      const consumer = await k.waitPod('consumer', ready, 120_000, 'Ready');
      t.is(readFileSync(join(shared, 'vol', 'f'), 'utf8'), 'published\n', 'the host sees the pod\'s mount');
      const id = ctrStatus(consumer, 'main').containerID.replace(/^[a-z]+:\/\//, '');
      let seen = '';
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline && seen !== 'published') {
        seen = (await h.crictl(['exec', id, 'cat', '/plugin/vol/f'])).stdout.trim();
        await sleep(300);
      }
      t.is(seen, 'published', 'the HostToContainer pod sees it');
    } finally {
      k.removePod('csi');
      k.removePod('consumer');
      const deadline = Date.now() + 60_000;
      while (Date.now() < deadline && ((await k.pod('csi')) || (await k.pod('consumer')))) await sleep(500);
      // The driver's mount outlives its pod on the host, as a real CSI driver's would until unpublished.
      await run('umount', ['-l', join(shared, 'vol')]);
    }
  });

  kt('logs land under the kubelet\'s pod log dir, one file per attempt, in the CRI log format', async (t) => {
    const pod = await k.waitPod('crasher', (p) => (ctrStatus(p, 'crash')?.restartCount ?? 0) >= 2, 60_000, 'two restarts');
    const dir = join(k.podLogsDir, `default_crasher-${k.nodeName}_${pod.metadata.uid}`, 'crash');
    t.true(existsSync(dir), dir);
    // The kubelet keeps the newest attempts' files only, and the newest may be created and not
    // yet started (empty; on a slow host for a while): wait for one that has run, then every
    // file with content must be in the CRI format.
    const logs = () => readdirSync(dir).filter((f) => /^\d+\.log$/.test(f)).map((f) => ({ f, text: readFileSync(join(dir, f), 'utf8') }));
    const end = Date.now() + 60_000;
    while (!logs().some((l) => l.text !== '') && Date.now() < end) await sleep(500);
    const files = logs().filter((l) => l.text !== '');
    t.true(files.length >= 1, readdirSync(dir).join(' '));
    for (const { f, text } of files) t.regex(text, /^\S+ stdout F crashing$/m, f);
  });

  kt('/stats/summary carries cpu, memory, network, rootfs and logs of every pod and container (CRI stats provider)', async (t) => {
    let summary: any;
    let pod: any;
    const deadline = Date.now() + 60_000;
    for (;;) {
      summary = await k.get('/stats/summary');
      pod = (summary.pods ?? []).find((p: any) => p.podRef.name === `limits-${k.nodeName}`);
      const c = pod?.containers?.find((x: any) => x.name === 'main');
      if (c?.cpu?.usageNanoCores !== undefined && c?.memory?.workingSetBytes !== undefined && pod?.network?.interfaces?.length) break;
      if (Date.now() > deadline) break;
      await sleep(2000);
    }
    t.truthy(pod, 'the pod is in the summary');
    const c = pod.containers.find((x: any) => x.name === 'main');
    t.true(c.cpu.usageCoreNanoSeconds > 0, JSON.stringify(c.cpu));
    t.true(c.memory.workingSetBytes > 0, JSON.stringify(c.memory));
    t.truthy(c.rootfs, 'rootfs');
    t.truthy(c.logs, 'logs');
    t.true(pod.network.interfaces.some((i: any) => i.name === 'eth0'), JSON.stringify(pod.network));
    t.true(pod.cpu.usageCoreNanoSeconds > 0, 'pod cpu');
    t.true(pod.memory.workingSetBytes > 0, 'pod memory');
    t.truthy(summary.node.runtime?.imageFs, 'image filesystem');
    t.true(summary.node.runtime.imageFs.capacityBytes > 0);
  });

  kt('a kill -9 of corral: the kubelet reconnects, nothing restarts, pods stay Ready', async (t) => {
    const before = await k.waitPod('limits', ready, 30_000, 'Ready');
    const restarts = ctrStatus(before, 'main').restartCount;
    await h.stopDaemon('SIGKILL');
    await sleep(3000);
    await h.startDaemon();
    // Long enough for several relists and probe rounds through the new daemon.
    await sleep(10_000);
    const after = await k.waitPod('limits', ready, 60_000, 'Ready again');
    t.is(ctrStatus(after, 'main').restartCount, restarts);
    t.is(ctrStatus(after, 'main').containerID, ctrStatus(before, 'main').containerID);
    const web = await k.waitPod('probes', (p) => ctrStatus(p, 'web')?.ready === true, 60_000, 'web ready');
    t.is(ctrStatus(web, 'web').restartCount, 0);
  });

  kt('a manifest removed: the kubelet stops and removes the pod through corral', async (t) => {
    const pod = await k.waitPod('init', ready, 30_000, 'Ready');
    k.removePod('init');
    const deadline = Date.now() + 60_000;
    let left: any[] = [];
    while (Date.now() < deadline) {
      const pods = await h.crictlJson<any>(['pods', '-o', 'json', '--label', `io.kubernetes.pod.uid=${pod.metadata.uid}`]);
      left = (pods.items ?? []).filter((p: any) => p.state === 'SANDBOX_READY');
      if (left.length === 0 && !(await k.pod('init'))) break;
      await sleep(500);
    }
    t.deepEqual(left, []);
    t.falsy(await k.pod('init'));
  });
}
