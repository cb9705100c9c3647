/**
 * Registry faults: pulls through a proxy that cuts a blob mid-stream, corrupts it, answers 500
 * or 429 (Retry-After) a few times, stalls, or is too slow for the caller's deadline; and a
 * registry port whose TLS handshake is closed. Then the daemon killed with SIGKILL in the middle
 * of a pull.
 *
 * Each failed pull must fail with a message that says what went wrong, leave no new file in
 * the content store or the layer snapshots, and no image listed; the transient faults must be
 * retried to success; a pull the caller gives up on must stop downloading; and a clean pull of
 * the same image afterwards must work and be the image the registry serves.
 */
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Harness, HarnessOptions } from '../harness/index.js';
import { sharedRegistry } from '../harness/registry.js';
import { FaultProxy, type Fault } from './fault-proxy.js';
import { CriClient, codeOf, detailsOf, filesUnder, outcome, round, type Outcome } from './lib.js';

/** The pull progress timeout the daemon runs with here (the stall case waits for it). */
const PROGRESS_TIMEOUT_S = 3;

export async function faultsSetup(): Promise<{ options: HarnessOptions; proxy: FaultProxy }> {
  const reg = sharedRegistry();
  if (!reg) throw new Error('registry faults need the e2e registry (run under e2e/harness/with-registry.js)');
  const proxy = new FaultProxy(new URL(reg.url));
  await proxy.start();
  return {
    proxy,
    options: {
      logLevel: 'info',
      config: {
        pull: { progress_timeout_seconds: PROGRESS_TIMEOUT_S },
        registries: { [proxy.host]: { insecure: true }, [proxy.tlsHost]: {} },
      },
    },
  };
}

/** Content blobs, ingest files and layer snapshots: a failed pull adds none of them. */
function storeFiles(h: Harness): Set<string> {
  const out = new Set(filesUnder(join(h.rootDir, 'content')).map((f) => f.path));
  for (const d of safeList(join(h.rootDir, 'snapshots'))) out.add(join(h.rootDir, 'snapshots', d));
  return out;
}

function safeList(d: string): string[] {
  try {
    return readdirSync(d);
  } catch {
    return [];
  }
}

interface Case {
  name: string;
  fault: Fault;
  /** 'fail': the pull fails with a message matching `message`; 'ok': it succeeds (retried). */
  expect: 'fail' | 'ok';
  message?: RegExp;
  deadlineMs?: number;
  image?: (p: FaultProxy) => string;
}

