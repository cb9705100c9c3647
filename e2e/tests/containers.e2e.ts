/**
 * Containers (issue 6) through crictl on a real daemon: lifecycle, exit codes and reasons,
 * CRI log format, stop of a process ignoring SIGTERM, ExecSync with a timeout, resource
 * updates visible in the cgroup, filters, and a kill -9 of the daemon with containers
 * running. The harness's stop() fails the file if anything is left behind.
 */
import test from 'ava';
import { promises as fs, existsSync } from 'node:fs';
import { join } from 'node:path';
import { criCall } from '../harness/cri.js';
import { startHarness, sleep, type Harness } from '../harness/index.js';

const BUSYBOX = 'registry.k8s.io/e2e-test-images/busybox:1.29-2';
let h: Harness;
let n = 0;

test.before(async () => {
  h = await startHarness({ runtime: (process.env.CORRAL_E2E_RUNTIME as 'crun' | 'runc' | undefined) ?? 'crun' });
  await h.crictlOk(['pull', BUSYBOX], { timeoutMs: 180_000 });
});

test.after.always(async () => {
  await h?.stop();
});

interface Pod { id: string; config: string; logDir: string }

async function runPod(name: string): Promise<Pod> {
  n++;
  const logDir = join(h.dir, 'pod-logs', `${name}-${n}`);
  const cfg = {
    metadata: { name, namespace: 'e2e-containers', uid: `uid-${name}-${n}`, attempt: 0 },
    log_directory: logDir,
    linux: {},
  };
  const config = h.writeJson(`pod-${name}-${n}.json`, cfg);
  const id = (await h.crictlOk(['runp', config])).trim();
  return { id, config, logDir };
}

async function createCtr(pod: Pod, name: string, command: string[], extra: Record<string, unknown> = {}): Promise<string> {
  const cfg = { metadata: { name }, image: { image: BUSYBOX }, command, log_path: `${name}.log`, labels: { app: name, suite: 'containers' }, linux: {}, ...extra };
  const path = h.writeJson(`ctr-${name}-${n}.json`, cfg);
  return (await h.crictlOk(['create', pod.id, path, pod.config])).trim();
}

async function inspect(id: string): Promise<any> {
  return h.crictlJson<any>(['inspect', id]);
}

async function waitState(id: string, state: string, ms = 20_000): Promise<any> {
  const end = Date.now() + ms;
  for (;;) {
    const st = await inspect(id);
    if (st.status.state === state || Date.now() > end) return st;
    await sleep(100);
  }
}

async function removePod(pod: Pod): Promise<void> {
  await h.crictlOk(['stopp', pod.id]);
  await h.crictlOk(['rmp', pod.id]);
}

test.serial('create, start, exit code, reason, CRI log format and crictl logs', async (t) => {
  const pod = await runPod('lifecycle');
  const id = await createCtr(pod, 'exits', ['sh', '-c', 'echo hello; echo oops >&2; printf partial; exit 3']);
  t.is((await inspect(id)).status.state, 'CONTAINER_CREATED');
  await h.crictlOk(['start', id]);
  const st = await waitState(id, 'CONTAINER_EXITED');
  t.is(st.status.state, 'CONTAINER_EXITED', JSON.stringify(st.status));
  t.is(st.status.exitCode, 3);
  t.is(st.status.reason, 'Error');
  t.is(st.status.logPath, join(pod.logDir, 'exits.log'));
  t.truthy(st.info?.runtimeSpec, 'verbose info has the OCI spec');
  t.is(st.info?.sandboxID, pod.id);
  const raw = (await fs.readFile(st.status.logPath, 'utf8')).split('\n').filter(Boolean);
  for (const l of raw) t.regex(l, /^\S+ (stdout|stderr) [FP] /);
  t.true(raw.some((l) => / stdout F hello$/.test(l)));
  t.true(raw.some((l) => / stderr F oops$/.test(l)));
  t.true(raw.some((l) => / stdout P partial$/.test(l)));
  const logs = await h.crictl(['logs', id]);
  t.regex(logs.stdout + logs.stderr, /hello/);

  const ok = await createCtr(pod, 'completes', ['true']);
  await h.crictlOk(['start', ok]);
  const st2 = await waitState(ok, 'CONTAINER_EXITED');
  t.is(st2.status.exitCode, 0);
  t.is(st2.status.reason, 'Completed');

  // -k: crictl itself deletes the log file unless asked to keep it; corral never does
  await h.crictlOk(['rm', '-k', id]);
  t.true(existsSync(st.status.logPath), 'the log belongs to the kubelet and stays');
  await removePod(pod);
});

