/**
 * Foundation (issue 2): the daemon on its socket, as crictl and a hostile client see it.
 * Runs without the registry: nothing here pulls.
 */
import test from 'ava';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { DAEMON_MAIN } from '../harness/paths.js';
import { startHarness, sleep, type Harness } from '../harness/index.js';

let h: Harness;

test.before(async () => {
  h = await startHarness({ registry: false });
});

test.after.always(async () => {
  await h?.stop();
});

interface CriCondition { type: string; status: boolean; reason?: string; message?: string }

test.serial('crictl version names corral and the v1 API', async (t) => {
  const out = await h.crictlOk(['version']);
  t.regex(out, /^RuntimeName:\s+corral$/m);
  t.regex(out, /^RuntimeApiVersion:\s+v1$/m);
  t.regex(out, /^RuntimeVersion:\s+\d+\.\d+\.\d+/m);
});

test.serial('crictl info shows RuntimeReady and NetworkReady', async (t) => {
  const info = await h.crictlJson<{ status: { conditions: CriCondition[] } }>(['info']);
  const conds = info.status.conditions;
  const byType = new Map(conds.map((c) => [c.type, c]));
  t.true(byType.has('RuntimeReady'), JSON.stringify(conds));
  t.true(byType.has('NetworkReady'), JSON.stringify(conds));
  t.true(byType.get('RuntimeReady')!.status, JSON.stringify(byType.get('RuntimeReady')));
  // The harness gives the daemon a valid bridge conflist and the plugins are installed.
  t.true(byType.get('NetworkReady')!.status, JSON.stringify(byType.get('NetworkReady')));
});

test.serial('a second daemon on the same socket exits non-zero with a clear message', async (t) => {
  const child = spawn(process.execPath, [DAEMON_MAIN, 'serve', '--config', h.configPath], {
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  child.stdout.on('data', (b: Buffer) => { output += b.toString(); });
  child.stderr.on('data', (b: Buffer) => { output += b.toString(); });
  const exit = await Promise.race([
    new Promise<number | null>((r) => child.on('exit', (code) => r(code))),
    sleep(15_000).then(() => 'timeout' as const),
  ]);
  if (exit === 'timeout') {
    child.kill('SIGKILL');
    t.fail(`the second daemon kept running: ${output}`);
    return;
  }
  t.not(exit, 0, output);
  t.regex(output, /socket|already|in use|another/i);
  t.true(output.includes(h.socket), `the message names the socket: ${output}`);
  // The first one is unharmed and still owns the socket.
  t.regex(await h.crictlOk(['version']), /RuntimeName:\s+corral/);
});

function open(path: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect(path);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

test.serial('random bytes and half-open connections do not crash the daemon', async (t) => {
  const pid = h.daemonPid!;
  // Garbage instead of the HTTP/2 preface, in one write and in dribbles.
  for (let i = 0; i < 10; i++) {
    const s = await open(h.socket);
    s.on('error', () => {});
    s.write(randomBytes(1 + Math.floor(Math.random() * 65536)));
    s.end();
  }
  // A valid preface followed by garbage frames.
  const p = await open(h.socket);
  p.on('error', () => {});
  p.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), randomBytes(4096)]));
  // Connections that stay open saying nothing, half a preface, or with the write side closed.
  const idle: Socket[] = [];
  for (let i = 0; i < 20; i++) {
    const s = await open(h.socket);
    s.on('error', () => {});
    if (i % 3 === 1) s.write('PRI * HTTP/2.0\r\n');
    if (i % 3 === 2) s.end();
    idle.push(s);
  }
  await sleep(500);
  t.notThrows(() => process.kill(pid, 0), 'the daemon is alive');
  t.regex(await h.crictlOk(['version']), /RuntimeName:\s+corral/);
  for (const s of idle) s.destroy();
  p.destroy();
  await sleep(200);
  t.regex(await h.crictlOk(['version']), /RuntimeName:\s+corral/);
});

test.serial('SIGTERM exits 0 within 5 s with a gRPC client connected, and a restart answers again', async (t) => {
  // A kubelet keeps its connection open: shutdown must not wait for it to go away.
  const client = new grpc.Client(h.endpoint, grpc.credentials.createInsecure());
  await new Promise<void>((resolve, reject) => client.waitForReady(Date.now() + 5000, (e) => (e ? reject(e) : resolve())));
  const r = await h.stopDaemon('SIGTERM', 10_000);
  client.close();
  t.is(r.code, 0, `exit code ${r.code}, signal ${r.signal}`);
  t.true(r.ms < 5000, `took ${r.ms} ms`);
  await h.startDaemon();
  t.regex(await h.crictlOk(['version']), /RuntimeName:\s+corral/);
});

test.serial('SIGTERM exits 0 within 5 s with a half-open connection stuck in the HTTP/2 handshake', async (t) => {
  // A peer that sent the preface and then nothing (a hung client, a port scanner) must not keep
  // the daemon alive after its grace period.
  const stuck = await open(h.socket);
  stuck.on('error', () => {});
  stuck.write('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');
  let r;
  try {
    r = await h.stopDaemon('SIGTERM', 10_000);
  } finally {
    stuck.destroy();
  }
  t.is(r.code, 0, `exit code ${r.code}, signal ${r.signal}`);
  t.true(r.ms < 5000, `took ${r.ms} ms`);
  await h.startDaemon();
  t.regex(await h.crictlOk(['version']), /RuntimeName:\s+corral/);
});
