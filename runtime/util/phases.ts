/**
 * Where the time of a start goes. Slow pod starts are the most common complaint about
 * runtimes, and a total alone does not say why: every sandbox and container start records
 * each phase (namespace pinning, each CNI plugin, rootfs mount, spec build, conmon +
 * runtime create, ...) into its status (verbose info), into a Prometheus histogram per
 * phase, and names the slowest phase in a debug line when the start was slow.
 */
import { performance } from 'node:perf_hooks';
import type { Metrics } from '../metrics.js';
import type { Logger } from './log.js';

export interface Phase {
  name: string;
  ms: number;
}

export class PhaseTimer {
  readonly phases: Phase[] = [];
  private readonly t0: number;
  private last: number;

  /** now: the clock in ms (tests pass their own). */
  constructor(private readonly now: () => number = () => performance.now()) {
    this.t0 = now();
    this.last = this.t0;
  }

  /** Ends the current phase under `name`. */
  mark(name: string): void {
    const now = this.now();
    this.phases.push({ name, ms: now - this.last });
    this.last = now;
  }

  /** Records phases measured elsewhere (e.g. each CNI plugin) inside the current one. */
  add(name: string, ms: number): void {
    this.phases.push({ name, ms });
  }

  get totalMs(): number {
    return this.last - this.t0;
  }

  slowest(): Phase | undefined {
    return this.phases.reduce<Phase | undefined>((a, p) => (!a || p.ms > a.ms ? p : a), undefined);
  }

  /** Phase -> ms with 0.1 ms resolution, as persisted and shown in verbose status. */
  toRecord(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const p of this.phases) out[p.name] = Math.round(((out[p.name] ?? 0) + p.ms) * 10) / 10;
    return out;
  }

  describe(): string {
    return this.phases.map((p) => `${p.name} ${p.ms.toFixed(1)}`).join(', ');
  }
}

export interface PhaseReport {
  kind: 'sandbox' | 'container';
  id: string;
  name: string;
  metrics?: Metrics;
  logger: Logger;
  /** Starts slower than this get a debug line naming the slowest phase. */
  slowMs: number;
}

/** Observes every phase into the histogram and logs a slow start. */
export function reportPhases(timer: PhaseTimer, r: PhaseReport): void {
  for (const p of timer.phases) r.metrics?.phaseDuration.observe({ kind: r.kind, phase: p.name }, p.ms / 1000);
  const total = timer.totalMs;
  if (total > r.slowMs) {
    const s = timer.slowest();
    r.logger.debug(
      `slow ${r.kind} start: ${r.id} (${r.name}) took ${total.toFixed(1)} ms, slowest phase ${s?.name ?? '?'} ${s?.ms.toFixed(1) ?? '?'} ms (${timer.describe()})`,
    );
  }
}