test.serial('PodSandboxStatus lists the pod\'s containers with their statuses, and a timestamp (evented PLEG)', async (t) => {
  const pod = await runPod('podstatus');
  const ids: string[] = [];
  try {
    const status = (id: string) => criCall<any>(h.socket, 'RuntimeService', 'PodSandboxStatus', { pod_sandbox_id: id, verbose: false });
    const t0 = BigInt(Date.now()) * 1_000_000n;
    t.deepEqual((await status(pod.id)).containers_statuses, []);
    const running = await createCtr(pod, 'runs', ['sleep', '3600']);
    ids.push(running);
    await h.crictlOk(['start', running]);
    const created = await createCtr(pod, 'waits', ['true']);
    ids.push(created);
    // crictl inspectp prints the pod's status and info only; the RPC's answer has the rest.
    t.is((await h.crictlJson<any>(['inspectp', '-o', 'json', pod.id])).status.state, 'SANDBOX_READY');
    const st = await status(pod.id.slice(0, 12));
    const byId = Object.fromEntries(st.containers_statuses.map((c: any) => [c.id, c]));
    t.deepEqual(Object.keys(byId).sort(), [running, created].sort(), JSON.stringify(st.containers_statuses));
    t.is(byId[running].state, 'CONTAINER_RUNNING');
    t.is(byId[running].metadata.name, 'runs');
    t.is(byId[created].state, 'CONTAINER_CREATED');
    // The same ContainerStatus that ContainerStatus answers.
    const own = await criCall<any>(h.socket, 'RuntimeService', 'ContainerStatus', { container_id: running, verbose: false });
    t.deepEqual(byId[running], own.status);
    const ts = BigInt(st.timestamp);
    t.true(ts >= t0 && ts <= BigInt(Date.now()) * 1_000_000n + 1_000_000n, String(st.timestamp));
    await h.crictlOk(['stop', '--timeout', '0', running]);
    t.is((await status(pod.id)).containers_statuses.find((c: any) => c.id === running).state, 'CONTAINER_EXITED');
  } finally {
    if (ids.length) await h.crictl(['rm', '-f', ...ids]);
    await removePod(pod);
  }
});

test.serial('large output: every line reaches the CRI log in order', async (t) => {
  const pod = await runPod('bigout');
  const id = await createCtr(pod, 'seq', ['seq', '1', '200000']);
  await h.crictlOk(['start', id]);
  const st = await waitState(id, 'CONTAINER_EXITED', 60_000);
  t.is(st.status.exitCode, 0);
  const lines = (await fs.readFile(st.status.logPath, 'utf8')).split('\n').filter(Boolean);
  // conmon may split a read at any byte: P entries are joined with the next entry
  let text = '';
  for (const l of lines) {
    const m = /^\S+ stdout ([FP]) (.*)$/.exec(l);
    t.truthy(m, l);
    text += m![2] + (m![1] === 'F' ? '\n' : '');
  }
  const nums = text.split('\n').filter(Boolean);
  t.is(nums.length, 200000);
  t.is(nums[0], '1');
  t.is(nums[199999], '200000');
  await h.crictlOk(['rm', id]);
  await removePod(pod);
});

test.serial('stop: SIGKILL after the timeout for a process ignoring SIGTERM; stop is idempotent', async (t) => {
  const pod = await runPod('stop');
  const id = await createCtr(pod, 'stubborn', ['sh', '-c', 'trap "" TERM; while true; do sleep 0.1; done']);
  await h.crictlOk(['start', id]);
  await sleep(300);
  const t0 = Date.now();
  await h.crictlOk(['stop', '--timeout', '2', id]);
  const took = Date.now() - t0;
  t.true(took >= 2000 && took < 10_000, `stop took ${took} ms`);
  const st = await inspect(id);
  t.is(st.status.state, 'CONTAINER_EXITED');
  t.is(st.status.exitCode, 137);
  await h.crictlOk(['stop', id]);
  await h.crictlOk(['rm', id]);
  await removePod(pod);
});

test.serial('exec --sync: output, exit code, and a timeout', async (t) => {
  const pod = await runPod('exec');
  const id = await createCtr(pod, 'sleeper', ['sleep', '3600']);
  await h.crictlOk(['start', id]);
  const ok = await h.crictl(['exec', '-s', id, 'sh', '-c', 'echo out; echo err >&2']);
  t.regex(ok.stdout, /out/);
  t.regex(ok.stdout + ok.stderr, /err/); // crictl prints the command's stderr where it likes
  t.is(ok.code, 0);
  // crictl turns a non-zero exit into its own error naming the code and the stderr
  const r = await h.crictl(['exec', '-s', id, 'sh', '-c', 'echo out; echo err >&2; exit 4']);
  t.not(r.code, 0);
  t.regex(r.stderr, /exited with 4: err/);
  // The exec'd process is in every cgroup of the container (exec skips the hybrid-host wrapper).
  t.is((await h.crictlOk(['exec', '-s', id, 'cat', '/proc/self/cgroup'])).toString(), (await h.crictlOk(['exec', '-s', id, 'cat', '/proc/1/cgroup'])).toString());
  const t0 = Date.now();
  const to = await h.crictl(['exec', '-s', '--timeout', '1', id, 'sleep', '30']);
  t.not(to.code, 0);
  t.true(Date.now() - t0 < 10_000);
  t.regex(to.stderr, /timed out|deadline|timeout/i);
  await h.crictlOk(['stop', '--timeout', '0', id]);
  await h.crictlOk(['rm', id]);
  await removePod(pod);
});

