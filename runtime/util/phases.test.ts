import test from 'ava';
import { Metrics } from '../metrics.js';
import { PhaseTimer, reportPhases } from './phases.js';
import type { Logger } from './log.js';

function busy(ms: number): void {
  const end = performance.now() + ms;
  while (performance.now() < end) { /* spin: the timer reads the clock */ }
}

test('phases: each mark ends a phase; record, slowest and total agree', (t) => {
  let clock = 100;
  const timer = new PhaseTimer(() => clock);
  clock += 2;
  timer.mark('a');
  clock += 6;
  timer.mark('b');
  timer.add('cni:bridge', 4);
  const rec = timer.toRecord();
  t.deepEqual(Object.keys(rec), ['a', 'b', 'cni:bridge']);
  t.is(timer.slowest()!.name, 'b');
  t.is(timer.totalMs, 8);
  t.deepEqual(rec, { a: 2, b: 6, 'cni:bridge': 4 });
  t.is(rec['cni:bridge'], 4);
});

test('reportPhases observes every phase and logs a slow start naming the slowest phase', async (t) => {
  const metrics = new Metrics(false);
  const lines: string[] = [];
  const logger = { debug: (m: string) => lines.push(m) } as unknown as Logger;
  const timer = new PhaseTimer();
  busy(3);
  timer.mark('network');
  reportPhases(timer, { kind: 'sandbox', id: 'abc', name: 'web', metrics, logger, slowMs: 1 });
  reportPhases(timer, { kind: 'sandbox', id: 'abc', name: 'web', metrics, logger, slowMs: 60_000 });
  t.is(lines.length, 1);
  t.regex(lines[0]!, /slow sandbox start: abc \(web\).*slowest phase network/);
  const text = await metrics.registry.metrics();
  t.regex(text, /corral_start_phase_duration_seconds_count\{kind="sandbox",phase="network"\} 2/);
});
