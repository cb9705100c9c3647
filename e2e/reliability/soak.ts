/**
 * Soak: `cycles` pod+container cycles (run pod, create, start, wait for the exit, remove the
 * container, stop and remove the pod) from `clients` clients at once, through the socket.
 *
 * Passes when no call failed, nothing is listed or left in corral's dirs afterwards (the
 * harness' leak check then covers mounts, netns, cgroups, processes and iptables), and the
 * floor of the daemon's RSS and open fds over the last 30% of the cycles is within 10% of their
 * floor after the first 100 (a leak raises the floor; the first cycles warm caches and code up).
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
    // The first ~100 cycles grow the heap and warm code and worker threads up: the floors are compared from there.
    const step = Math.max(1, Math.round(opts.cycles / 10));
    const warm = Math.min(opts.cycles, Math.max(step, Math.ceil(100 / step) * step));
    let next = 0;
    let done = 0;
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
    // RSS saws up and down with the collector: a leak shows as a rising floor. Compared: the
    // lowest sample between the warm-up and 40% of the cycles, and the lowest of the last 30%.
    const early = curve.filter((c) => c.cycles >= warm && c.cycles <= opts.cycles * 0.4);
    const late = curve.filter((c) => c.cycles >= opts.cycles * 0.7);
    const floor = (xs: typeof curve, k: 'rssMiB' | 'fds') => Math.min(...xs.map((c) => c[k]));
    const rss = early.length && late.length ? { early: floor(early, 'rssMiB'), late: floor(late, 'rssMiB') } : undefined;
    const fds = early.length && late.length ? { early: floor(early, 'fds'), late: floor(late, 'fds') } : undefined;
    if (rss && rss.late > rss.early * (1 + GROWTH)) {
      out.problems.push(`daemon RSS floor grew ${rss.early} -> ${rss.late} MiB from cycle ${warm} to the end (more than ${GROWTH * 100}%)`);
    }
    // fds: a handful either way is the gRPC connection and idle worker threads coming and going.
    if (fds && fds.late > fds.early * (1 + GROWTH) + 2) out.problems.push(`daemon fd floor grew ${fds.early} -> ${fds.late} from cycle ${warm} to the end`);
    out.figures = {
      cycles: done,
      errors: errors.length,
      seconds: round(seconds, 1),
      'cycle p50 ms': round(p50(times), 0),
      'cycle p99 ms': round(p99(times), 0),
      'rss floor MiB (after warm-up -> last 30%)': rss ? `${rss.early} -> ${rss.late}` : 'n/a',
      'fd floor (after warm-up -> last 30%)': fds ? `${fds.early} -> ${fds.late}` : 'n/a',
      'rss curve (cycles:MiB)': curve.map((c) => `${c.cycles}:${c.rssMiB}`).join(' '),
      leftovers: pods.length + containers.length + files.length,
    };
  } finally {
    cri.close();
  }
  return out;
}
