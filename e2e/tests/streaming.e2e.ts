/**
 * Streaming (issue 7) with the real crictl over both transports (SPDY, the default, and
 * WebSocket with -r websocket): exec with and without stdin, exit codes, an interactive shell on
 * a real terminal (tmux) with a resize, attach, port-forward to a web server in the pod (an HTTP
 * GET from the host), a large transfer, concurrent sessions, and a client killed mid-stream.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { readdirSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { startHarness, run, sleep, type Harness } from '../harness/index.js';
import { tool } from '../harness/paths.js';

const BUSYBOX = 'registry.k8s.io/e2e-test-images/busybox:1.29-2';
const TRANSPORTS = ['spdy', 'websocket'] as const;
let h: Harness;
let pod = '';
let podConfig = '';
let ctr = '';

function crictlArgs(args: string[]): string[] {
  return ['--config', h.crictlConfig, '-r', h.endpoint, '-i', h.endpoint, '--timeout', '60s', ...args];
}

/** crictl with stdin from `input` and stdout kept as bytes. */
function crictlRaw(args: string[], input?: string | Buffer, timeoutMs = 60_000): Promise<{ code: number | null; stdout: Buffer; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(tool('crictl'), crictlArgs(args), { stdio: ['pipe', 'pipe', 'pipe'] });
    const out: Buffer[] = [];
    let err = '';
    child.stdout.on('data', (b: Buffer) => out.push(b));
    child.stderr.on('data', (b: Buffer) => { err += b.toString(); });
    const t = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => {
      clearTimeout(t);
      resolve({ code, stdout: Buffer.concat(out), stderr: err });
    });
    child.stdin.on('error', () => {});
    if (input !== undefined) child.stdin.end(input);
    else child.stdin.end();
  });
}

async function createCtr(name: string, command: string[], extra: Record<string, unknown> = {}): Promise<string> {
  const cfg = { metadata: { name }, image: { image: BUSYBOX }, command, linux: {}, ...extra };
  const id = (await h.crictlOk(['create', pod, h.writeJson(`ctr-${name}.json`, cfg), podConfig])).trim();
  await h.crictlOk(['start', id]);
  return id;
}

test.before(async () => {
  h = await startHarness({ runtime: (process.env.CORRAL_E2E_RUNTIME as 'crun' | 'runc' | undefined) ?? 'crun' });
  await h.crictlOk(['pull', BUSYBOX], { timeoutMs: 180_000 });
  podConfig = h.writeJson('pod.json', { metadata: { name: 'streaming', namespace: 'e2e-streaming', uid: 'uid-streaming', attempt: 0 }, linux: {} });
  pod = (await h.crictlOk(['runp', podConfig])).trim();
  ctr = await createCtr('main', ['sh', '-c', 'mkdir -p /www && echo hello-from-pod > /www/index.html && httpd -f -p 8080 -h /www']);
});

test.after.always(async () => {
  if (pod) {
    await h?.crictl(['stopp', pod]);
    await h?.crictl(['rmp', pod]);
  }
  await h?.stop();
});

