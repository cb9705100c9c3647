/**
 * The node's pod CIDR through UpdateRuntimeConfig, on corral's default network (no CNI config
 * in the conf dir), with pods already on the node: a pod started before the kubelet set a range,
 * pods started under a first and then a changed range. Each keeps its address and bridge; new
 * pods get the new range; a value that is not a CIDR is InvalidArgument and changes nothing;
 * a superseded bridge goes away with its last pod.
 */
import test from 'ava';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { run, sleep, startHarness, type Harness } from '../harness/index.js';
import { criCall, GRPC_STATUS } from '../harness/cri.js';
import { kubeletAvailable, startKubelet, type Kubelet } from '../harness/kubelet.js';
import { BUSYBOX, ready } from './standalone.js';

const CIDR_A = '10.197.1.0/24';
const CIDR_B = '10.197.2.0/24';

let h: Harness;
let k: Kubelet | undefined;
const emptyConfDir = mkdtempSync(join(tmpdir(), 'corral-e2e-nocni-'));
const skip = !kubeletAvailable();

async function links(): Promise<string[]> {
  const r = await run('ip', ['-o', 'link', 'show'], { timeoutMs: 10_000 });
  return [...r.stdout.matchAll(/^\d+: ([^:@]+)/gm)].map((m) => m[1]!);
}
const inRange = (ip: string, cidr: string) => ip.startsWith(cidr.split('.').slice(0, 3).join('.') + '.');

test.before(async () => {
  if (skip) return;
  h = await startHarness({ config: { cni: { conf_dir: emptyConfDir } } });
});

test.after.always(async () => {
  await k?.stop().catch(() => {});
  await h?.crictl(['rmp', '-a', '-f']).catch(() => {});
  // The bridge of the range in use stays after its pods, as the bridge plugin leaves it.
  for (const l of await links().catch(() => [])) if (/^corral[0-9a-f]{8}$|^corral0$/.test(l)) await run('ip', ['link', 'del', l]);
  await h?.stop();
  rmSync(emptyConfDir, { recursive: true, force: true });
});

const podSpec = (name: string) => ({
  metadata: { name, namespace: 'default' },
  spec: { containers: [{ name: 'main', image: BUSYBOX, command: ['sleep', '3600'] }], terminationGracePeriodSeconds: 1 },
});

test.serial('a pod CIDR, first and then changed, with pods on the node', async (t) => {
  if (skip) return t.pass('no kubelet built');
  // A pod from before any pod CIDR: corral's default range on corral0.
  const cfg = h.writeJson('early.json', {
    metadata: { name: 'early', namespace: 'e2e', uid: 'early-uid', attempt: 0 },
    log_directory: join(h.dir, 'logs', 'early'),
    linux: {},
  });
  const early = (await h.crictlOk(['runp', cfg])).trim();
  const earlyIp: string = (await h.crictlJson<any>(['inspectp', early])).status.network.ip;
  t.truthy(earlyIp);
  t.true((await links()).includes('corral0'));

  // Not a CIDR: refused, and nothing changes.
  const err = await criCall(h.socket, 'RuntimeService', 'UpdateRuntimeConfig', { runtime_config: { network_config: { pod_cidr: '10.1.2.3/99' } } }).catch((e) => e);
  t.is(err.code, GRPC_STATUS.INVALID_ARGUMENT, String(err));

  k = await startKubelet(h, { config: { podCIDR: CIDR_A } });
  k.writePod(podSpec('first'));
  const first = await k.waitPod('first', ready, 120_000, 'Ready');
  t.true(inRange(first.status.podIP, CIDR_A), first.status.podIP);

  // The node's range changes (a node re-registered): the kubelet restarts with another one,
  // the pods already there stay as they are.
  await k.stopProcess();
  k.writeOwnConfig({ podCIDR: CIDR_B });
  await k.start();
  k.writePod(podSpec('second'));
  const second = await k.waitPod('second', ready, 120_000, 'Ready');
  t.true(inRange(second.status.podIP, CIDR_B), second.status.podIP);
  const firstAgain = await k.waitPod('first', ready, 30_000, 'still Ready');
  t.is(firstAgain.status.podIP, first.status.podIP);
  t.is((await h.crictlJson<any>(['inspectp', early])).status.network.ip, earlyIp);

  // Every pod still answers on its address from the host (three bridges, three ranges).
  for (const ip of [earlyIp, first.status.podIP, second.status.podIP]) {
    const r = await run('busybox', ['ping', '-c', '1', '-W', '2', ip], { timeoutMs: 10_000 });
    t.is(r.code, 0, `ping ${ip}: ${r.stdout}${r.stderr}`);
  }

  // The superseded bridges go with their last pods; the current one stays.
  const bridges = (await links()).filter((l) => /^corral/.test(l));
  t.is(bridges.length, 3, bridges.join(' '));
  await h.crictlOk(['stopp', early]);
  await h.crictlOk(['rmp', early]);
  k.removePod('first');
  const deadline = Date.now() + 60_000;
  let left = bridges;
  while (Date.now() < deadline) {
    left = (await links()).filter((l) => /^corral/.test(l));
    if (left.length === 1) break;
    await sleep(500);
  }
  t.is(left.length, 1, left.join(' '));
  t.false(left.includes('corral0'));
});
