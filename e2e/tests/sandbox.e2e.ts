/**
 * Pod sandboxes (issue 5) through crictl: runp/inspectp/pods/stopp/rmp, a reachable pod IP,
 * host network pods, hostname, resolv.conf, sysctls, a host port, a broken CNI config that
 * leaves nothing, and a kill -9 of the daemon with the pod surviving it.
 * No containers are needed: processes inside a pod are started with nsenter on its pins.
 */
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomInt } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { networkInterfaces } from 'node:os';
import { join } from 'node:path';
import { run, runOk, sleep, startHarness, type Harness } from '../harness/index.js';

let h: Harness;

test.before(async () => {
  h = await startHarness({ registry: false });
});

test.after.always(async () => {
  await h?.stop();
});

interface Inspect {
  status: {
    id: string;
    state: string;
    createdAt: string;
    network: { ip: string; additionalIps: Array<{ ip: string }> };
    linux: { namespaces: { options: { network: string; pid: string; ipc: string } } };
    labels: Record<string, string>;
    runtimeHandler: string;
  };
  info: {
    namespaces: { net?: string; ipc?: string; uts?: string };
    files: { hosts: string; resolvConf: string; hostname: string; shm?: string };
    hostname: string;
    network: { cniResult: unknown };
  };
}

let seq = 0;
function podConfig(over: Record<string, unknown> = {}, linux: Record<string, unknown> = {}): Record<string, unknown> {
  const n = `sb${++seq}`;
  return {
    metadata: { name: n, namespace: 'e2e', uid: `uid-${n}-${randomInt(1e9)}`, attempt: 0 },
    hostname: `${n}-host`,
    log_directory: join(h.dir, 'logs', n),
    labels: { suite: 'sandbox', pod: n },
    linux: { security_context: { namespace_options: { network: 0, pid: 1, ipc: 0 } }, ...linux },
    ...over,
  };
}

async function runp(cfg: Record<string, unknown>): Promise<string> {
  return (await h.crictlOk(['runp', h.writeJson(`pod-${seq}-${Date.now()}.json`, cfg)])).trim();
}

async function inspectp(id: string): Promise<Inspect> {
  return h.crictlJson<Inspect>(['inspectp', id]);
}

async function removePod(id: string): Promise<void> {
  await h.crictlOk(['stopp', id]);
  await h.crictlOk(['rmp', id]);
}

async function nsenter(args: string[]): Promise<string> {
  return (await runOk('nsenter', args, { timeoutMs: 10_000 })).stdout;
}

