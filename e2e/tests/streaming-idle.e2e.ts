/**
 * The streaming idle timeout ([streaming] idle_timeout_seconds) with the real crictl over both
 * transports, on a daemon configured with 6 s: longer than the 5 s at which client-go pings on
 * both transports, so the tests also show that pings do not keep a session alive. An exec whose
 * stdin is held open but silent is ended by the server, crictl says why and the process is gone
 * from the container afterwards; sessions with traffic every 500 ms (stdin echoed back, or output
 * alone) outlive the timeout and end normally; a port-forward without connections is closed too.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { startHarness, sleep, type Harness } from '../harness/index.js';
import { tool } from '../harness/paths.js';

const BUSYBOX = 'registry.k8s.io/e2e-test-images/busybox:1.29-2';
const TRANSPORTS = ['spdy', 'websocket'] as const;
const IDLE_S = 6;
let h: Harness;
let pod = '';
let ctr = '';

function crictlArgs(args: string[]): string[] {
  return ['--config', h.crictlConfig, '-r', h.endpoint, '-i', h.endpoint, '--timeout', '60s', ...args];
}

interface Session {
  /** Writes to crictl's stdin (which stays open until end()). */
  write(s: string): void;
  end(): void;
  exited: Promise<{ code: number | null; ms: number; stdout: string; stderr: string }>;
}

/** crictl with its stdin a pipe that we hold open; killed after timeoutMs. */
function crictlSession(args: string[], timeoutMs = 30_000): Session {
  const start = Date.now();
  const child = spawn(tool('crictl'), crictlArgs(args), { stdio: ['pipe', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  child.stdout.on('data', (b: Buffer) => { out += b.toString(); });
  child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
  child.stdin.on('error', () => {});
  const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const exited = new Promise<{ code: number | null; ms: number; stdout: string; stderr: string }>((resolve) => {
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, ms: Date.now() - start, stdout: out, stderr: err });
    });
  });
  return { write: (s) => child.stdin.write(s), end: () => child.stdin.end(), exited };
}

async function processes(): Promise<string> {
  return (await h.crictlOk(['exec', '-s', ctr, 'ps'])).toString();
}

test.before(async () => {
  h = await startHarness({
    runtime: (process.env.CORRAL_E2E_RUNTIME as 'crun' | 'runc' | undefined) ?? 'crun',
    config: { streaming: { idle_timeout_seconds: IDLE_S } },
  });
  await h.crictlOk(['pull', BUSYBOX], { timeoutMs: 180_000 });
  const podConfig = h.writeJson('pod.json', { metadata: { name: 'streaming-idle', namespace: 'e2e-streaming-idle', uid: 'uid-streaming-idle', attempt: 0 }, linux: {} });
  pod = (await h.crictlOk(['runp', podConfig])).trim();
  const cfg = { metadata: { name: 'main' }, image: { image: BUSYBOX }, command: ['sleep', '3600'], linux: {} };
  ctr = (await h.crictlOk(['create', pod, h.writeJson('ctr.json', cfg), podConfig])).trim();
  await h.crictlOk(['start', ctr]);
});

test.after.always(async () => {
  if (pod) {
    await h?.crictl(['stopp', pod]);
    await h?.crictl(['rmp', pod]);
  }
  await h?.stop();
});

TRANSPORTS.forEach((tr, i) => {
  test.serial(`[${tr}] exec -i with stdin open and silent: the server ends it after ${IDLE_S} s and the process is gone`, async (t) => {
    const marker = `sleep ${1001 + i}`;
    const s = crictlSession(['exec', '-i', '-r', tr, ctr, 'sleep', String(1001 + i)]);
    await sleep(500);
    t.true((await processes()).includes(marker), 'the exec started');
    const r = await s.exited;
    s.end();
    t.log(`${tr}: crictl exited ${r.code} after ${r.ms} ms: ${r.stderr.trim()}`);
    t.true(r.ms >= IDLE_S * 1000 - 100, `crictl ended after ${r.ms} ms, before the timeout`);
    // A ping at 5 s that counted as traffic would push the end past 11 s.
    t.true(r.ms < IDLE_S * 1000 + 4000, `crictl ended after ${r.ms} ms`);
    // SPDY: the Status on the error stream; WebSocket: the close frame's reason.
    t.not(r.code, 0);
    t.regex(r.stderr, /idle timeout/);
    let ps = '';
    for (let n = 0; n < 50; n++) {
      ps = await processes();
      if (!ps.includes(marker)) break;
      await sleep(100);
    }
    t.false(ps.includes(marker), ps);
    t.regex(h.daemonLog(), new RegExp(`exec in container ${ctr} over ${tr === 'spdy' ? 'SPDY' : 'WebSocket'}: no traffic for ${IDLE_S} s, closing the session`));
  });

  test.serial(`[${tr}] exec -i with a line every 500 ms outlives the timeout and ends normally`, async (t) => {
    const s = crictlSession(['exec', '-i', '-r', tr, ctr, 'cat']);
    const lines = Array.from({ length: 2 * IDLE_S + 2 }, (_, n) => `line ${n}`);
    for (const l of lines) {
      s.write(`${l}\n`);
      await sleep(500);
    }
    s.end();
    const r = await s.exited;
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout, lines.map((l) => `${l}\n`).join(''));
    t.true(r.ms > IDLE_S * 1000);
  });

  test.serial(`[${tr}] exec with output every 500 ms and no input outlives the timeout`, async (t) => {
    const n = 2 * IDLE_S + 2;
    const s = crictlSession(['exec', '-r', tr, ctr, 'sh', '-c', `i=1; while [ $i -le ${n} ]; do echo $i; i=$((i+1)); sleep 0.5; done`]);
    s.end();
    const r = await s.exited;
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout, Array.from({ length: n }, (_, k) => `${k + 1}\n`).join(''));
    t.true(r.ms > IDLE_S * 1000);
  });
});

test.serial('port-forward with no connection is closed by the server; crictl reports the lost connection', async (t) => {
  for (const tr of TRANSPORTS) {
    const s = crictlSession(['port-forward', '-r', tr, pod, '0:8080']);
    s.end();
    const r = await s.exited;
    t.log(`${tr}: crictl exited ${r.code} after ${r.ms} ms: ${r.stderr.trim()}`);
    t.true(r.ms >= IDLE_S * 1000 - 100 && r.ms < IDLE_S * 1000 + 4000, `${tr}: ${r.ms} ms`);
    t.not(r.code, 0);
    t.regex(r.stderr, /lost connection to pod/);
    t.regex(h.daemonLog(), new RegExp(`port-forward to pod ${pod} over ${tr === 'spdy' ? 'SPDY' : 'SPDY in WebSocket'}: no traffic for ${IDLE_S} s`));
  }
});
