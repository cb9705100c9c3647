/**
 * The Prometheus endpoint and "where the time goes" (issue 8): the endpoint answers with
 * corral's metrics and the process metrics, its counters move with RPCs, pod and container
 * starts are broken down by phase in verbose status and in the per-phase histogram.
 */
import test from 'ava';
import { randomInt } from 'node:crypto';
import { join } from 'node:path';
import { freePort, startHarness, type Harness } from '../harness/index.js';

let h: Harness;
let url = '';
const IMAGE = 'registry.k8s.io/e2e-test-images/busybox:1.29-2';

test.before(async () => {
  const port = await freePort();
  url = `http://127.0.0.1:${port}/metrics`;
  // Every start counts as slow, so the slow-start line is logged.
  h = await startHarness({ config: { metrics: { address: `127.0.0.1:${port}` }, slow_start_threshold_ms: 0 } });
  await h.crictlOk(['pull', IMAGE], { timeoutMs: 120_000 });
});

test.after.always(async () => {
  await h?.stop();
});

async function scrape(): Promise<string> {
  const res = await fetch(url);
  if (res.status !== 200) throw new Error(`GET ${url}: ${res.status}`);
  return res.text();
}

function value(text: string, series: string): number {
  const line = text.split('\n').find((l) => l.startsWith(series + ' '));
  return line ? Number(line.slice(series.length + 1)) : 0;
}

test.serial('the endpoint serves corral and process metrics; RPC counters move', async (t) => {
  const before = await scrape();
  t.regex(before, /^# TYPE corral_rpc_requests_total counter/m);
  t.regex(before, /^process_resident_memory_bytes /m);
  t.regex(before, /^corral_image_pull_bytes_total [1-9]/m, 'the pull in before() counted its bytes');
  const series = 'corral_rpc_requests_total{method="Version",code="OK"}';
  const n = value(before, series);
  await h.crictlOk(['version']);
  await h.crictlOk(['version']);
  t.true(value(await scrape(), series) >= n + 2);
  const missing = await fetch(url.replace('/metrics', '/nope'));
  t.is(missing.status, 404);
});

test.serial('pod and container starts are broken down by phase in verbose status and histograms', async (t) => {
  const name = `m${randomInt(1e6)}`;
  const podCfg = h.writeJson(`pod-${name}.json`, {
    metadata: { name, namespace: 'e2e', uid: `uid-${name}`, attempt: 0 },
    log_directory: join(h.dir, 'logs', name),
    linux: {},
  });
  const pod = (await h.crictlOk(['runp', podCfg])).trim();
  const ctrCfg = h.writeJson(`ctr-${name}.json`, { metadata: { name: 'c' }, image: { image: IMAGE }, command: ['sleep', '60'] });
  const ctr = (await h.crictlOk(['create', pod, ctrCfg, podCfg])).trim();
  await h.crictlOk(['start', ctr]);
  try {
    const podInfo = (await h.crictlJson<{ info: { startPhasesMs: Record<string, number> } }>(['inspectp', pod])).info;
    for (const p of ['namespaces', 'network', 'files', 'ready']) t.true(p in podInfo.startPhasesMs, `pod phase ${p}`);
    t.true(Object.keys(podInfo.startPhasesMs).some((k) => k.startsWith('cni:')), 'each CNI plugin is a phase');
    const ctrInfo = (await h.crictlJson<{ info: { startPhasesMs: Record<string, number> } }>(['inspect', ctr])).info;
    for (const p of ['rootfs', 'spec', 'conmon+create', 'start']) t.true(p in ctrInfo.startPhasesMs, `container phase ${p}`);
    const text = await scrape();
    t.regex(text, /^corral_start_phase_duration_seconds_count\{kind="sandbox",phase="network"\} [1-9]/m);
    t.regex(text, /^corral_start_phase_duration_seconds_count\{kind="container",phase="start"\} [1-9]/m);
    t.regex(text, /^corral_containers\{state="RUNNING"\} 1$/m);
    t.regex(h.daemonLog(), /slow sandbox start: [0-9a-f]{64} \(k8s_POD_[^)]*\) took .* slowest phase /);
  } finally {
    await h.crictlOk(['rm', '-f', ctr]);
    await h.crictlOk(['stopp', pod]);
    await h.crictlOk(['rmp', pod]);
  }
});