function hostIPv4(): string {
  for (const addrs of Object.values(networkInterfaces())) {
    for (const a of addrs ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  throw new Error('the host has no non-loopback IPv4 address');
}

function httpGet(host: string, port: number): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host, port, path: '/index.html', timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (c: Buffer) => { body += c.toString(); });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

test.serial('runp, inspectp, pods, stopp, rmp: a pod with a reachable IP, its hostname, DNS and sysctls', async (t) => {
  const cfg = podConfig({
    dns_config: { servers: ['10.96.0.10'], searches: ['e2e.svc.cluster.local', 'svc.cluster.local'], options: ['ndots:5'] },
  }, {
    sysctls: { 'net.ipv4.ip_unprivileged_port_start': '0', 'kernel.shm_rmid_forced': '1' },
  });
  const id = await runp(cfg);
  t.regex(id, /^[0-9a-f]{64}$/);
  const ins = await inspectp(id);
  t.is(ins.status.state, 'SANDBOX_READY');
  t.is(ins.status.labels.pod, (cfg.metadata as { name: string }).name);
  t.is(ins.status.linux.namespaces.options.network, 'POD');
  const ip = ins.status.network.ip;
  const [net16] = h.subnet.split('.').slice(1, 2);
  t.true(ip.startsWith(`10.${net16}.`), `${ip} in ${h.subnet}`);
  await t.notThrowsAsync(runOk('busybox', ['ping', '-c1', '-W2', ip], { timeoutMs: 10_000 }));

  const ns = ins.info.namespaces;
  t.is((await nsenter([`--uts=${ns.uts}`, 'hostname'])).trim(), `${(cfg.metadata as { name: string }).name}-host`);
  t.is((await nsenter([`--net=${ns.net}`, 'cat', '/proc/sys/net/ipv4/ip_unprivileged_port_start'])).trim(), '0');
  t.is((await nsenter([`--ipc=${ns.ipc}`, 'cat', '/proc/sys/kernel/shm_rmid_forced'])).trim(), '1');
  t.is(readFileSync(ins.info.files.resolvConf, 'utf8'), 'search e2e.svc.cluster.local svc.cluster.local\nnameserver 10.96.0.10\noptions ndots:5\n');
  t.regex(readFileSync(ins.info.files.hosts, 'utf8'), new RegExp(`^${ip.replace(/\./g, '\\.')}\\t`, 'm'));
  t.truthy(ins.info.files.shm);

  const pods = await h.crictlJson<{ items: Array<{ id: string; state: string }> }>(['pods', '-o', 'json', '--label', 'suite=sandbox']);
  t.deepEqual(pods.items.map((p) => [p.id, p.state]), [[id, 'SANDBOX_READY']]);
  t.is((await h.crictlOk(['pods', '-q', '--id', id.slice(0, 10)])).trim(), id);
  // The same request again (a kubelet retry) gets the same sandbox.
  t.is(await runp(cfg), id);

  await h.crictlOk(['stopp', id]);
  t.is((await inspectp(id)).status.state, 'SANDBOX_NOTREADY');
  await h.crictlOk(['stopp', id]);
  t.not((await run('busybox', ['ping', '-c1', '-W1', ip], { timeoutMs: 10_000 })).code, 0);
  await h.crictlOk(['rmp', id]);
  // crictl itself refuses a second rmp (it asks for the status first); the RPC is idempotent
  // (runtime/sandbox/service.test.ts).
  t.is((await h.crictlOk(['pods', '-q'])).trim(), '');
  t.not((await h.crictl(['inspectp', id])).code, 0);
});

test.serial('host network pod: no netns, the host hostname and resolv.conf; net sysctls refused', async (t) => {
  const hostNs = { network: 2, pid: 1, ipc: 2 };
  const id = await runp(podConfig({}, { security_context: { namespace_options: hostNs } }));
  const ins = await inspectp(id);
  t.is(ins.status.state, 'SANDBOX_READY');
  t.is(ins.status.linux.namespaces.options.network, 'NODE');
  t.is(ins.status.network.ip, '');
  t.deepEqual(ins.info.namespaces, {});
  t.is(readFileSync(ins.info.files.hostname, 'utf8').trim(), (await runOk('hostname', [])).stdout.trim());
  t.is(readFileSync(ins.info.files.resolvConf, 'utf8'), readFileSync('/etc/resolv.conf', 'utf8'));
  await removePod(id);

  const bad = await h.crictl(['runp', h.writeJson('hostnet-sysctl.json', podConfig({}, {
    security_context: { namespace_options: hostNs },
    sysctls: { 'net.core.somaxconn': '1024' },
  }))]);
  t.not(bad.code, 0);
  t.regex(bad.stderr, /InvalidArgument/);
  t.regex(bad.stderr, /net\.core\.somaxconn/);
  const notNamespaced = await h.crictl(['runp', h.writeJson('bad-sysctl.json', podConfig({}, { sysctls: { 'kernel.pid_max': '4096' } }))]);
  t.regex(notNamespaced.stderr, /kernel\.pid_max is not namespaced/);
  t.is((await h.crictlOk(['pods', '-q'])).trim(), '');
});

test.serial('a port mapping is reachable on the host port', async (t) => {
  const hostPort = randomInt(30000, 40000);
  const id = await runp(podConfig({ port_mappings: [{ protocol: 0, container_port: 8080, host_port: hostPort }] }));
  const ins = await inspectp(id);
  const www = join(h.dir, `www-${id.slice(0, 8)}`);
  mkdirSync(www, { recursive: true });
  writeFileSync(join(www, 'index.html'), `hello from ${id}\n`);
  let httpd: ChildProcess | undefined;
  try {
    httpd = spawn('nsenter', [`--net=${ins.info.namespaces.net}`, 'busybox', 'httpd', '-f', '-p', '8080', '-h', www], { stdio: 'ignore' });
    const deadline = Date.now() + 5000;
    let res: { status: number; body: string } | undefined;
    while (!res && Date.now() < deadline) {
      res = await httpGet(ins.status.network.ip, 8080).catch(() => undefined);
      if (!res) await sleep(100);
    }
    t.is(res?.body, `hello from ${id}\n`, 'the pod IP serves');
    const viaHostPort = await httpGet(hostIPv4(), hostPort);
    t.is(viaHostPort.body, `hello from ${id}\n`);
  } finally {
    if (httpd?.pid) process.kill(httpd.pid, 'SIGKILL');
    rmSync(www, { recursive: true, force: true });
    await removePod(id);
  }
  const nat = (await runOk('iptables-save', ['-t', 'nat'])).stdout.split('\n').filter((l) => l.includes(`--dport ${hostPort}`));
  t.deepEqual(nat, [], 'the port mapping is gone after stopp');
});

test.serial('a broken CNI config fails RunPodSandbox and leaves nothing behind', async (t) => {
  const broken = join(h.cniConfDir, '00-broken.conflist');
  writeFileSync(broken, JSON.stringify({
    cniVersion: '1.0.0',
    name: 'broken',
    plugins: [{ type: 'bridge', bridge: `${h.bridge}x`, ipam: { type: 'host-local', ranges: [[{ subnet: 'not-a-subnet' }]], dataDir: join(h.dir, 'cni', 'ipam-broken') } }],
  }));
  try {
    const r = await h.crictl(['runp', h.writeJson('broken-cni.json', podConfig())]);
    t.not(r.code, 0);
    t.regex(r.stderr, /bridge|host-local|subnet/i);
  } finally {
    rmSync(broken, { force: true });
    await run('ip', ['link', 'del', `${h.bridge}x`], { timeoutMs: 10_000 });
  }
  t.is((await h.crictlOk(['pods', '-q'])).trim(), '');
  const mounts = readFileSync('/proc/self/mountinfo', 'utf8').split('\n').filter((l) => l.includes(h.stateDir) && l.includes('nsfs'));
  t.deepEqual(mounts, []);
  // And the network works again for the next pod.
  const id = await runp(podConfig());
  t.is((await inspectp(id)).status.state, 'SANDBOX_READY');
  await removePod(id);
});

test.serial('pid POD: an infra process holds the pod pid namespace and goes with stopp', async (t) => {
  const id = await runp(podConfig({}, { security_context: { namespace_options: { network: 0, pid: 0, ipc: 0 } } }));
  const ins = await inspectp(id);
  t.is(ins.status.linux.namespaces.options.pid, 'POD');
  const pidNs = (ins.info.namespaces as { pid?: string }).pid ?? '';
  t.regex(pidNs, /^\/proc\/\d+\/ns\/pid$/);
  const pid = Number(pidNs.split('/')[2]);
  t.regex(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /catatonit/);
  t.regex(readFileSync(`/proc/${pid}/status`, 'utf8'), /^NSpid:\s+\d+\s+1$/m);
  await h.crictlOk(['stopp', id]);
  t.throws(() => process.kill(pid, 0));
  await h.crictlOk(['rmp', id]);
});

test.serial('cgroup_parent: the pod cgroup is created with its limits and removed with the pod', async (t) => {
  const top = `corral-e2e-pods-${randomInt(1e9)}`;
  const parent = `/${top}/burstable/pod${randomInt(1e9)}`;
  const id = await runp(podConfig({}, { cgroup_parent: parent, resources: { memory_limit_in_bytes: 128 << 20, cpu_shares: 512 }, overhead: { memory_limit_in_bytes: 1 << 20 } }));
  const v2 = existsSync('/sys/fs/cgroup/cgroup.controllers');
  const limit = v2 ? join('/sys/fs/cgroup', parent, 'memory.max') : join('/sys/fs/cgroup/memory', parent, 'memory.limit_in_bytes');
  t.is(readFileSync(limit, 'utf8').trim(), String((128 << 20) + (1 << 20)));
  const info = await h.crictlJson<{ info: { cgroup: { parent: string; createdByCorral: boolean } } }>(['inspectp', id]);
  t.deepEqual(info.info.cgroup, { parent, path: parent, createdByCorral: true });
  await removePod(id);
  t.false(existsSync(v2 ? join('/sys/fs/cgroup', top) : join('/sys/fs/cgroup/memory', top)));
});

test.serial('kill -9 of the daemon: the pod is READY again with its IP; stopp and rmp clean everything', async (t) => {
  const id = await runp(podConfig());
  const ip = (await inspectp(id)).status.network.ip;
  await h.stopDaemon('SIGKILL');
  await h.startDaemon();
  const ins = await inspectp(id);
  t.is(ins.status.state, 'SANDBOX_READY');
  t.is(ins.status.network.ip, ip);
  await t.notThrowsAsync(runOk('busybox', ['ping', '-c1', '-W2', ip], { timeoutMs: 10_000 }));
  await removePod(id);
  t.is((await h.crictlOk(['pods', '-q'])).trim(), '');
});
