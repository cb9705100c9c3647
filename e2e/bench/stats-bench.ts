/**
 * Stats benchmark (issue 8): ListContainerStats and ListPodSandboxStats with N running
 * containers (default 100, in pods of 10), and Version latency while stats calls run back to
 * back, against the same daemon idle. Talks gRPC directly: crictl's own start-up would be
 * most of what it measured.
 *
 *   node dist/e2e/bench/stats-bench.js [--containers 100] [--rounds 30] [--json FILE]
 */
import * as grpc from '@grpc/grpc-js';
import { writeFileSync } from 'node:fs';
import { loadCri } from '../../server/grpc.js';
import { startHarness } from '../harness/index.js';

const IMAGE = 'registry.k8s.io/e2e-test-images/busybox:1.29-2';

function arg(name: string, def: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 && process.argv[i + 1] ? process.argv[i + 1]! : def;
}

type Client = grpc.Client & Record<string, (req: unknown, opts: grpc.CallOptions, cb: (err: grpc.ServiceError | null, res: any) => void) => void>;

function call<T = any>(c: Client, method: string, req: unknown, timeoutMs = 120_000): Promise<T> {
  return new Promise((resolve, reject) => {
    c[method]!(req, { deadline: Date.now() + timeoutMs }, (err, res) => (err ? reject(err) : resolve(res as T)));
  });
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return Math.round(s[Math.min(s.length - 1, Math.floor((p / 100) * s.length))]! * 10) / 10;
}

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

async function main(): Promise<void> {
  const n = Number(arg('containers', '100'));
  const rounds = Number(arg('rounds', '30'));
  const h = await startHarness({ logLevel: 'warn' });
  const { RuntimeService } = loadCri();
  const Ctor = grpc.makeGenericClientConstructor(RuntimeService, 'RuntimeService');
  const rs = new Ctor(h.endpoint, grpc.credentials.createInsecure()) as unknown as Client;
  const pods: string[] = [];
  const ctrs: string[] = [];
  try {
    await h.crictlOk(['pull', IMAGE], { timeoutMs: 120_000 });
    const started = performance.now();
    for (let p = 0; p * 10 < n; p++) {
      const config = {
        metadata: { name: `bench${p}`, namespace: 'bench', uid: `uid-bench-${p}-${Date.now()}`, attempt: 0 },
        linux: { security_context: { namespace_options: { network: 0, pid: 1, ipc: 0 } } },
      };
      const pod = (await call(rs, 'RunPodSandbox', { config })).pod_sandbox_id as string;
      pods.push(pod);
      const batch = Array.from({ length: Math.min(10, n - p * 10) }, (_, i) => i);
      await Promise.all(batch.map(async (i) => {
        const id = (await call(rs, 'CreateContainer', {
          pod_sandbox_id: pod,
          config: { metadata: { name: `c${i}` }, image: { image: IMAGE }, command: ['sleep', '3600'] },
          sandbox_config: config,
        })).container_id as string;
        await call(rs, 'StartContainer', { container_id: id });
        ctrs.push(id);
      }));
    }
    const setupMs = performance.now() - started;

    const listC: number[] = [];
    const listP: number[] = [];
    let count = 0;
    for (let i = 0; i < rounds; i++) {
      listC.push(await timed(async () => { count = (await call(rs, 'ListContainerStats', { filter: null })).stats.length; }));
      listP.push(await timed(() => call(rs, 'ListPodSandboxStats', { filter: null })));
    }

    const idle: number[] = [];
    for (let i = 0; i < 100; i++) idle.push(await timed(() => call(rs, 'Version', { version: '' })));
    // Four clients asking for stats back to back while Version is measured.
    let storm = true;
    const stormers = Array.from({ length: 4 }, async () => {
      while (storm) await call(rs, 'ListContainerStats', { filter: null });
    });
    const busy: number[] = [];
    for (let i = 0; i < 100; i++) busy.push(await timed(() => call(rs, 'Version', { version: '' })));
    storm = false;
    await Promise.all(stormers);

    const report = {
      containers: count,
      pods: pods.length,
      setup_seconds: Math.round(setupMs / 100) / 10,
      list_container_stats_ms: { p50: pct(listC, 50), p99: pct(listC, 99) },
      list_pod_sandbox_stats_ms: { p50: pct(listP, 50), p99: pct(listP, 99) },
      version_idle_ms: { p50: pct(idle, 50), p99: pct(idle, 99) },
      version_during_stats_storm_ms: { p50: pct(busy, 50), p99: pct(busy, 99) },
    };
    console.log(JSON.stringify(report, null, 2));
    const out = arg('json', '');
    if (out) writeFileSync(out, JSON.stringify(report, null, 2) + '\n');
  } finally {
    await Promise.all(ctrs.map((id) => call(rs, 'StopContainer', { container_id: id, timeout: 0 }).catch(() => undefined)));
    await Promise.all(ctrs.map((id) => call(rs, 'RemoveContainer', { container_id: id }).catch(() => undefined)));
    for (const p of pods) {
      await call(rs, 'StopPodSandbox', { pod_sandbox_id: p }).catch(() => undefined);
      await call(rs, 'RemovePodSandbox', { pod_sandbox_id: p }).catch(() => undefined);
    }
    rs.close();
    await h.stop();
  }
}

main().catch((err) => {
  console.error(err);
  process.exit(1);
});