export async function registryFaults(h: Harness, proxy: FaultProxy): Promise<Outcome[]> {
  const cri = new CriClient(h.socket);
  const ref = (p: FaultProxy) => `${p.host}/corral/busybox:latest`;
  const cases: Case[] = [
    { name: 'blob cut mid-stream', fault: { kind: 'cut' }, expect: 'fail', message: /closed|reset|bytes|aborted|terminated/i },
    { name: 'blob with a wrong digest', fault: { kind: 'corrupt' }, expect: 'fail', message: /digest mismatch/ },
    { name: 'HTTP 500 twice, then the blob', fault: { kind: 'status', code: 500, times: 2 }, expect: 'ok' },
    { name: 'HTTP 429 with Retry-After twice, then the blob', fault: { kind: 'status', code: 429, times: 2 }, expect: 'ok' },
    { name: 'HTTP 503 on every request', fault: { kind: 'status', code: 503, times: 1000 }, expect: 'fail', message: /503/ },
    { name: 'blob stalls', fault: { kind: 'stall' }, expect: 'fail', message: /no data received/ },
    { name: "the caller's deadline passes during a slow download", fault: { kind: 'slow', bytesPerSecond: 64 * 1024 }, expect: 'fail', deadlineMs: 1500 },
    { name: 'TLS handshake closed', fault: { kind: 'none' }, expect: 'fail', message: /TLS|socket|disconnect|ECONNRESET|handshake/i, image: (p) => `${p.tlsHost}/corral/busybox:latest` },
  ];
  const outs: Outcome[] = [];
  try {
    for (const c of cases) {
      const out = outcome(`registry fault: ${c.name}`);
      outs.push(out);
      const image = (c.image ?? ref)(proxy);
      const before = storeFiles(h);
      proxy.set(c.fault);
      const requests0 = proxy.blobRequests;
      const t0 = Date.now();
      let err: unknown;
      try {
        await cri.image('PullImage', { image: { image } }, c.deadlineMs ?? 120_000);
      } catch (e) {
        err = e;
      }
      const ms = Date.now() - t0;
      out.figures = { result: err ? `${codeOf(err)}: ${detailsOf(err).slice(0, 160)}` : 'pulled', ms, 'blob requests': proxy.blobRequests - requests0 };
      if (c.expect === 'ok') {
        if (err) out.problems.push(`expected the pull to succeed after retries: ${codeOf(err)} ${detailsOf(err)}`);
      } else if (!err) {
        out.problems.push('the pull succeeded');
      } else {
        const code = codeOf(err);
        if (code === 'INTERNAL' || code === 'UNKNOWN') out.problems.push(`answered ${code}: ${detailsOf(err)}`);
        if (c.message && !c.message.test(detailsOf(err))) out.problems.push(`message does not say what went wrong (${c.message}): ${detailsOf(err)}`);
      }
      // A cancelled or failed pull stops downloading.
      if (!(await proxy.drained(5000))) out.problems.push(`${proxy.streams.size} blob downloads still open 5 s after the pull ended`);
      proxy.set({ kind: 'none' });
      if (c.expect === 'fail') {
        // Give the daemon's side of a cancelled pull a moment to clean up its ingest file.
        await new Promise((r) => setTimeout(r, 500));
        const after = storeFiles(h);
        const added = [...after].filter((f) => !before.has(f));
        if (added.length) out.problems.push(`a failed pull left ${added.length} files: ${added.slice(0, 5).join(' ')}`);
        const listed = await cri.image<{ images: Array<{ repo_tags: string[] }> }>('ListImages', {});
        if (listed.images.some((i) => i.repo_tags.includes(image))) out.problems.push(`${image} is listed after a failed pull`);
      }
      // A clean pull of the same image works and is the registry's image.
      if (!c.image) {
        try {
          const r = await cri.image<{ image_ref: string }>('PullImage', { image: { image } }, 120_000);
          const st = await cri.image<{ image: { id: string } | null }>('ImageStatus', { image: { image } });
          if (!st.image || st.image.id !== r.image_ref) out.problems.push(`after the clean pull ImageStatus says ${JSON.stringify(st.image)}`);
          await cri.image('RemoveImage', { image: { image: r.image_ref } });
        } catch (e) {
          out.problems.push(`the clean pull after the fault: ${codeOf(e)} ${detailsOf(e)}`);
        }
      }
      out.figures.ms = round(ms, 0);
    }
  } finally {
    cri.close();
  }
  return outs;
}

/** SIGKILL of the daemon while a (slow) pull is downloading; after the restart a clean pull works. */
export async function killDuringPull(h: Harness, proxy: FaultProxy): Promise<Outcome> {
  const out = outcome('daemon SIGKILLed during a pull');
  const image = `${proxy.host}/corral/busybox:latest`;
  const before = storeFiles(h);
  proxy.set({ kind: 'slow', bytesPerSecond: 64 * 1024 });
  let cri = new CriClient(h.socket);
  const pull = cri.image('PullImage', { image: { image } }, 60_000).then(() => 'pulled', (e) => codeOf(e));
  const end = Date.now() + 10_000;
  while (proxy.streams.size === 0 && Date.now() < end) await new Promise((r) => setTimeout(r, 20));
  await new Promise((r) => setTimeout(r, 300));
  await h.stopDaemon('SIGKILL');
  const first = await pull;
  proxy.set({ kind: 'none' });
  await h.startDaemon();
  cri.close();
  cri = new CriClient(h.socket);
  try {
    const listed = await cri.image<{ images: Array<{ repo_tags: string[] }> }>('ListImages', {});
    if (listed.images.some((i) => i.repo_tags.includes(image))) out.problems.push(`${image} is listed after the pull died with the daemon`);
    const added = [...storeFiles(h)].filter((f) => !before.has(f));
    if (added.length) out.problems.push(`the killed pull left ${added.length} files after the restart: ${added.slice(0, 5).join(' ')}`);
    const r = await cri.image<{ image_ref: string }>('PullImage', { image: { image } }, 120_000);
    await cri.image('RemoveImage', { image: { image: r.image_ref } });
    out.figures = { 'the pull in flight': first, 'files left': added.length, 'clean pull after restart': 'ok' };
  } catch (e) {
    out.problems.push(`${codeOf(e)} ${detailsOf(e)}`);
  } finally {
    cri.close();
  }
  return out;
}
