/**
 * Chaos: `clients` clients run pod+container cycles for `seconds` while the daemon is killed
 * with SIGKILL `kills` times at random moments and started again on the same dirs.
 *
 * A client retries a call the daemon died under the way the kubelet does: the same request
 * again once the daemon answers. A retried RunPodSandbox or CreateContainer must then get the
 * pod or container the first call made (or make it anew); a name still reserved 10 s after the
 * restart is a problem. Some cycles leave their container running (the node's long-lived pods).
 *
 * Afterwards, with the daemon restarted once more (the record logs reopen): every container a
 * client saw started and did not remove is listed and running in its ready pod; nothing is
 * listed that no client knows (a half-created pod or container was completed and handed to the
 * retry, or undone); every container's pod is listed. Then everything is removed, and the
 * harness' leak check finds nothing on the host (mounts, netns, cgroups, conmons, iptables).
 */
import type { Harness } from '../harness/index.js';
import { CriClient, codeOf, containerConfig, detailsOf, EXIT_COMMAND, IDLE_COMMAND, settledLeftovers, listed, outcome, p50, pullBusybox, reliabilityPod, removeEverything, rng, round, sleep, waitExited, type Outcome } from './lib.js';

export interface ChaosOptions { seconds: number; kills: number; clients: number; seed: number }

/** How long a call is retried while the daemon is down or restarting. */
const RETRY_MS = 60_000;
/** A name reserved by a call that died with the daemon must be free (or handed over) by then. */
const RESERVED_MS = 10_000;

interface Kept { pod: string; ctr: string; client: number }

