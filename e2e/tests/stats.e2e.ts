/**
 * Stats and events (issue 8) through crictl: a busy container's cpu rises, a memory hog's
 * working set shows its memory, pod stats carry the pod's network counters (which grow after
 * traffic into the pod) and its containers, and `crictl events` sees a container's
 * create/start/stop/delete in order.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import { runOk, sleep, startHarness, type Harness } from '../harness/index.js';
import { tool } from '../harness/paths.js';

let h: Harness;
const IMAGE = 'registry.k8s.io/e2e-test-images/busybox:1.29-2';

test.before(async () => {
  h = await startHarness();
  await h.crictlOk(['pull', IMAGE], { timeoutMs: 120_000 });
});

test.after.always(async () => {
  await h?.stop();
});

let seq = 0;
function podConfig(): Record<string, unknown> {
  const n = `st${++seq}`;
  return {
    metadata: { name: n, namespace: 'e2e', uid: `uid-${n}-${randomInt(1e9)}`, attempt: 0 },
    log_directory: join(h.dir, 'logs', n),
    labels: { suite: 'stats', pod: n },
    linux: { security_context: { namespace_options: { network: 0, pid: 1, ipc: 0 } } },
  };
}

async function runPod(): Promise<{ pod: string; cfgPath: string }> {
  const cfgPath = h.writeJson(`pod-${seq}-${Date.now()}.json`, podConfig());
  return { pod: (await h.crictlOk(['runp', cfgPath])).trim(), cfgPath };
}

async function runContainer(pod: string, cfgPath: string, name: string, script: string): Promise<string> {
  const ctr = h.writeJson(`ctr-${name}-${Date.now()}.json`, {
    metadata: { name },
    image: { image: IMAGE },
    command: ['sh', '-c', script],
    labels: { ctr: name },
  });
  const id = (await h.crictlOk(['create', pod, ctr, cfgPath])).trim();
  await h.crictlOk(['start', id]);
  return id;
}

interface Val { value: string }
interface CtrStats {
  attributes: { id: string; metadata: { name: string } };
  cpu: { timestamp: string; usageCoreNanoSeconds: Val; usageNanoCores?: Val };
  memory: { timestamp: string; workingSetBytes: Val; usageBytes: Val };
  writableLayer: { usedBytes: Val; inodesUsed: Val };
}

const n = (v: Val | undefined): number => Number(v?.value ?? 0);

test.serial('crictl stats: a busy container\'s cpu rises, a memory hog\'s working set shows', async (t) => {
  const { pod, cfgPath } = await runPod();
  const busy = await runContainer(pod, cfgPath, 'busy', 'while :; do :; done');
  // 48 MiB in the pod's /dev/shm (a tmpfs): shmem is never inactive_file, so it is working set.
  const hog = await runContainer(pod, cfgPath, 'hog', 'dd if=/dev/zero of=/dev/shm/hog bs=1M count=48 2>/dev/null; echo x > /tmp/written; sleep 3600');
  await sleep(1500);
  const first = await h.crictlJson<{ stats: CtrStats[] }>(['stats', '-o', 'json', '--label', 'ctr=busy']);
  await sleep(1000);
  const second = await h.crictlJson<{ stats: CtrStats[] }>(['stats', '-o', 'json', busy]);
  const a = first.stats[0]!;
  const b = second.stats[0]!;
  t.is(b.attributes.id, busy);
  t.true(n(b.cpu.usageCoreNanoSeconds) > n(a.cpu.usageCoreNanoSeconds), 'cpu time grows');
  // One spinning shell on a 2-core host under test load: well above 0.1 core.
  t.true(n(b.cpu.usageNanoCores) > 100_000_000, `usageNanoCores ${b.cpu.usageNanoCores?.value}`);
  t.true(BigInt(b.cpu.timestamp) > BigInt(a.cpu.timestamp));

  const hs = (await h.crictlJson<{ stats: CtrStats[] }>(['stats', '-o', 'json', hog])).stats[0]!;
  t.true(n(hs.memory.workingSetBytes) >= 48 * 1024 * 1024, `working set ${hs.memory.workingSetBytes.value}`);
  t.true(n(hs.memory.usageBytes) >= n(hs.memory.workingSetBytes));
  t.true(n(hs.writableLayer.inodesUsed) >= 2, 'the written file is in the writable layer');

  const all = await h.crictlJson<{ stats: CtrStats[] }>(['stats', '-o', 'json', '--pod', pod]);
  t.deepEqual(all.stats.map((s) => s.attributes.metadata.name).sort(), ['busy', 'hog']);

  for (const id of [busy, hog]) {
    await h.crictlOk(['stop', '-t', '1', id]);
    await h.crictlOk(['rm', id]);
  }
  await h.crictlOk(['stopp', pod]);
  await h.crictlOk(['rmp', pod]);
});

interface PodStats {
  attributes: { id: string };
  linux: {
    cpu: { usageCoreNanoSeconds: Val };
    memory: { workingSetBytes: Val };
    network?: { defaultInterface?: { name: string; rxBytes: Val; txBytes: Val }; interfaces?: Array<{ name: string }> };
    process?: { processCount: Val };
    containers: CtrStats[];
  };
}

test.serial('crictl statsp: pod cpu and memory summed from its containers, network counters grow', async (t) => {
  const { pod, cfgPath } = await runPod();
  const ctr = await runContainer(pod, cfgPath, 'idle', 'sleep 3600');
  const ip = (await h.crictlJson<{ status: { network: { ip: string } } }>(['inspectp', pod])).status.network.ip;
  t.truthy(ip, 'the pod has an IP');
  const before = (await h.crictlJson<{ stats: PodStats[] }>(['statsp', '-o', 'json', '--id', pod])).stats[0]!;
  t.is(before.attributes.id, pod);
  t.deepEqual(before.linux.containers.map((c) => c.attributes.id), [ctr]);
  t.true(n(before.linux.memory.workingSetBytes) > 0);
  t.true(n(before.linux.process?.processCount) >= 1);
  t.is(before.linux.network?.defaultInterface?.name, 'eth0');
  await runOk('busybox', ['ping', '-c3', '-i', '0.2', '-s', '1000', '-W2', ip], { timeoutMs: 10_000 });
  const after = (await h.crictlJson<{ stats: PodStats[] }>(['statsp', '-o', 'json', '--id', pod])).stats[0]!;
  t.true(n(after.linux.network?.defaultInterface?.rxBytes) >= n(before.linux.network?.defaultInterface?.rxBytes) + 3000, 'rx grows by the pings');
  t.true(n(after.linux.network?.defaultInterface?.txBytes) >= n(before.linux.network?.defaultInterface?.txBytes) + 3000, 'tx grows by the replies');

  // The same numbers as cAdvisor-style metrics.
  const descs = await h.crictlJson<{ descriptors: Array<{ name: string; labelKeys: string[] }> }>(['metricdescs', '-o', 'json']);
  const names = new Set(descs.descriptors.map((d) => d.name));
  for (const m of ['container_cpu_usage_seconds_total', 'container_memory_working_set_bytes', 'container_network_receive_bytes_total', 'container_fs_usage_bytes']) t.true(names.has(m), m);
  const metrics = await h.crictlJson<{ podMetrics: Array<{ podSandboxId: string; metrics: Array<{ name: string; labelValues: string[]; value: Val }>; containerMetrics: Array<{ containerId: string; metrics: Array<{ name: string; value: Val }> }> }> }>(['metricsp', '-o', 'json']);
  const pm = metrics.podMetrics.find((p) => p.podSandboxId === pod)!;
  t.truthy(pm);
  const rx = pm.metrics.find((m) => m.name === 'container_network_receive_bytes_total' && m.labelValues.includes('eth0'));
  t.true(n(rx?.value) >= n(after.linux.network?.defaultInterface?.rxBytes));
  const cm = pm.containerMetrics.find((c) => c.containerId === ctr)!;
  t.true(n(cm.metrics.find((m) => m.name === 'container_memory_working_set_bytes')?.value) > 0);

  await h.crictlOk(['stop', '-t', '1', ctr]);
  await h.crictlOk(['rm', ctr]);
  await h.crictlOk(['stopp', pod]);
  await h.crictlOk(['rmp', pod]);
});

test.serial('crictl events: create, start, stop, delete of a container in order, with statuses', async (t) => {
  const { pod, cfgPath } = await runPod();
  const child = spawn(tool('crictl'), ['--config', h.crictlConfig, 'events', '-o', 'json'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
  t.teardown(() => { child.kill('SIGKILL'); });
  await sleep(500);
  const ctr = await runContainer(pod, cfgPath, 'ev', 'sleep 3600');
  await h.crictlOk(['stop', '-t', '1', ctr]);
  await h.crictlOk(['rm', ctr]);
  const deadline = Date.now() + 10_000;
  let events: Array<{ containerId: string; containerEventType: string; podSandboxStatus?: { id: string }; containersStatuses?: Array<{ id: string; state: string }> }> = [];
  while (Date.now() < deadline) {
    events = splitJson(out).filter((e) => (e as { containerId?: string }).containerId === ctr) as typeof events;
    if (events.length >= 4) break;
    await sleep(100);
  }
  t.deepEqual(events.map((e) => e.containerEventType), ['CONTAINER_CREATED_EVENT', 'CONTAINER_STARTED_EVENT', 'CONTAINER_STOPPED_EVENT', 'CONTAINER_DELETED_EVENT']);
  t.is(events[0]?.podSandboxStatus?.id, pod);
  t.is(events[1]?.containersStatuses?.find((c) => c.id === ctr)?.state, 'CONTAINER_RUNNING');
  await h.crictlOk(['stopp', pod]);
  await h.crictlOk(['rmp', pod]);
});

/** crictl prints one indented JSON document per event; split on top-level braces. */
function splitJson(text: string): unknown[] {
  const docs: unknown[] = [];
  let depth = 0;
  let start = -1;
  let inStr = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (inStr) {
      if (c === '\\') i++;
      else if (c === '"') inStr = false;
      continue;
    }
    if (c === '"') inStr = true;
    else if (c === '{') {
      if (depth++ === 0) start = i;
    } else if (c === '}' && --depth === 0) {
      try {
        docs.push(JSON.parse(text.slice(start, i + 1)));
      } catch { /* partial */ }
    }
  }
  return docs;
}