test.serial('update resources reach the container cgroup; filters of ps', async (t) => {
  const pod = await runPod('update');
  const id = await createCtr(pod, 'limited', ['sleep', '3600'], { linux: { resources: { memory_limit_in_bytes: 128 * 1024 * 1024, cpu_shares: 512 } } });
  await h.crictlOk(['start', id]);
  const spec = (await inspect(id)).info.runtimeSpec;
  const cg = spec.linux.cgroupsPath as string;
  const memFile = existsSync('/sys/fs/cgroup/memory')
    ? join('/sys/fs/cgroup/memory', cg, 'memory.limit_in_bytes')
    : join('/sys/fs/cgroup', cg, 'memory.max');
  if (!cg.includes(':')) t.is((await fs.readFile(memFile, 'utf8')).trim(), String(128 * 1024 * 1024));
  await h.crictlOk(['update', '--memory', String(64 * 1024 * 1024), id]);
  if (!cg.includes(':')) t.is((await fs.readFile(memFile, 'utf8')).trim(), String(64 * 1024 * 1024));
  const st = await inspect(id);
  t.is(Number(st.status.resources.linux.memoryLimitInBytes), 64 * 1024 * 1024);

  const ps = async (...args: string[]) => (await h.crictlJson<any>(['ps', '-a', '-o', 'json', ...args])).containers.map((c: any) => c.id);
  t.deepEqual(await ps('--label', 'app=limited'), [id]);
  t.deepEqual(await ps('--pod', pod.id.slice(0, 12)), [id]);
  t.deepEqual(await ps('--state', 'exited', '--pod', pod.id), []);
  t.deepEqual(await ps('--id', id.slice(0, 10)), [id]);
  await h.crictlOk(['stop', '--timeout', '0', id]);
  t.deepEqual(await ps('--state', 'exited', '--pod', pod.id), [id]);
  await h.crictlOk(['rm', id]);
  await removePod(pod);
});

test.serial('OOMKilled with a small memory limit', async (t) => {
  const pod = await runPod('oom');
  const id = await createCtr(pod, 'hog', ['sh', '-c', 'dd if=/dev/zero of=/dev/null bs=256M count=1; sleep 1'], {
    linux: { resources: { memory_limit_in_bytes: 32 * 1024 * 1024, memory_swap_limit_in_bytes: 32 * 1024 * 1024 } },
  });
  await h.crictlOk(['start', id]);
  const st = await waitState(id, 'CONTAINER_EXITED');
  t.is(st.status.state, 'CONTAINER_EXITED');
  t.is(st.status.reason, 'OOMKilled', JSON.stringify(st.status));
  await h.crictlOk(['rm', id]);
  await removePod(pod);
});

test.serial('kill -9 of the daemon: containers keep running and stay manageable after the restart', async (t) => {
  const pods: Pod[] = [];
  const ctrs: string[] = [];
  for (let i = 0; i < 5; i++) {
    const pod = await runPod(`survivor${i}`);
    pods.push(pod);
    const id = await createCtr(pod, `s${i}`, ['sleep', '3600']);
    await h.crictlOk(['start', id]);
    ctrs.push(id);
  }
  const short = await createCtr(pods[0]!, 'short', ['sh', '-c', 'sleep 1; exit 9']);
  await h.crictlOk(['start', short]);
  await h.stopDaemon('SIGKILL');
  await sleep(1500); // `short` exits while the daemon is down
  await h.startDaemon();
  for (const id of ctrs) t.is((await inspect(id)).status.state, 'CONTAINER_RUNNING', id);
  const s = await inspect(short);
  t.is(s.status.state, 'CONTAINER_EXITED');
  t.is(s.status.exitCode, 9);
  const r = await h.crictl(['exec', '-s', ctrs[0]!, 'echo', 'alive']);
  t.regex(r.stdout, /alive/);
  for (const pod of pods) await removePod(pod);
  t.deepEqual((await h.crictlJson<any>(['ps', '-a', '-o', 'json'])).containers, []);
});
