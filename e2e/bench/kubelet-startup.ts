/**
 * Pod startup through a real kubelet on corral: N static pods (one busybox container each,
 * image already present) written at once; for each pod, the time from its manifest landing in
 * the static pod dir to the kubelet reporting it Ready (read-only API polled every 50 ms), and
 * the kubelet's own pod start SLI histogram (kubelet_pod_start_sli_duration_seconds, which
 * leaves out image pulls). Prints p50/p99 of both.
 *
 *   node dist/e2e/harness/with-registry.js -- node dist/e2e/bench/kubelet-startup.js [--pods 20] [--runtime crun|runc] [--idle-seconds 20]
 *
 * Then, with the pods running and nothing changing, the CPU corral and the kubelet use over
 * --idle-seconds: the cost of the kubelet's generic PLEG relisting every second.
 *
 * A side-by-side with containerd belongs to the comparison bench; this gives the figure.
 */
import { readFileSync } from 'node:fs';
import { startHarness } from '../harness/index.js';
import { startKubelet } from '../harness/kubelet.js';
import { p50, p99, round, sleep } from './lib.js';

const BUSYBOX = 'registry.k8s.io/e2e-test-images/busybox:1.29-2';

/** utime + stime of a process, in seconds (USER_HZ = 100). */
function cpuSeconds(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(f[11]) + Number(f[12])) / 100;
}

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] ?? def : def;
}

/** Mean and the bucket that holds the p-th percentile of a Prometheus histogram, in seconds. */
function histogram(text: string, name: string): { count: number; mean: number; p50le: string; p99le: string } | undefined {
  const buckets = [...text.matchAll(new RegExp(`^${name}_bucket\\{[^}]*le="([^"]+)"\\} (\\S+)$`, 'gm'))].map((m) => ({ le: m[1]!, n: Number(m[2]) }));
  const sum = Number(new RegExp(`^${name}_sum(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  const count = Number(new RegExp(`^${name}_count(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
  if (!buckets.length || !count) return undefined;
  const at = (p: number) => buckets.find((b) => b.n >= count * p)?.le ?? '+Inf';
  return { count, mean: sum / count, p50le: at(0.5), p99le: at(0.99) };
}

async function main(): Promise<void> {
  const n = Number(arg('pods', '20'));
  const runtime = arg('runtime', 'crun') as 'crun' | 'runc';
  const h = await startHarness({ runtime, logLevel: 'info' });
  const k = await startKubelet(h);
  try {
    await h.crictlOk(['pull', BUSYBOX], { timeoutMs: 120_000 });
    const written = new Map<string, number>();
    const ready = new Map<string, number>();
    for (let i = 0; i < n; i++) {
      const name = `start${i}`;
      k.writePod({ metadata: { name, namespace: 'default' }, spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'main', image: BUSYBOX, imagePullPolicy: 'IfNotPresent', command: ['sleep', '3600'] }] } });
      written.set(`${name}-${k.nodeName}`, performance.now());
    }
    const deadline = performance.now() + 300_000;
    while (ready.size < n && performance.now() < deadline) {
      const pods = (await k.get<{ items: any[] }>('/pods')).items ?? [];
      const now = performance.now();
      for (const p of pods) {
        const name = p.metadata.name as string;
        if (written.has(name) && !ready.has(name) && (p.status?.conditions ?? []).some((c: any) => c.type === 'Ready' && c.status === 'True')) ready.set(name, now - written.get(name)!);
      }
      await sleep(50);
    }
    const times = [...ready.values()];
    const sli = histogram(await k.getText('/metrics'), 'kubelet_pod_start_sli_duration_seconds');
    console.log(`kubelet pod startup on corral (${runtime}), ${n} static pods written at once, image present:`);
    console.log(`  manifest -> Ready: ${ready.size}/${n} pods, p50 ${round(p50(times), 0)} ms, p99 ${round(p99(times), 0)} ms, max ${round(Math.max(...times), 0)} ms`);
    if (sli) console.log(`  kubelet_pod_start_sli_duration_seconds: ${sli.count} pods, mean ${round(sli.mean * 1000, 0)} ms, p50 <= ${sli.p50le} s, p99 <= ${sli.p99le} s`);
    // The generic PLEG relists every second: what that costs corral with n pods and nothing changing.
    const idle = Number(arg('idle-seconds', '20'));
    if (idle > 0 && h.daemonPid && k.pid) {
      const c0 = cpuSeconds(h.daemonPid);
      const k0 = cpuSeconds(k.pid);
      const t0 = performance.now();
      await sleep(idle * 1000);
      const wall = (performance.now() - t0) / 1000;
      const daemon = (cpuSeconds(h.daemonPid) - c0) / wall;
      const kubelet = (cpuSeconds(k.pid) - k0) / wall;
      console.log(`  idle with ${n} pods for ${idle} s: corral ${round(daemon * 100, 1)}% of a core, the kubelet ${round(kubelet * 100, 1)}% (relist every 1 s, probes none)`);
    }
    if (ready.size < n) process.exitCode = 1;
  } finally {
    for (let i = 0; i < n; i++) k.removePod(`start${i}`);
    const end = Date.now() + 120_000;
    while (Date.now() < end && ((await h.crictlJson<any>(['pods', '-o', 'json'])).items ?? []).some((p: any) => p.state === 'SANDBOX_READY')) await sleep(500);
    await k.stop();
    await h.stop();
  }
}

main().catch((e) => {
  console.error(e);
  process.exitCode = 1;
});
