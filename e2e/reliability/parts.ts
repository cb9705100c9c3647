/**
 * The parts around the daemon dying: conmon SIGKILLed under a running container (its exit
 * must still be reported, and a StopContainer must not hang), and the OCI runtime SIGKILLed
 * in the middle of `create` at different moments (the create fails and leaves no process,
 * cgroup, mount or state; the kubelet's retry with the same name then works).
 *
 * The runtime is runc behind a wrapper handler ("dying") that kills runc and itself a given
 * number of milliseconds into every other create.
 */
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Harness, HarnessOptions } from '../harness/index.js';
import { conmonPids } from '../bench/lib.js';
import { CriClient, codeOf, containerConfig, detailsOf, IDLE_COMMAND, outcome, pullBusybox, reliabilityPod, removeEverything, sleep, type Outcome } from './lib.js';

export interface PartsCtx { dir: string; delayFile: string }

export function partsSetup(): { options: HarnessOptions; ctx: PartsCtx; teardown: () => Promise<void> } {
  const dir = mkdtempSync(join(tmpdir(), 'corral-reliability-'));
  const delayFile = join(dir, 'delay');
  const script = join(dir, 'dying-runc');
  writeFileSync(delayFile, '0.05');
  writeFileSync(script, `#!/bin/sh
# runc, SIGKILLed (with this wrapper) $(cat delay) s into every other create
for a in "$@"; do
  if [ "$a" = create ]; then
    n=$(( $(cat ${dir}/creates 2>/dev/null || echo 0) + 1 )); echo $n > ${dir}/creates
    if [ $((n % 2)) = 1 ]; then
      /usr/sbin/runc "$@" & pid=$!
      sleep $(cat ${delayFile}); kill -9 $pid; kill -9 $$
    fi
    break
  fi
done
exec /usr/sbin/runc "$@"
`);
  chmodSync(script, 0o755);
  return {
    ctx: { dir, delayFile },
    options: { logLevel: 'info', config: { runtimes: { dying: { path: script, root: join(dir, 'runc-root') } } } },
    teardown: async () => rmSync(dir, { recursive: true, force: true }),
  };
}

export async function parts(h: Harness, ctx: PartsCtx): Promise<Outcome[]> {
  const cri = new CriClient(h.socket);
  const outs: Outcome[] = [];
  try {
    const image = await pullBusybox(h, cri);

    // 1. conmon killed: the exit is reported without anyone asking, and a stop does not hang.
    const a = outcome('conmon SIGKILLed under a running container');
    outs.push(a);
    const podCfg = reliabilityPod(h, 'parts-conmon', 'parts-conmon-uid');
    const pod = (await cri.call<{ pod_sandbox_id: string }>('RunPodSandbox', { config: podCfg })).pod_sandbox_id;
    const ids: string[] = [];
    for (const n of ['watched', 'stopped']) {
      const id = (await cri.call<{ container_id: string }>('CreateContainer', { pod_sandbox_id: pod, config: containerConfig(n, image, IDLE_COMMAND), sandbox_config: podCfg })).container_id;
      await cri.call('StartContainer', { container_id: id });
      ids.push(id);
    }
    for (const id of ids) for (const pid of conmonPids(id)) process.kill(pid, 'SIGKILL');
    const t0 = Date.now();
    const stopErr = await cri.call('StopContainer', { container_id: ids[1], timeout: 2 }, 60_000).then(() => undefined, (e) => e);
    const stopMs = Date.now() - t0;
    if (stopErr) a.problems.push(`StopContainer after its conmon died: ${codeOf(stopErr)} ${detailsOf(stopErr)}`);
    let st: { state: string; exit_code: number; message: string } | undefined;
    const end = Date.now() + 20_000;
    while (Date.now() < end) {
      st = (await cri.call<{ status: { state: string; exit_code: number; message: string } }>('ContainerStatus', { container_id: ids[0] })).status;
      if (st.state === 'CONTAINER_EXITED') break;
      await sleep(200);
    }
    const reportedMs = Date.now() - t0;
    if (st?.state !== 'CONTAINER_EXITED') a.problems.push(`a container whose conmon died is still ${st?.state} after 20 s`);
    a.figures = { 'exit reported after ms': reportedMs, 'exit code': st?.exit_code, message: st?.message, 'StopContainer took ms': stopMs };

    // 2. The runtime killed mid-create, at several moments; each retry (the next create) works.
    const b = outcome('OCI runtime SIGKILLed during create');
    outs.push(b);
    const pod2Cfg = reliabilityPod(h, 'parts-dying', 'parts-dying-uid');
    const pod2 = (await cri.call<{ pod_sandbox_id: string }>('RunPodSandbox', { config: pod2Cfg, runtime_handler: 'dying' })).pod_sandbox_id;
    const results: string[] = [];
    for (const [i, delay] of ['0.005', '0.01', '0.02', '0.03', '0.05', '0.08'].entries()) {
      writeFileSync(ctx.delayFile, delay);
      const cfg = containerConfig(`c${i}`, image, IDLE_COMMAND);
      const first = await cri.call('CreateContainer', { pod_sandbox_id: pod2, config: cfg, sandbox_config: pod2Cfg }).then(() => 'created', (e) => `${codeOf(e)}`);
      results.push(`${delay}s: ${first}`);
      // A create killed after the runtime finished is still failed: the runtime exited 137.
      if (first === 'created') b.problems.push(`the create killed after ${delay} s succeeded`);
      const retry = await cri.call<{ container_id: string }>('CreateContainer', { pod_sandbox_id: pod2, config: cfg, sandbox_config: pod2Cfg })
        .catch((e) => { b.problems.push(`the retry after a create killed at ${delay} s: ${codeOf(e)} ${detailsOf(e)}`); return undefined; });
      if (!retry) continue;
      await cri.call('StartContainer', { container_id: retry.container_id }).catch((e) => b.problems.push(`start after the retry: ${codeOf(e)} ${detailsOf(e)}`));
      await cri.call('StopContainer', { container_id: retry.container_id, timeout: 5 });
      await cri.call('RemoveContainer', { container_id: retry.container_id });
    }
    b.figures = { 'killed creates': results.join(', ') };
    const errs = await removeEverything(cri);
    (outs[1] ?? outs[0]!).problems.push(...errs);
  } finally {
    cri.close();
  }
  return outs;
}