for (const tr of TRANSPORTS) {
  test.serial(`[${tr}] exec: output, stderr and the exit code`, async (t) => {
    const ok = await crictlRaw(['exec', '-r', tr, ctr, 'sh', '-c', 'echo out; echo err >&2']);
    t.is(ok.code, 0, ok.stderr);
    t.is(ok.stdout.toString(), 'out\n');
    t.regex(ok.stderr, /err/);
    // crictl exits 1 and names the exit code it decoded from the v4 Status.
    const bad = await crictlRaw(['exec', '-r', tr, ctr, 'sh', '-c', 'exit 3']);
    t.regex(bad.stderr, /command terminated with exit code 3"/);
    const missing = await crictlRaw(['exec', '-r', tr, ctr, 'no-such-binary']);
    t.regex(missing.stderr, /command terminated with exit code 127"/);
    const killed = await crictlRaw(['exec', '-r', tr, ctr, 'sh', '-c', 'kill -9 $$']);
    t.regex(killed.stderr, /command terminated with exit code 137"/);
  });

  test.serial(`[${tr}] exec -i: stdin piped through`, async (t) => {
    const r = await crictlRaw(['exec', '-i', '-r', tr, ctr, 'sh', '-c', 'cat; echo done'], 'line one\nline two\n');
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout.toString(), 'line one\nline two\ndone\n');
  });

  test.serial(`[${tr}] exec: 100 MB of stdout arrive intact`, async (t) => {
    const r = await crictlRaw(['exec', '-r', tr, ctr, 'sh', '-c', 'dd if=/dev/urandom of=/tmp/big bs=1M count=100 2>/dev/null; sha256sum /tmp/big >&2; cat /tmp/big'], undefined, 180_000);
    t.is(r.code, 0, r.stderr);
    t.is(r.stdout.length, 100 * 1024 * 1024);
    const want = /([0-9a-f]{64})/.exec(r.stderr)?.[1];
    t.is(createHash('sha256').update(r.stdout).digest('hex'), want ?? 'no checksum printed');
  });

  test.serial(`[${tr}] port-forward: an HTTP GET from the host reaches the pod's web server`, async (t) => {
    const local = await freePort();
    const pf = spawn(tool('crictl'), crictlArgs(['port-forward', '-r', tr, pod, `${local}:8080`]), { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      await waitListening(local, pf);
      for (let i = 0; i < 3; i++) {
        const res = await fetch(`http://127.0.0.1:${local}/index.html`);
        t.is(res.status, 200);
        t.is(await res.text(), 'hello-from-pod\n');
      }
    } finally {
      pf.kill('SIGKILL');
    }
  });
}

/** The tmux pane's text once it matches re (or as it is after 10 s). */
async function waitForPane(session: string, re: RegExp): Promise<string> {
  const pane = async () => (await run('tmux', ['capture-pane', '-p', '-t', session])).stdout;
  for (let i = 0; i < 100; i++) {
    const p = await pane();
    if (re.test(p)) return p;
    await sleep(100);
  }
  return pane();
}

test.serial('exec -it through a real terminal (tmux): prompt, output, resize seen by stty size', async (t) => {
  for (const tr of TRANSPORTS) {
    const session = `corral-e2e-${process.pid}-${tr}`;
    const cmd = [tool('crictl'), ...crictlArgs(['exec', '-it', '-r', tr, ctr, 'sh'])].map((a) => `'${a}'`).join(' ');
    await run('tmux', ['new-session', '-d', '-s', session, '-x', '100', '-y', '30', cmd]);
    try {
      const waitFor = (re: RegExp) => waitForPane(session, re);
      t.regex(await waitFor(/[#$]\s*$/m), /[#$]\s*$/m, `${tr}: prompt`);
      await run('tmux', ['send-keys', '-t', session, 'echo marker-$((6*7))', 'Enter']);
      t.regex(await waitFor(/marker-42/), /marker-42/, `${tr}: output`);
      await run('tmux', ['send-keys', '-t', session, 'stty size', 'Enter']);
      t.regex(await waitFor(/^30 100/m), /^30 100/m, `${tr}: initial size`);
      await run('tmux', ['resize-window', '-t', session, '-x', '120', '-y', '40']);
      await sleep(300);
      await run('tmux', ['send-keys', '-t', session, 'stty size', 'Enter']);
      t.regex(await waitFor(/^40 120/m), /^40 120/m, `${tr}: resized`);
      await run('tmux', ['send-keys', '-t', session, 'exit', 'Enter']);
    } finally {
      await run('tmux', ['kill-session', '-t', session]).catch(() => undefined);
    }
  }
});

test.serial('attach -it to a tty container through tmux: input, output, resize through conmon', async (t) => {
  const id = await createCtr('ttyctr', ['sh'], { tty: true, stdin: true });
  const session = `corral-e2e-${process.pid}-attach`;
  const cmd = [tool('crictl'), ...crictlArgs(['attach', '-it', id])].map((a) => `'${a}'`).join(' ');
  await run('tmux', ['new-session', '-d', '-s', session, '-x', '90', '-y', '25', cmd]);
  try {
    const waitFor = (re: RegExp) => waitForPane(session, re);
    await sleep(500);
    await run('tmux', ['send-keys', '-t', session, 'echo attached-$((6*7))', 'Enter']);
    t.regex(await waitFor(/attached-42/), /attached-42/);
    await run('tmux', ['send-keys', '-t', session, 'stty size', 'Enter']);
    t.regex(await waitFor(/^25 90/m), /^25 90/m);
    await run('tmux', ['resize-window', '-t', session, '-x', '110', '-y', '35']);
    await sleep(300);
    await run('tmux', ['send-keys', '-t', session, 'stty size', 'Enter']);
    t.regex(await waitFor(/^35 110/m), /^35 110/m);
  } finally {
    await run('tmux', ['kill-session', '-t', session]).catch(() => undefined);
  }
  await h.crictlOk(['stop', '-t', '0', id]);
  await h.crictlOk(['rm', id]);
});

test.serial('attach: output of a running container; detach leaves it running; stdin reaches it', async (t) => {
  const ticker = await createCtr('ticker', ['sh', '-c', 'while true; do echo tick; sleep 0.2; done']);
  for (const tr of TRANSPORTS) {
    const watch = await crictlRaw(['attach', '-r', tr, ticker], undefined, 1500);
    t.regex(watch.stdout.toString(), /tick\ntick\n/, `${tr}: ${watch.stderr}`);
    t.is((await h.crictlJson<any>(['inspect', ticker])).status.state, 'CONTAINER_RUNNING');
  }
  // Several attachers at once each get all of the output.
  const both = await Promise.all([crictlRaw(['attach', ticker], undefined, 1500), crictlRaw(['attach', '-r', 'websocket', ticker], undefined, 1500)]);
  for (const r of both) t.regex(r.stdout.toString(), /tick\ntick\n/, r.stderr);
  await h.crictlOk(['stop', '-t', '0', ticker]);
  await h.crictlOk(['rm', ticker]);

  // stdin_once: the container's stdin closes when the (first) attach session ends.
  const reader = await createCtr('reader', ['sh', '-c', 'echo ready; while read l; do echo got:$l; done; echo bye'], { stdin: true, stdin_once: true });
  const r = await crictlRaw(['attach', '-i', reader], 'hello\n', 20_000);
  t.regex(r.stdout.toString(), /got:hello/, r.stderr);
  for (let i = 0; i < 50 && (await h.crictlJson<any>(['inspect', reader])).status.state !== 'CONTAINER_EXITED'; i++) await sleep(100);
  t.is((await h.crictlJson<any>(['inspect', reader])).status.state, 'CONTAINER_EXITED');
  await h.crictlOk(['rm', reader]);
});

test.serial('50 concurrent exec sessions', async (t) => {
  const rs = await Promise.all(Array.from({ length: 50 }, (_, i) => crictlRaw(['exec', ctr, 'sh', '-c', `echo n${i}`], undefined, 120_000)));
  rs.forEach((r, i) => t.is(r.stdout.toString(), `n${i}\n`, r.stderr));
});

function daemonFds(): string[] {
  const dir = `/proc/${h.daemonPid}/fd`;
  return readdirSync(dir).map((fd) => {
    try { return readlinkSync(`${dir}/${fd}`); } catch { return ''; }
  }).filter((l) => l !== '');
}

test.serial('a client killed mid-stream leaves no process in the container and no fd in the daemon', async (t) => {
  // Warm up (the streaming server, the netns dialer thread) before taking the baseline.
  await crictlRaw(['exec', ctr, 'true']);
  await sleep(500);
  const beforeList = daemonFds();
  const before = beforeList.length;
  for (const tr of TRANSPORTS) {
    const c = spawn(tool('crictl'), crictlArgs(['exec', '-r', tr, ctr, 'sleep', '7777']), { stdio: 'ignore' });
    await sleep(1000);
    c.kill('SIGKILL');
    let ps = '';
    for (let i = 0; i < 30; i++) {
      ps = (await h.crictlOk(['exec', '-s', ctr, 'ps'])).toString();
      if (!ps.includes('sleep 7777')) break;
      await sleep(100);
    }
    t.false(ps.includes('sleep 7777'), `${tr}: ${ps}`);
    const tty = spawn(tool('crictl'), crictlArgs(['exec', '-it', '-r', tr, ctr, 'sleep', '7778']), { stdio: ['pipe', 'ignore', 'ignore'] });
    await sleep(1000);
    tty.kill('SIGKILL');
    for (let i = 0; i < 30; i++) {
      ps = (await h.crictlOk(['exec', '-s', ctr, 'ps'])).toString();
      if (!ps.includes('sleep 7778')) break;
      await sleep(100);
    }
    t.false(ps.includes('sleep 7778'), `${tr} tty: ${ps}`);
  }
  let after: string[] = [];
  for (let i = 0; i < 50; i++) {
    after = daemonFds();
    if (after.length <= before) break;
    await sleep(100);
  }
  const extra = [...after];
  for (const f of beforeList) {
    const i = extra.indexOf(f);
    if (i >= 0) extra.splice(i, 1);
  }
  let detail = '';
  if (after.length > before) {
    const ss = (await run('ss', ['-anpe'])).stdout.split('\n');
    detail = extra.map((f) => /socket:\[(\d+)\]/.exec(f)?.[1]).filter(Boolean).map((ino) => ss.filter((l) => l.includes(`ino:${ino}`)).join('; ')).join(' | ');
  }
  t.true(after.length <= before, `daemon fds: ${before} before, ${after.length} after; new: ${extra.join(' ')} ${detail}`);
});

test.serial('port-forward: 100 MB through the tunnel arrive intact, both transports', async (t) => {
  await crictlRaw(['exec', ctr, 'sh', '-c', 'dd if=/dev/urandom of=/www/big bs=1M count=100 2>/dev/null']);
  const want = /([0-9a-f]{64})/.exec((await crictlRaw(['exec', ctr, 'sha256sum', '/www/big'])).stdout.toString())?.[1];
  for (const tr of TRANSPORTS) {
    const local = await freePort();
    const pf = spawn(tool('crictl'), crictlArgs(['port-forward', '-r', tr, pod, `${local}:8080`]), { stdio: ['ignore', 'pipe', 'pipe'] });
    try {
      await waitListening(local, pf);
      const body = Buffer.from(await (await fetch(`http://127.0.0.1:${local}/big`)).arrayBuffer());
      t.is(body.length, 100 * 1024 * 1024, tr);
      t.is(createHash('sha256').update(body).digest('hex'), want ?? 'no checksum', tr);
    } finally {
      pf.kill('SIGKILL');
    }
  }
  await crictlRaw(['exec', ctr, 'rm', '/www/big']);
});

test.serial('port-forward upload: 50 MB from the host to a listener in the pod, half-close ends it', async (t) => {
  const payload = Buffer.alloc(50 * 1024 * 1024);
  for (let i = 0; i < payload.length; i += 4) payload.writeUInt32LE((i * 2654435761) >>> 0, i);
  const want = createHash('sha256').update(payload).digest('hex');
  for (const tr of TRANSPORTS) {
    // nc's stdin must stay open: at stdin EOF busybox nc half-closes the connection, and
    // client-go's port-forward takes the pod side's FIN as the end of the whole connection.
    const id = await createCtr(`upload-${tr}`, ['sh', '-c', 'mkfifo /tmp/in; sleep 3600 > /tmp/in & nc -l -p 9000 < /tmp/in > /tmp/up; sha256sum /tmp/up > /tmp/up.sum; sleep 3600']);
    const local = await freePort();
    const pf = spawn(tool('crictl'), crictlArgs(['port-forward', '-r', tr, pod, `${local}:9000`]), { stdio: ['ignore', 'ignore', 'ignore'] });
    try {
      await waitListeningOnly(local, pf);
      await new Promise<void>((resolve, reject) => {
        const c = net.connect(local, '127.0.0.1', () => c.end(payload));
        c.on('error', reject);
        c.on('close', () => resolve());
        c.resume();
        setTimeout(() => reject(new Error('the upload did not finish in 60 s')), 60_000).unref();
      });
      let sum = '';
      for (let i = 0; i < 100 && !sum; i++) {
        sum = (await crictlRaw(['exec', id, 'cat', '/tmp/up.sum'])).stdout.toString().split(' ')[0] ?? '';
        if (!sum) await sleep(100);
      }
      t.is(sum, want, tr);
    } finally {
      pf.kill('SIGKILL');
    }
    await h.crictlOk(['stop', '-t', '0', id]);
    await h.crictlOk(['rm', id]);
  }
});

/** Waits for crictl to listen without connecting (a probe connection would be forwarded to a one-shot listener). */
async function waitListeningOnly(port: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`crictl port-forward exited with ${child.exitCode}`);
    const ss = (await run('ss', ['-ltnH', `sport = :${port}`])).stdout;
    if (ss.trim() !== '') return;
    await sleep(100);
  }
  throw new Error(`nothing listens on ${port}`);
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

async function waitListening(port: number, child: ChildProcess): Promise<void> {
  for (let i = 0; i < 100; i++) {
    if (child.exitCode !== null) throw new Error(`crictl port-forward exited with ${child.exitCode}`);
    const ok = await new Promise<boolean>((resolve) => {
      const c = net.connect(port, '127.0.0.1', () => { c.destroy(); resolve(true); });
      c.on('error', () => resolve(false));
    });
    if (ok) return;
    await sleep(100);
  }
  throw new Error(`nothing listens on ${port}`);
}
