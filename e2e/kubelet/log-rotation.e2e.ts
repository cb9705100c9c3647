/**
 * The kubelet rotates container logs itself (containerLogMaxSize / containerLogMaxFiles): it
 * renames the file and calls ReopenContainerLog, and corral's monitor must continue in a new
 * file without losing or repeating a line. A container writes numbered lines at a steady pace
 * while a kubelet with a small size limit rotates its log several times; every line must be
 * found exactly once across the current, rotated and compressed files.
 */
import test from 'ava';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { gunzipSync } from 'node:zlib';
import { sleep, startHarness, type Harness } from '../harness/index.js';
import { kubeletAvailable, startKubelet, type Kubelet } from '../harness/kubelet.js';
import { BUSYBOX, ctrStatus } from './standalone.js';

let h: Harness;
let k: Kubelet;
const skip = !kubeletAvailable();
const LINES = 30_000;

test.before(async () => {
  if (skip) return;
  h = await startHarness();
  k = await startKubelet(h, { config: { containerLogMaxSize: '64Ki', containerLogMaxFiles: 100, containerLogMonitorInterval: '3s' } });
});

test.after.always(async () => {
  if (k) {
    k.removePod('chatty');
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && (await k.pod('chatty').catch(() => undefined))) await sleep(500);
    await k.stop();
  }
  await h?.stop();
});

test.serial('rotation by the kubelet loses and repeats no line', async (t) => {
  if (skip) return t.pass('no kubelet built');
  // 100 lines (~6 KiB) every 50 ms: the log passes 64 KiB between two of the kubelet's checks.
  const script = `i=0; while [ $i -lt ${LINES} ]; do j=0; while [ $j -lt 100 ]; do i=$((i+1)); j=$((j+1)); echo "line $i ................................"; done; usleep 50000; done; echo done; exec sleep 3600`;
  k.writePod({ metadata: { name: 'chatty', namespace: 'default' }, spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'main', image: BUSYBOX, command: ['sh', '-c', script] }] } });
  const pod = await k.waitPod('chatty', (p) => ctrStatus(p, 'main')?.state?.running, 120_000, 'running');
  const dir = join(k.podLogsDir, `default_chatty-${k.nodeName}_${pod.metadata.uid}`, 'main');

  const read = (): { lines: string[]; files: string[] } => {
    // 0.log is current; rotated ones are 0.log.<timestamp>[.gz], oldest first by name.
    const files = readdirSync(dir).filter((f) => f.startsWith('0.log'));
    const rotated = files.filter((f) => f !== '0.log').sort();
    const text = [...rotated, '0.log'].map((f) => {
      const b = readFileSync(join(dir, f));
      return (f.endsWith('.gz') ? gunzipSync(b) : b).toString('utf8');
    }).join('');
    return { lines: text.split('\n').filter(Boolean), files };
  };
  let got = read();
  const deadline = Date.now() + 180_000;
  while (Date.now() < deadline && !got.lines.some((l) => / done$/.test(l))) {
    await sleep(1000);
    got = read();
  }
  const numbers = got.lines.map((l) => /^\S+ stdout [FP] line (\d+) /.exec(l)?.[1]).filter((x): x is string => !!x).map(Number);
  t.true(got.files.length >= 3, `rotated at least twice: ${got.files.join(' ')}`);
  t.is(numbers.length, LINES, 'every line once');
  const gaps = numbers.map((n, i) => (n === i + 1 ? undefined : `${i + 1}:${n}`)).filter(Boolean);
  t.deepEqual(gaps.slice(0, 5), [], 'in order, no gap, no repeat');
  t.true(got.lines.some((l) => / done$/.test(l)));
});
