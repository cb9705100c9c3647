/**
 * Soak: `cycles` pod+container cycles (run pod, create, start, wait for the exit, remove the
 * container, stop and remove the pod) from `clients` clients at once, through the socket.
 *
 * Passes when no call failed, nothing is listed or left in corral's dirs afterwards (the
 * harness' leak check then covers mounts, netns, cgroups, processes and iptables), and the
 * daemon's RSS and open fds at the end are within 10% of where they were after the first 100
 * cycles (a leak grows with the count; the first cycles warm caches and code up).
 */
import type { Harness } from '../harness/index.js';
import { CriClient, footprint, settledLeftovers, listed, outcome, p50, p99, podCycle, pullBusybox, round, type Outcome } from './lib.js';

export interface SoakOptions { cycles: number; clients: number }

/** Growth allowed between the sample after the warm-up and the end. */
const GROWTH = 0.10;

export async function soak(h: Harness, opts: SoakOptions): Promise<Outcome> {
  const out = outcome(`soak: ${opts.cycles} pod+container cycles, ${opts.clients} clients`);
  const cri = new CriClient(h.socket);
  try {
    const image = await pullBusybox(h, cri);
    const times: number[] = [];
    const errors: string[] = [];
    const curve: Array<{ cycles: number; rssMiB: number; fds: number }> = [];
    // The first ~100 cycles grow the heap and warm code and worker threads up: the baseline is taken after them.
    const step = Math.max(1, Math.round(opts.cycles / 10));
    const warm = Math.min(opts.cycles, Math.max(step, Math.ceil(100 / step) * step));
    let next = 0;
    let done = 0;
    let baseline: { rssMiB: number; fds: number } | undefined;
    const t0 = Date.now();
    const client = async (k: number) => {
      for (;;) {
        const i = next++;
        if (i >= opts.cycles) return;
        try {
          times.push(await podCycle(h, cri, image, `soak-${k}-${i}`));
        } catch (e) {
          errors.push(`cycle ${i}: ${(e as Error).message.split('\n')[0]}`);
          if (errors.length >= 10) { next = opts.cycles; return; }
        }
        done++;
        if (done % step === 0) {
          const f = footprint(h.daemonPid);
          curve.push({ cycles: done, rssMiB: round(f.rssMiB, 1), fds: f.fds });
          if (done === warm || (!baseline && done >= warm)) baseline = f;
        }
      }
    };
    await Promise.all(Array.from({ length: opts.clients }, (_, k) => client(k)));
    const seconds = (Date.now() - t0) / 1000;
    // Settle: exits and CNI DELs of the last cycles are done when the calls return; give the
    // collector of idle worker threads a moment before the last sample.
    await new Promise((r) => setTimeout(r, 2000));
    const end = footprint(h.daemonPid);
    curve.push({ cycles: done, rssMiB: round(end.rssMiB, 1), fds: end.fds });

    out.problems.push(...errors);
    const { pods, containers } = await listed(cri);
    if (pods.length) out.problems.push(`${pods.length} pods still listed`);
    if (containers.length) out.problems.push(`${containers.length} containers still listed`);
    const files = await settledLeftovers(h);
    if (files.length) out.problems.push(`left in corral's dirs: ${files.slice(0, 10).join(' ')}${files.length > 10 ? ` (+${files.length - 10})` : ''}`);
    if (baseline) {
      if (end.rssMiB > baseline.rssMiB * (1 + GROWTH)) {
        out.problems.push(`daemon RSS grew ${round(baseline.rssMiB, 1)} -> ${round(end.rssMiB, 1)} MiB after cycle ${warm} (more than ${GROWTH * 100}%)`);
      }
      // fds: a handful either way is the gRPC connection and idle worker threads coming and going.
      if (end.fds > baseline.fds * (1 + GROWTH) + 2) out.problems.push(`daemon fds grew ${baseline.fds} -> ${end.fds} after cycle ${warm}`);
    }
    out.figures = {
      cycles: done,
      errors: errors.length,
      seconds: round(seconds, 1),
      'cycle p50 ms': round(p50(times), 0),
      'cycle p99 ms': round(p99(times), 0),
      'rss MiB (after warm-up -> end)': baseline ? `${round(baseline.rssMiB, 1)} -> ${round(end.rssMiB, 1)}` : 'n/a',
      'fds (after warm-up -> end)': baseline ? `${baseline.fds} -> ${end.fds}` : 'n/a',
      'rss curve (cycles:MiB)': curve.map((c) => `${c.cycles}:${c.rssMiB}`).join(' '),
      leftovers: pods.length + containers.length + files.length,
    };
  } finally {
    cri.close();
  }
  return out;
}
