/**
 * The daemon's own guards, seen from outside: the socket is root's alone (0660, owned by root,
 * in a 0700 dir); the streaming server listens only where configured and serves only the
 * tokens corral issued, once (a replayed or guessed exec URL gets 404); a request timeout past
 * a JavaScript timer's range is no timeout rather than an immediate one; a bad pod CIDR is
 * refused and leaves the node able to run pods, also after a restart.
 */
import { execFileSync } from 'node:child_process';
import { statSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Harness } from '../harness/index.js';
import { httpGet } from '../harness/kubelet.js';
import { CriClient, codeOf, containerConfig, detailsOf, IDLE_COMMAND, outcome, pullBusybox, reliabilityPod, removeEverything, type Outcome } from './lib.js';

export async function guards(h: Harness): Promise<Outcome> {
  const out = outcome('guards: socket, streaming tokens, request timers, pod CIDR');
  const problems = out.problems;
  let cri = new CriClient(h.socket);
  try {
    const sock = statSync(h.socket);
    const dir = statSync(dirname(h.socket));
    if ((sock.mode & 0o777) !== 0o660 || sock.uid !== 0 || sock.gid !== 0) problems.push(`socket mode ${(sock.mode & 0o777).toString(8)} owner ${sock.uid}:${sock.gid} (want 660 root:root)`);
    out.figures.socket = `${(sock.mode & 0o777).toString(8)} root, dir ${(dir.mode & 0o777).toString(8)}`;

    // Listening sockets of the daemon: the streaming server where configured (127.0.0.1), nothing else.
    const ss = execFileSync('ss', ['-Hltnp'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(`pid=${h.daemonPid},`));
    const addrs = ss.map((l) => l.trim().split(/\s+/)[3]!);
    if (addrs.some((a) => !a.startsWith('127.0.0.1:'))) problems.push(`the daemon listens on ${addrs.join(' ')} (configured: 127.0.0.1 only)`);

    const image = await pullBusybox(h, cri);
    const podCfg = reliabilityPod(h, 'guards', 'guards-uid');
    const pod = (await cri.call<{ pod_sandbox_id: string }>('RunPodSandbox', { config: podCfg })).pod_sandbox_id;
    const ctr = (await cri.call<{ container_id: string }>('CreateContainer', { pod_sandbox_id: pod, config: containerConfig('g', image, IDLE_COMMAND), sandbox_config: podCfg })).container_id;
    await cri.call('StartContainer', { container_id: ctr });
    out.figures['streaming listens on'] = addrs.join(' ') || 'nothing (started on first use)';

    // Tokens: the URL works once; a replay and a guess get 404.
    const { url } = await cri.call<{ url: string }>('Exec', { container_id: ctr, cmd: ['true'], stdout: true });
    const first = await httpGet(url);
    const replay = await httpGet(url);
    const guessed = await httpGet(url.replace(/[^/]+$/, 'A'.repeat(url.split('/').pop()!.length)));
    if (replay.status !== 404) problems.push(`a replayed exec URL answered ${replay.status}`);
    if (guessed.status !== 404) problems.push(`a guessed exec URL answered ${guessed.status}`);
    out.figures['exec URL: first, replay, guess'] = `${first.status}, ${replay.status}, ${guessed.status}`;
    const after = await cri.call<{ url: string }>('Exec', { container_id: ctr, cmd: ['true'], stdout: true });
    const listen = execFileSync('ss', ['-Hltnp'], { encoding: 'utf8' }).split('\n').filter((l) => l.includes(`pid=${h.daemonPid},`)).map((l) => l.trim().split(/\s+/)[3]!);
    if (listen.some((a) => !a.startsWith('127.0.0.1:'))) problems.push(`with streaming started the daemon listens on ${listen.join(' ')}`);
    out.figures['listening after the first exec'] = listen.join(' ');
    void after;

    // A timeout of int64 max is none: the command runs to its end.
    const t0 = Date.now();
    const r = await cri.call<{ exit_code: number }>('ExecSync', { container_id: ctr, cmd: ['sleep', '0.3'], timeout: '9223372036854775807' }, 30_000)
      .catch((e) => ({ exit_code: -1, err: `${codeOf(e)} ${detailsOf(e)}` }));
    if (r.exit_code !== 0) problems.push(`ExecSync with the largest timeout: ${JSON.stringify(r)}`);
    out.figures['ExecSync with timeout 2^63-1'] = `exit ${r.exit_code} after ${Date.now() - t0} ms`;

    // A pod CIDR the plugins would refuse is refused here, and the node keeps working across a restart.
    const bad = await cri.call('UpdateRuntimeConfig', { runtime_config: { network_config: { pod_cidr: '10.0.0.5/24' } } }).then(() => 'OK', (e) => codeOf(e));
    const junk = await cri.call('UpdateRuntimeConfig', { runtime_config: { network_config: { pod_cidr: 'not a cidr' } } }).then(() => 'OK', (e) => codeOf(e));
    if (bad !== 'INVALID_ARGUMENT' || junk !== 'INVALID_ARGUMENT') problems.push(`UpdateRuntimeConfig with bad CIDRs: ${bad}, ${junk}`);
    await h.stopDaemon('SIGKILL');
    await h.startDaemon();
    cri.close();
    cri = new CriClient(h.socket);
    const p2cfg = reliabilityPod(h, 'guards-2', 'guards-2-uid');
    const p2 = await cri.call<{ pod_sandbox_id: string }>('RunPodSandbox', { config: p2cfg }).then(() => 'OK', (e) => `${codeOf(e)} ${detailsOf(e)}`);
    if (p2 !== 'OK') problems.push(`a pod after bad CIDRs and a restart: ${p2}`);
    out.figures['bad pod CIDRs'] = `${bad}, ${junk}; a pod after the restart: ${p2}`;
    problems.push(...(await removeEverything(cri)));
  } finally {
    cri.close();
  }
  return out;
}
