/**
 * The kubelet's Evented PLEG (feature gates EventedPLEG and PLEGOnDemandRelist, alpha). In v1.37
 * it watches corral's GetContainerEvents stream and asks for an immediate relist of a pod whose
 * container stopped (the generic PLEG still owns the pod cache). Every event must carry its
 * pod's sandbox status with metadata, the stream must not break, and restarts must be seen.
 */
import test from 'ava';
import { startHarness, type Harness } from '../harness/index.js';
import { kubeletAvailable, startKubelet, type Kubelet } from '../harness/kubelet.js';
import { BUSYBOX, ctrStatus, ready } from './standalone.js';

let h: Harness;
let k: Kubelet;
const skip = !kubeletAvailable();

test.before(async () => {
  if (skip) return;
  h = await startHarness();
  k = await startKubelet(h, { config: { featureGates: { PodAndContainerStatsFromCRI: true, EventedPLEG: true, PLEGOnDemandRelist: true } } });
});

test.after.always(async () => {
  if (k) {
    k.removePod('steady');
    k.removePod('restarts');
    const deadline = Date.now() + 60_000;
    while (Date.now() < deadline && ((await k.pod('steady').catch(() => undefined)) || (await k.pod('restarts').catch(() => undefined)))) await new Promise((r) => setTimeout(r, 500));
    await k.stop();
  }
  await h?.stop();
});

test.serial('pods start, turn Ready and restart under the Evented PLEG', async (t) => {
  if (skip) return t.pass('no kubelet built');
  k.writePod({ metadata: { name: 'steady', namespace: 'default' }, spec: { terminationGracePeriodSeconds: 1, containers: [{ name: 'main', image: BUSYBOX, command: ['sleep', '3600'] }] } });
  k.writePod({ metadata: { name: 'restarts', namespace: 'default' }, spec: { containers: [{ name: 'main', image: BUSYBOX, command: ['sh', '-c', 'sleep 1; exit 2'] }] } });
  await k.waitPod('steady', ready, 120_000, 'Ready');
  const p = await k.waitPod('restarts', (x) => (ctrStatus(x, 'main')?.restartCount ?? 0) >= 2, 120_000, 'two restarts');
  t.is(ctrStatus(p, 'main').lastState.terminated.exitCode, 2);
  const metrics = await k.getText('/metrics');
  const ok = Number(/^kubelet_evented_pleg_connection_success_count (\S+)$/m.exec(metrics)?.[1] ?? 0);
  const errors = Number(/^kubelet_evented_pleg_connection_error_count (\S+)$/m.exec(metrics)?.[1] ?? 0);
  t.true(ok >= 1, 'the kubelet connected to GetContainerEvents');
  t.is(errors, 0, 'the event stream never broke');
  // Every event carried its pod (sandbox status with metadata) and was timed by the kubelet.
  const events = Number(/^kubelet_evented_pleg_connection_latency_seconds_count (\S+)$/m.exec(metrics)?.[1] ?? 0);
  t.true(events >= 4, `events received: ${events}`);
  t.notRegex(k.log(), /nil PodSandboxStatus|disabling container-termination fast path/);
});
