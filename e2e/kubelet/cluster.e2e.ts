/**
 * A one-node cluster whose node runs corral (e2e/harness/cluster.ts), driven with kubectl as a
 * user drives a cluster: Deployments (scale, rolling restart), a Job, every volume kind the
 * kubelet mounts, logs (-f, --previous), exec (-i with piped input, -it under a real pty in
 * tmux), attach, port-forward, cp both ways, debug (an ephemeral container), the node's stats,
 * and pods reaching each other by pod IP.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { freePort, run, sleep, startHarness, type Harness } from '../harness/index.js';
import { startCluster, type Cluster } from '../harness/cluster.js';
import { httpGet, kubeletAvailable } from '../harness/kubelet.js';
import { tool } from '../harness/paths.js';
import { BUSYBOX, webImage } from './standalone.js';

let h: Harness;
let c: Cluster;
const skip = !kubeletAvailable();
const local = mkdtempSync(join(tmpdir(), 'corral-e2e-kubectl-'));

test.before(async () => {
  if (skip) return;
  h = await startHarness();
  c = await startCluster(h);
});

test.after.always(async () => {
  if (c) {
    if (process.env.CORRAL_E2E_PRINT_LOGS) for (const [n, l] of Object.entries(c.logs())) console.error(`==== ${n}\n${l.slice(-20000)}`);
    await c.kubectl(['delete', 'deployments,jobs,pods', '--all', '--wait=true', '--timeout=60s']).catch(() => undefined);
    await c.stop();
  }
  await h?.stop();
  rmSync(local, { recursive: true, force: true });
});

const ct = (title: string, fn: (t: import('ava').ExecutionContext) => Promise<void>) =>
  test.serial(title, async (t) => {
    if (skip) {
      t.log('no Kubernetes binaries in .tools/bin (bash e2e/kube/build.sh)');
      t.pass();
      return;
    }
    try {
      await fn(t);
      t.true(c.kubelet.running, `the kubelet is running: ${c.kubelet.running ? '' : c.kubelet.log().slice(-3000)}`);
    } catch (e) {
      const events = await c.kubectl(['get', 'events', '-A', '--sort-by=.lastTimestamp']).catch(() => undefined);
      t.log(`events:\n${events?.stdout.split('\n').slice(-25).join('\n')}`);
      t.log(`kubelet errors:\n${c.kubelet.log().split('\n').filter((l) => /^E\d{4}/.test(l)).slice(-25).join('\n')}`);
      throw e;
    }
  });

async function podsOf(app: string): Promise<any[]> {
  return (await c.kubectlJson<any>(['get', 'pods', '-l', `app=${app}`])).items;
}

const deployment = (name: string, replicas: number, image: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'apps/v1',
  kind: 'Deployment',
  metadata: { name },
  spec: {
    replicas,
    selector: { matchLabels: { app: name } },
    template: {
      metadata: { labels: { app: name } },
      spec: {
        terminationGracePeriodSeconds: 2,
        containers: [{ name: 'main', image, readinessProbe: { httpGet: { path: '/', port: 80 }, periodSeconds: 1 }, ...extra }],
      },
    },
  },
});

ct('a Deployment rolls out, scales up and down, restarts rolling; its pods reach each other by pod IP', async (t) => {
  await c.kubectlOk(['apply', '-f', c.writeManifest('web', deployment('web', 2, webImage(h)))]);
  await c.kubectlOk(['rollout', 'status', 'deployment/web', '--timeout=180s'], { timeoutMs: 200_000 });
  let pods = await podsOf('web');
  t.is(pods.length, 2);
  const [a, b] = pods;
  t.truthy(a.status.podIP);
  t.not(a.status.podIP, b.status.podIP);
  const page = await c.kubectlOk(['exec', a.metadata.name, '--', 'wget', '-qO-', `http://${b.status.podIP}/`]);
  t.regex(page, /hello/);

  await c.kubectlOk(['scale', 'deployment/web', '--replicas=3']);
  await c.kubectlOk(['rollout', 'status', 'deployment/web', '--timeout=120s'], { timeoutMs: 150_000 });
  t.is((await podsOf('web')).filter((p) => p.status.phase === 'Running').length, 3);
  await c.kubectlOk(['scale', 'deployment/web', '--replicas=1']);
  const deadline = Date.now() + 60_000;
  while ((await podsOf('web')).length !== 1 && Date.now() < deadline) await sleep(1000);
  t.is((await podsOf('web')).length, 1);

  const before = (await podsOf('web'))[0].metadata.name;
  await c.kubectlOk(['rollout', 'restart', 'deployment/web']);
  await c.kubectlOk(['rollout', 'status', 'deployment/web', '--timeout=120s'], { timeoutMs: 150_000 });
  const end = Date.now() + 60_000;
  while (Date.now() < end) {
    pods = await podsOf('web');
    if (pods.length === 1 && pods[0].metadata.name !== before) break;
    await sleep(1000);
  }
  t.not(pods[0].metadata.name, before);
});

ct('a Job runs to completion and its log is readable', async (t) => {
  await c.kubectlOk(['apply', '-f', c.writeManifest('job', {
    apiVersion: 'batch/v1', kind: 'Job', metadata: { name: 'once' },
    spec: { backoffLimit: 0, template: { spec: { restartPolicy: 'Never', containers: [{ name: 'main', image: BUSYBOX, command: ['sh', '-c', 'echo job done'] }] } } },
  })]);
  await c.kubectlOk(['wait', '--for=condition=complete', 'job/once', '--timeout=120s'], { timeoutMs: 150_000 });
  t.is((await c.kubectlOk(['logs', 'job/once'])).trim(), 'job done');
});

ct('volumes: configMap, secret, projected service account token, downward API, emptyDir, hostPath, subPath; fsGroup', async (t) => {
  const hostDir = mkdtempSync(join(tmpdir(), 'corral-e2e-hostpath-'));
  writeFileSync(join(hostDir, 'from-host'), 'host file\n');
  try {
    await c.kubectlOk(['create', 'configmap', 'cfg', '--from-literal=greeting=hello from a configmap']);
    await c.kubectlOk(['create', 'secret', 'generic', 'sec', '--from-literal=password=s3cr3t']);
    await c.kubectlOk(['apply', '-f', c.writeManifest('volumes', {
      apiVersion: 'v1', kind: 'Pod', metadata: { name: 'volumes', labels: { app: 'volumes' } },
      spec: {
        terminationGracePeriodSeconds: 1,
        securityContext: { fsGroup: 2000 },
        containers: [{
          name: 'main', image: BUSYBOX, command: ['sleep', '3600'],
          volumeMounts: [
            { name: 'cfg', mountPath: '/cfg' },
            { name: 'sec', mountPath: '/sec' },
            { name: 'info', mountPath: '/info' },
            { name: 'scratch', mountPath: '/scratch' },
            { name: 'host', mountPath: '/host' },
            { name: 'cfg', mountPath: '/etc/greeting', subPath: 'greeting' },
          ],
        }],
        volumes: [
          { name: 'cfg', configMap: { name: 'cfg' } },
          { name: 'sec', secret: { secretName: 'sec' } },
          { name: 'info', downwardAPI: { items: [{ path: 'name', fieldRef: { fieldPath: 'metadata.name' } }] } },
          { name: 'scratch', emptyDir: {} },
          { name: 'host', hostPath: { path: hostDir, type: 'Directory' } },
        ],
      },
    })]);
    await c.kubectlOk(['wait', '--for=condition=Ready', 'pod/volumes', '--timeout=120s'], { timeoutMs: 150_000 });
    const sh = (cmd: string) => c.kubectlOk(['exec', 'volumes', '--', 'sh', '-c', cmd]);
    t.is(await sh('cat /cfg/greeting'), 'hello from a configmap');
    t.is(await sh('cat /etc/greeting'), 'hello from a configmap');
    t.is(await sh('cat /sec/password'), 's3cr3t');
    t.is(await sh('cat /info/name'), 'volumes');
    t.is(await sh('cat /host/from-host'), 'host file\n');
    // The projected service account token every pod gets, with the cluster's CA.
    const token = await sh('cat /var/run/secrets/kubernetes.io/serviceaccount/token');
    t.regex(token, /^[\w-]+\.[\w-]+\.[\w-]+$/);
    t.regex(await sh('cat /var/run/secrets/kubernetes.io/serviceaccount/namespace'), /^default$/);
    // fsGroup: the emptyDir belongs to group 2000 and the process carries it.
    t.regex(await sh('stat -c %g /scratch; id -G'), /^2000\n(.* )?2000( |\n|$)/);
    // Written in the pod, seen on the host (a plain hostPath bind).
    await sh('echo from-pod > /host/from-pod');
    t.is(readFileSync(join(hostDir, 'from-pod'), 'utf8'), 'from-pod\n');
  } finally {
    await c.kubectl(['delete', 'pod/volumes', 'configmap/cfg', 'secret/sec', '--wait=true', '--timeout=60s']);
    rmSync(hostDir, { recursive: true, force: true });
  }
});

const sleeper = (name: string, extra: Record<string, unknown> = {}) => ({
  apiVersion: 'v1', kind: 'Pod', metadata: { name, labels: { app: name } },
  spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'main', image: BUSYBOX, command: ['sleep', '3600'], ...extra }] },
});

async function applyReady(name: string, obj: unknown): Promise<void> {
  await c.kubectlOk(['apply', '-f', c.writeManifest(name, obj)]);
  await c.kubectlOk(['wait', '--for=condition=Ready', `pod/${name}`, '--timeout=120s'], { timeoutMs: 150_000 });
}

// A standalone kubelet has no RuntimeClass manager and so never allows recursive read-only
// mounts: this one needs the API server.
ct('recursiveReadOnly: Enabled: a hostPath volume with a submount is read-only all the way down', async (t) => {
  const dir = join(h.dir, 'rro-host');
  await run('mkdir', ['-p', join(dir, 'sub')]);
  await run('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'rro-sub', join(dir, 'sub')]);
  t.teardown(async () => { await run('umount', ['-l', join(dir, 'sub')]); });
  await applyReady('rro', {
    apiVersion: 'v1', kind: 'Pod', metadata: { name: 'rro', labels: { app: 'rro' } },
    spec: {
      terminationGracePeriodSeconds: 1,
      containers: [{
        name: 'main', image: BUSYBOX, command: ['sleep', '3600'],
        volumeMounts: [
          { name: 'host', mountPath: '/rro', readOnly: true, recursiveReadOnly: 'Enabled' },
          { name: 'host', mountPath: '/ro', readOnly: true },
        ],
      }],
      volumes: [{ name: 'host', hostPath: { path: dir, type: 'Directory' } }],
    },
  });
  const sh = (script: string) => c.kubectl(['exec', 'rro', '--', 'sh', '-c', `(${script}) 2>&1; echo "status $?"`]);
  t.regex((await sh('touch /rro/top')).stdout, /Read-only[\s\S]*status 1/);
  t.regex((await sh('touch /rro/sub/deep')).stdout, /Read-only[\s\S]*status 1/);
  // Without rro the submount keeps its own flags: what rro is for.
  t.regex((await sh('touch /ro/sub/deep')).stdout, /status 0/);
  const pod = await c.kubectlJson<any>(['get', 'pod', 'rro']);
  const vm = pod.status.containerStatuses[0].volumeMounts.find((m: any) => m.mountPath === '/rro');
  t.is(vm.recursiveReadOnly, 'Enabled');
  await c.kubectlOk(['delete', 'pod', 'rro', '--wait=true', '--timeout=60s']);
});

ct('kubectl logs -f follows, and --previous shows the attempt before a restart', async (t) => {
  await applyReady('talker', sleeper('talker', { command: ['sh', '-c', 'i=0; while true; do i=$((i+1)); echo line $i; sleep 0.2; done'] }));
  const child = spawn(tool('kubectl'), ['--kubeconfig', c.kubeconfig, 'logs', '-f', 'talker'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
  const deadline = Date.now() + 30_000;
  while (!/line 15\n/.test(out) && Date.now() < deadline) await sleep(200);
  child.kill('SIGTERM');
  t.regex(out, /line 1\nline 2\n[\s\S]*line 15\n/);

  await applyReady('phoenix', sleeper('phoenix', { command: ['sh', '-c', 'echo life $(cat /proc/uptime); sleep 2; exit 1'] }));
  const end = Date.now() + 90_000;
  for (;;) {
    const p = await c.kubectlJson<any>(['get', 'pod', 'phoenix']);
    if ((p.status.containerStatuses?.[0]?.restartCount ?? 0) >= 1) break;
    if (Date.now() > end) throw new Error('phoenix never restarted');
    await sleep(1000);
  }
  const prev = await c.kubectlOk(['logs', '--previous', 'phoenix']);
  t.regex(prev, /^life /);
});

ct('kubectl exec -i with piped input, and exec -it under a real terminal (tmux)', async (t) => {
  await applyReady('shell', sleeper('shell'));
  const input = 'x'.repeat(100_000);
  const r = await c.kubectl(['exec', '-i', 'shell', '--', 'sh', '-c', 'wc -c'], { input });
  t.is(r.code, 0, r.stderr);
  t.is(r.stdout.trim(), '100000');
  const failing = await c.kubectl(['exec', 'shell', '--', 'sh', '-c', 'exit 7']);
  t.is(failing.code, 7);

  const session = `corral-e2e-${process.pid}`;
  await run('tmux', ['new-session', '-d', '-s', session, '-x', '120', '-y', '30',
    `${tool('kubectl')} --kubeconfig ${c.kubeconfig} exec -it shell -- sh`]);
  try {
    await sleep(3000);
    await run('tmux', ['send-keys', '-t', session, 'echo answer=$((6*7)); tty', 'Enter']);
    let screen = '';
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      screen = (await run('tmux', ['capture-pane', '-p', '-t', session])).stdout;
      if (/answer=42/.test(screen) && /\/dev\/pts\/\d+/.test(screen)) break;
      await sleep(300);
    }
    t.regex(screen, /answer=42/);
    t.regex(screen, /\/dev\/pts\/\d+/);
    await run('tmux', ['send-keys', '-t', session, 'exit', 'Enter']);
  } finally {
    await run('tmux', ['kill-session', '-t', session]);
  }
});

ct('kubectl attach to a container reading stdin', async (t) => {
  await applyReady('echoer', sleeper('echoer', { command: ['sh', '-c', 'while read l; do echo got:$l; done; sleep 3600'], stdin: true }));
  const child = spawn(tool('kubectl'), ['--kubeconfig', c.kubeconfig, 'attach', '-i', 'echoer'], { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
  await sleep(2000);
  child.stdin.write('hello\n');
  const deadline = Date.now() + 20_000;
  while (!/got:hello/.test(out) && Date.now() < deadline) await sleep(200);
  child.kill('SIGTERM');
  t.regex(out, /got:hello/);
});

ct('kubectl port-forward to a pod', async (t) => {
  const pods = await podsOf('web');
  const port = await freePort();
  const child = spawn(tool('kubectl'), ['--kubeconfig', c.kubeconfig, 'port-forward', `pod/${pods[0].metadata.name}`, `${port}:80`], { stdio: ['ignore', 'pipe', 'pipe'] });
  try {
    let body = '';
    const deadline = Date.now() + 20_000;
    while (Date.now() < deadline) {
      body = await httpGet(`http://127.0.0.1:${port}/`).then((r) => r.body, () => '');
      if (body) break;
      await sleep(300);
    }
    t.regex(body, /hello/);
    // Several requests through one tunnel.
    for (let i = 0; i < 5; i++) t.regex((await httpGet(`http://127.0.0.1:${port}/`)).body, /hello/);
  } finally {
    child.kill('SIGTERM');
  }
});

ct('kubectl cp into a pod and back out', async (t) => {
  const src = join(local, 'payload.bin');
  const data = Buffer.alloc(300_000);
  for (let i = 0; i < data.length; i++) data[i] = (i * 7919) & 0xff;
  writeFileSync(src, data);
  await c.kubectlOk(['cp', src, 'shell:/tmp/payload.bin']);
  t.is((await c.kubectlOk(['exec', 'shell', '--', 'wc', '-c', '/tmp/payload.bin'])).trim().split(/\s+/)[0], '300000');
  const back = join(local, 'back.bin');
  await c.kubectlOk(['cp', 'shell:/tmp/payload.bin', back]);
  t.true(readFileSync(back).equals(data));
});

ct('kubectl debug adds an ephemeral container that shares the target\'s process namespace', async (t) => {
  await c.kubectlOk(['debug', 'shell', `--image=${BUSYBOX}`, '--container=dbg', '--target=main', '--', 'sh', '-c', 'ps; sleep 3600']);
  const deadline = Date.now() + 90_000;
  let st: any;
  while (Date.now() < deadline) {
    const p = await c.kubectlJson<any>(['get', 'pod', 'shell']);
    st = p.status.ephemeralContainerStatuses?.find((s: any) => s.name === 'dbg');
    if (st?.state?.running) break;
    await sleep(1000);
  }
  t.truthy(st?.state?.running, JSON.stringify(st));
  let logs = '';
  while (Date.now() < deadline && !/sleep 3600/.test(logs)) {
    logs = (await c.kubectl(['logs', 'shell', '-c', 'dbg'])).stdout;
    await sleep(500);
  }
  // --target: the debug container sees the target's processes.
  t.regex(logs, /sleep 3600/);
});

ct('RuntimeClass: a pod with runtimeClassName runs on corral\'s runc handler', async (t) => {
  await c.kubectlOk(['apply', '-f', c.writeManifest('runtimeclass', { apiVersion: 'node.k8s.io/v1', kind: 'RuntimeClass', metadata: { name: 'runc' }, handler: 'runc' })]);
  await applyReady('on-runc', { ...sleeper('on-runc'), spec: { ...sleeper('on-runc').spec, runtimeClassName: 'runc' } });
  const pods = await h.crictlJson<any>(['pods', '-o', 'json', '--name', '^on-runc$']);
  const ready = pods.items.filter((p: any) => p.state === 'SANDBOX_READY');
  t.is(ready.length, 1);
  t.is(ready[0].runtimeHandler, 'runc');
  const ctr = await h.crictlJson<any>(['ps', '-o', 'json', '--pod', ready[0].id]);
  const info = await h.crictlJson<any>(['inspect', ctr.containers[0].id]);
  t.regex(JSON.stringify(info.info), /runc/);
  await c.kubectl(['delete', 'pod/on-runc', 'runtimeclass/runc', '--wait=true', '--timeout=60s']);
});

ct('in-place resize: the container\'s cgroup gets the new cpu and memory limits without a restart', async (t) => {
  await applyReady('resize', { ...sleeper('resize', { resources: { requests: { cpu: '100m', memory: '64Mi' }, limits: { cpu: '200m', memory: '128Mi' } } }) });
  const before = await c.kubectlJson<any>(['get', 'pod', 'resize']);
  const id = before.status.containerStatuses[0].containerID.replace(/^[a-z]+:\/\//, '');
  await c.kubectlOk(['patch', 'pod', 'resize', '--subresource', 'resize', '--type', 'merge', '--patch',
    JSON.stringify({ spec: { containers: [{ name: 'main', resources: { requests: { cpu: '150m', memory: '64Mi' }, limits: { cpu: '300m', memory: '192Mi' } } }] } })]);
  const deadline = Date.now() + 90_000;
  let st: any;
  while (Date.now() < deadline) {
    st = (await c.kubectlJson<any>(['get', 'pod', 'resize'])).status.containerStatuses[0];
    if (st.resources?.limits?.cpu === '300m' && st.resources?.limits?.memory === '192Mi') break;
    await sleep(1000);
  }
  t.is(st.resources?.limits?.cpu, '300m', JSON.stringify(st.resources));
  t.is(st.restartCount, 0);
  const info = await h.crictlJson<any>(['inspect', id]);
  t.is(info.status.resources?.linux?.cpuQuota, '30000', JSON.stringify(info.status.resources));
  t.is(info.status.resources?.linux?.memoryLimitInBytes, String(192 * 1024 * 1024));
  // What the kernel enforces, read from the container's own cgroup.
  const quota = (await c.kubectlOk(['exec', 'resize', '--', 'sh', '-c', 'cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us 2>/dev/null || cut -d" " -f1 /sys/fs/cgroup/cpu.max'])).trim();
  t.is(quota, '30000');
  await c.kubectl(['delete', 'pod/resize', '--wait=true', '--timeout=60s']);
});

ct('the node\'s stats through the API server: summary and resource metrics have every running pod', async (t) => {
  const summary = JSON.parse(await c.kubectlOk(['get', '--raw', `/api/v1/nodes/${c.nodeName}/proxy/stats/summary`]));
  const shell = summary.pods.find((p: any) => p.podRef.name === 'shell');
  t.truthy(shell);
  t.true(shell.containers.find((x: any) => x.name === 'main').memory.workingSetBytes > 0);
  t.true(shell.network.interfaces.length > 0);
  const metrics = await c.kubectlOk(['get', '--raw', `/api/v1/nodes/${c.nodeName}/proxy/metrics/resource`]);
  t.regex(metrics, /container_cpu_usage_seconds_total\{container="main",namespace="default",pod="shell"\}/);
  t.regex(metrics, /pod_memory_working_set_bytes\{namespace="default",pod="shell"\}/);
});