export async function chaos(h: Harness, opts: ChaosOptions): Promise<Outcome> {
  const out = outcome(`chaos: ${opts.clients} clients for ${opts.seconds} s, ${opts.kills} SIGKILLs of the daemon`);
  const random = rng(opts.seed);
  let cri = new CriClient(h.socket);
  const image = await pullBusybox(h, cri);
  const kept: Kept[] = [];
  const known = new Set<string>();
  const problems = out.problems;
  let daemonUp = true;
  let cycles = 0;
  let retried = 0;
  const recoveries: number[] = [];

  /**
   * The call again until it answers or fails for a reason of its own. `ok(err)` accepts an
   * error as the outcome of an earlier attempt that did complete (NotFound on a remove).
   */
  const call = async <T>(what: string, fn: () => Promise<T>, accept?: (err: unknown) => T | undefined): Promise<T> => {
    const t0 = Date.now();
    let attempt = 0;
    let reservedSince: number | undefined;
    for (;;) {
      attempt++;
      try {
        return await fn();
      } catch (e) {
        const code = codeOf(e);
        if (attempt > 1) {
          const accepted = accept?.(e);
          if (accepted !== undefined) return accepted;
        }
        const transient = code === 'UNAVAILABLE' || code === 'CANCELLED' || code === 'DEADLINE_EXCEEDED' || code === 'UNKNOWN' && /closed|reset|EOF/i.test(detailsOf(e));
        if (code === 'ALREADY_EXISTS' && attempt > 1) {
          // a name the dead daemon's call held: must be free or handed over soon after the restart
          reservedSince ??= Date.now();
          if (Date.now() - reservedSince > RESERVED_MS) throw new Error(`${what}: name still reserved ${RESERVED_MS} ms after the restart: ${detailsOf(e)}`);
        } else if (!transient) {
          throw new Error(`${what}: ${code} ${detailsOf(e)}`);
        }
        if (Date.now() - t0 > RETRY_MS) throw new Error(`${what}: no answer for ${RETRY_MS} ms: ${code} ${detailsOf(e)}`);
        retried++;
        await sleep(daemonUp ? 100 : 200);
      }
    }
  };
  const notFoundIsDone = (e: unknown) => (codeOf(e) === 'NOT_FOUND' ? ({} as never) : undefined);

  const cycle = async (k: number, n: number): Promise<void> => {
    const name = `chaos-${k}-${n}`;
    const config = reliabilityPod(h, name, `${name}-uid`);
    const pod = (await call(`RunPodSandbox ${name}`, () => cri.call<{ pod_sandbox_id: string }>('RunPodSandbox', { config }, 30_000))).pod_sandbox_id;
    known.add(pod);
    const keep = random() < 0.25;
    const ctrCfg = containerConfig('c', image, keep || random() < 0.5 ? IDLE_COMMAND : EXIT_COMMAND);
    const ctr = (await call(`CreateContainer ${name}`, () => cri.call<{ container_id: string }>('CreateContainer', { pod_sandbox_id: pod, config: ctrCfg, sandbox_config: config }, 30_000))).container_id;
    known.add(ctr);
    // A start that completed before the daemon died: the retry finds the container running (or done).
    await call(`StartContainer ${name}`, () => cri.call('StartContainer', { container_id: ctr }, 30_000), (e) => {
      if (codeOf(e) !== 'FAILED_PRECONDITION' && codeOf(e) !== 'UNKNOWN') return undefined;
      return /RUNNING|EXITED|running|exited/.test(detailsOf(e)) ? ({} as never) : undefined;
    });
    if (keep) {
      kept.push({ pod, ctr, client: k });
      return;
    }
    if (ctrCfg.command === IDLE_COMMAND) {
      await sleep(Math.floor(random() * 1000));
      await call(`StopContainer ${name}`, () => cri.call('StopContainer', { container_id: ctr, timeout: 10 }, 30_000), notFoundIsDone);
    } else {
      await call(`wait ${name}`, () => waitExited(cri, ctr, 30_000));
    }
    await call(`RemoveContainer ${name}`, () => cri.call('RemoveContainer', { container_id: ctr }, 30_000), notFoundIsDone);
    await call(`StopPodSandbox ${name}`, () => cri.call('StopPodSandbox', { pod_sandbox_id: pod }, 30_000), notFoundIsDone);
    await call(`RemovePodSandbox ${name}`, () => cri.call('RemovePodSandbox', { pod_sandbox_id: pod }, 30_000), notFoundIsDone);
    known.delete(ctr);
    known.delete(pod);
    cycles++;
  };

  const end = Date.now() + opts.seconds * 1000;
  const client = async (k: number) => {
    for (let n = 0; Date.now() < end; n++) {
      try {
        await cycle(k, n);
      } catch (e) {
        problems.push(`client ${k}: ${(e as Error).message.split('\n')[0]}`);
        return;
      }
      if (problems.length > 20) return;
    }
  };
  const killer = async () => {
    const gap = (opts.seconds * 1000) / opts.kills;
    for (let i = 0; i < opts.kills && Date.now() < end; i++) {
      await sleep(Math.floor(gap * (0.3 + random() * 0.7)));
      daemonUp = false;
      await h.stopDaemon('SIGKILL');
      const t0 = Date.now();
      try {
        await h.startDaemon();
      } catch (e) {
        problems.push(`restart ${i + 1}: ${(e as Error).message.split('\n')[0]}`);
        return;
      }
      recoveries.push(Date.now() - t0);
      daemonUp = true;
    }
  };
  await Promise.all([killer(), ...Array.from({ length: opts.clients }, (_, k) => client(k))]);

  // The record logs reopen: one more restart, a clean one, before the checks.
  await h.stopDaemon('SIGKILL');
  await h.startDaemon();
  cri.close();
  cri = new CriClient(h.socket);
  try {
    const { pods, containers } = await listed(cri);
    const podById = new Map(pods.map((p) => [p.id as string, p]));
    const ctrById = new Map(containers.map((c) => [c.id as string, c]));
    let lost = 0;
    for (const k of kept) {
      const c = ctrById.get(k.ctr);
      const p = podById.get(k.pod);
      if (!c || c.state !== 'CONTAINER_RUNNING' || !p || p.state !== 'SANDBOX_READY') {
        lost++;
        problems.push(`container ${k.ctr} (client ${k.client}) started and kept: ${c ? c.state : 'not listed'}, pod ${p ? p.state : 'not listed'}`);
      }
    }
    const keptIds = new Set(kept.flatMap((k) => [k.pod, k.ctr]));
    const orphans = [...pods, ...containers].filter((o) => !keptIds.has(o.id) && !known.has(o.id));
    for (const o of orphans) problems.push(`listed but no client knows it: ${o.id} ${JSON.stringify(o.metadata)} ${o.state}`);
    // Clients that stopped on a problem may leave their current pod: known, not an orphan.
    for (const c of containers) if (!podById.has(c.pod_sandbox_id)) problems.push(`container ${c.id} listed without its pod ${c.pod_sandbox_id}`);
    const errs = await removeEverything(cri);
    problems.push(...errs);
    const files = await settledLeftovers(h);
    if (files.length) problems.push(`left in corral's dirs: ${files.slice(0, 10).join(' ')}`);
    out.figures = {
      'cycles completed': cycles,
      'kills': recoveries.length,
      'calls retried': retried,
      'restart to Version p50 ms': round(p50(recoveries), 0),
      'restart to Version max ms': round(Math.max(...recoveries), 0),
      'containers kept running': kept.length,
      'containers lost': lost,
      orphans: orphans.length,
      leftovers: files.length,
    };
  } finally {
    cri.close();
  }
  return out;
}
