/**
 * A full disk: the daemon's root dir on a small tmpfs, filled to the last byte while a pod runs.
 * A pull, a new pod and a new container must fail with ResourceExhausted naming the path and
 * leave nothing half-written; the running pod must stay listed and stoppable; once space
 * returns everything works again, and after a SIGKILL and restart the record logs load whole
 * (no torn record: the pod and its container are there, in the state they were left in).
 */
import { execFileSync } from 'node:child_process';
import { closeSync, openSync, rmSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Harness } from '../harness/index.js';
import { readMounts } from '../harness/leaks.js';
import { CriClient, codeOf, containerConfig, detailsOf, filesUnder, IDLE_COMMAND, listed, outcome, pullBusybox, reliabilityPod, removeEverything, type Outcome } from './lib.js';

const TMPFS_SIZE = '96m';

/** Fills the file system of `dir` with one file until ENOSPC; returns its path. */
function fill(dir: string): string {
  const path = join(dir, 'filler');
  const fd = openSync(path, 'w');
  try {
    for (const size of [1 << 20, 64 << 10, 4 << 10, 512, 1]) {
      const buf = Buffer.alloc(size);
      for (;;) {
        try {
          writeSync(fd, buf);
        } catch (e) {
          if ((e as NodeJS.ErrnoException).code === 'ENOSPC') break;
          throw e;
        }
      }
    }
  } finally {
    closeSync(fd);
  }
  return path;
}

export async function diskFull(h: Harness): Promise<Outcome> {
  const out = outcome('disk full: root dir on a full tmpfs');
  const problems = out.problems;
  await h.stopDaemon('SIGTERM');
  rmSync(h.rootDir, { recursive: true, force: true });
  execFileSync('mkdir', ['-p', h.rootDir]);
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${TMPFS_SIZE},mode=0711`, 'corral-e2e-full', h.rootDir]);
  let cri: CriClient | undefined;
  try {
    await h.startDaemon();
    cri = new CriClient(h.socket);
    const image = await pullBusybox(h, cri);
    const podCfg = reliabilityPod(h, 'disk-a', 'disk-a-uid');
    const podA = (await cri.call<{ pod_sandbox_id: string }>('RunPodSandbox', { config: podCfg })).pod_sandbox_id;
    const ctrA = (await cri.call<{ container_id: string }>('CreateContainer', { pod_sandbox_id: podA, config: containerConfig('a', image, IDLE_COMMAND), sandbox_config: podCfg })).container_id;
    await cri.call('StartContainer', { container_id: ctrA });

    const filler = fill(h.rootDir);
    const before = new Set(filesUnder(h.rootDir).map((f) => f.path));
    const results: Record<string, string> = {};
    const expectExhausted = (what: string, err: unknown) => {
      results[what] = err ? `${codeOf(err)}: ${detailsOf(err).slice(0, 140)}` : 'OK';
      if (!err) return problems.push(`${what} succeeded on a full disk`);
      if (codeOf(err) !== 'RESOURCE_EXHAUSTED') problems.push(`${what}: ${codeOf(err)} (want RESOURCE_EXHAUSTED): ${detailsOf(err)}`);
      else if (!detailsOf(err).includes(h.rootDir)) problems.push(`${what}: the message names no path under the root dir: ${detailsOf(err)}`);
    };
    const other = `${h.registry!.host}/registry.k8s.io/e2e-test-images/nginx:1.14-2`;
    expectExhausted('PullImage', await cri.image('PullImage', { image: { image: other } }).then(() => undefined, (e) => e));
    const podB = reliabilityPod(h, 'disk-b', 'disk-b-uid');
    expectExhausted('RunPodSandbox', await cri.call('RunPodSandbox', { config: podB }).then(() => undefined, (e) => e));
    expectExhausted('CreateContainer', await cri.call('CreateContainer', { pod_sandbox_id: podA, config: containerConfig('b', image, IDLE_COMMAND), sandbox_config: podCfg }).then(() => undefined, (e) => e));
    // Stopping what runs must work, or fail saying so, on a full disk.
    const stopErr = await cri.call('StopContainer', { container_id: ctrA, timeout: 5 }).then(() => undefined, (e) => e);
    results.StopContainer = stopErr ? `${codeOf(stopErr)}: ${detailsOf(stopErr).slice(0, 140)}` : 'OK';
    if (stopErr && codeOf(stopErr) !== 'RESOURCE_EXHAUSTED') problems.push(`StopContainer on a full disk: ${codeOf(stopErr)} ${detailsOf(stopErr)}`);
    const added = filesUnder(h.rootDir).map((f) => f.path).filter((p) => !before.has(p));
    if (added.length) problems.push(`calls that failed on the full disk left ${added.length} files: ${added.slice(0, 5).join(' ')}`);
    const mid = await listed(cri);
    if (mid.pods.length !== 1 || mid.containers.length !== 1) problems.push(`on the full disk: ${mid.pods.length} pods and ${mid.containers.length} containers listed (want 1 and 1)`);

    // Space returns: everything works again.
    rmSync(filler);
    await cri.image('PullImage', { image: { image: other } }).catch((e) => problems.push(`PullImage after space returned: ${codeOf(e)} ${detailsOf(e)}`));
    const b = await cri.call<{ pod_sandbox_id: string }>('RunPodSandbox', { config: podB }).catch((e) => { problems.push(`RunPodSandbox after space returned: ${codeOf(e)} ${detailsOf(e)}`); return undefined; });
    if (stopErr) await cri.call('StopContainer', { container_id: ctrA, timeout: 5 }).catch((e) => problems.push(`StopContainer after space returned: ${codeOf(e)} ${detailsOf(e)}`));
    const expected = await listed(cri);

    // The records load whole after a crash.
    await h.stopDaemon('SIGKILL');
    await h.startDaemon();
    cri.close();
    cri = new CriClient(h.socket);
    const after = await listed(cri);
    const view = (l: typeof after) => JSON.stringify([l.pods.map((p) => `${p.id}:${p.state}`).sort(), l.containers.map((c) => `${c.id}:${c.state}`).sort()]);
    if (view(after) !== view(expected)) problems.push(`after the restart ${view(after)}, before it ${view(expected)}`);
    if (/torn|corrupt|skipping record|checksum/i.test(h.daemonLog())) problems.push('the daemon log reports a damaged record');
    problems.push(...(await removeEverything(cri)));
    out.figures = { ...results, 'second pod after space returned': b ? 'ok' : 'failed', 'pods/containers after the restart': `${after.pods.length}/${after.containers.length}` };
  } finally {
    cri?.close();
    await h.stopDaemon('SIGTERM').catch(() => {});
    for (let i = 0; i < 20 && readMounts().some((m) => m.point === h.rootDir); i++) {
      try {
        execFileSync('umount', [h.rootDir]);
      } catch {
        await new Promise((r) => setTimeout(r, 250));
      }
    }
  }
  return out;
}
