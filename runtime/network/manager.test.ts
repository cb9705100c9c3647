import test from 'ava';
import { promises as fs } from 'node:fs';
import { join } from 'node:path';
import { silentLogger } from '../util/log.js';
import { CancelledError, DeadlineExceededError, FailedPreconditionError } from '../errors.js';
import { NetworkManager } from './manager.js';
import { CniPluginError } from './cni-exec.js';
import { clearCalls, fakePlugin, makeTempDirs, readCalls } from './testutil.js';

const POD = { id: 'a'.repeat(64), name: 'web', namespace: 'default', uid: 'uid-1' };

const resultA = {
  cniVersion: '1.0.0',
  interfaces: [{ name: 'cni0' }, { name: 'eth0', sandbox: '/x' }],
  ips: [{ address: 'fd00::5/64', interface: 1 }, { address: '10.1.0.5/24', interface: 1, gateway: '10.1.0.1' }],
};
const resultB = { ...resultA, dns: { nameservers: ['10.1.0.1'] } };

async function setup(opts: { confName?: string; conf?: unknown; plugins?: Record<string, Parameters<typeof fakePlugin>[3]> } = {}) {
  const t = await makeTempDirs();
  const plugins = opts.plugins ?? { a: { result: resultA }, b: { result: resultB } };
  for (const [name, beh] of Object.entries({ loopback: {}, ipamfake: {}, ...plugins })) await fakePlugin(t.binDir, t.logDir, name, beh);
  const conf = opts.conf ?? {
    cniVersion: '1.0.0',
    name: 'testnet',
    plugins: [
      { type: 'a', ipam: { type: 'ipamfake' } },
      { type: 'b', capabilities: { portMappings: true, ipRanges: true, bandwidth: true, dns: true } },
    ],
  };
  await fs.writeFile(join(t.confDir, opts.confName ?? '10-test.conflist'), JSON.stringify(conf));
  const mgr = await NetworkManager.create({ config: t.config, logger: silentLogger(), routeFile: join(t.base, 'no-routes') });
  return { ...t, mgr };
}

const setUpReq = (netnsPath = '/nonexistent/netns') => ({
  ...POD,
  netnsPath,
  portMappings: [
    { protocol: 'TCP', container_port: 80, host_port: 8080 },
    { protocol: 'UDP', container_port: 53, host_port: 5353, host_ip: '127.0.0.1' },
    { container_port: 9000, host_port: 0 },
  ],
  annotations: {},
});

test('ADD chains prevResult through the list, with CNI env and loopback on lo', async (t) => {
  const s = await setup();
  const res = await s.mgr.setUpPod(setUpReq());
  t.deepEqual(res.ips, ['10.1.0.5', 'fd00::5']);
  t.deepEqual(res.result, resultB);
  t.deepEqual(res.timings.map((x) => x.plugin).sort(), ['a', 'b', 'loopback']);

  const calls = await readCalls(s.logDir);
  const main = calls.filter((c) => c.plugin !== 'loopback');
  t.deepEqual(main.map((c) => c.plugin), ['a', 'b']);
  const [a, b] = main as [typeof main[0], typeof main[0]];
  t.is(a.stdin.prevResult, undefined);
  t.deepEqual(b.stdin.prevResult, resultA);
  t.is(a.stdin.name, 'testnet');
  t.is(a.stdin.cniVersion, '1.0.0');
  t.is(a.stdin.runtimeConfig, undefined);
  for (const c of main) {
    t.is(c.env.CNI_COMMAND, 'ADD');
    t.is(c.env.CNI_CONTAINERID, POD.id);
    t.is(c.env.CNI_NETNS, '/nonexistent/netns');
    t.is(c.env.CNI_IFNAME, 'eth0');
    t.is(c.env.CNI_ARGS, `IgnoreUnknown=1;K8S_POD_NAMESPACE=default;K8S_POD_NAME=web;K8S_POD_INFRA_CONTAINER_ID=${POD.id};K8S_POD_UID=uid-1`);
    t.is(c.env.CNI_PATH, s.config.cni.bin_dirs.join(':'));
  }
  t.deepEqual(b.stdin.runtimeConfig, {
    portMappings: [
      { hostPort: 8080, containerPort: 80, protocol: 'tcp' },
      { hostPort: 5353, containerPort: 53, protocol: 'udp', hostIP: '127.0.0.1' },
    ],
  });
  const lo = calls.find((c) => c.plugin === 'loopback')!;
  t.is(lo.env.CNI_IFNAME, 'lo');
  t.is(lo.env.CNI_COMMAND, 'ADD');
  t.is(lo.stdin.name, 'cni-loopback');

  const cached = await s.mgr.cachedResult(POD.id);
  t.deepEqual(cached?.ips, ['10.1.0.5', 'fd00::5']);
});

test('DEL runs in reverse with the cached result and config, after a restart and a config change', async (t) => {
  const s = await setup();
  await s.mgr.setUpPod(setUpReq());
  await clearCalls(s.logDir);
  // A different network appears in the conf dir, and the daemon restarts.
  await fs.writeFile(join(s.confDir, '01-other.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'other', plugins: [{ type: 'c' }] }));
  const mgr2 = await NetworkManager.create({ config: s.config, logger: silentLogger() });
  t.deepEqual(await mgr2.recordedPods(), [{ id: POD.id, name: 'web', namespace: 'default', uid: 'uid-1', netnsPath: '/nonexistent/netns' }]);
  await mgr2.tearDownPod({ ...POD });
  const calls = await readCalls(s.logDir);
  t.deepEqual(calls.map((c) => c.plugin), ['b', 'a']);
  for (const c of calls) {
    t.is(c.env.CNI_COMMAND, 'DEL');
    t.is(c.env.CNI_IFNAME, 'eth0');
    // The recorded netns path is not a namespace: DEL runs without one.
    t.is(c.env.CNI_NETNS, '');
    t.deepEqual(c.stdin.prevResult, resultB);
    t.is(c.stdin.name, 'testnet');
  }
  t.deepEqual((calls[0]!.stdin.runtimeConfig as { portMappings: unknown[] }).portMappings.length, 2);
  t.deepEqual(await mgr2.recordedPods(), []);
  t.is(await mgr2.cachedResult(POD.id), undefined);

  // Idempotent: nothing recorded, nothing run.
  await clearCalls(s.logDir);
  await mgr2.tearDownPod({ ...POD });
  t.deepEqual(await readCalls(s.logDir), []);
});

test('a plugin error comes back with its CNI code, msg and details, and ADD is undone', async (t) => {
  const s = await setup({ plugins: { a: { result: resultA }, b: { error: { code: 11, msg: 'no IP addresses available', details: 'range 10.1.0.0/24 is full' }, failOn: 'ADD' } } });
  const err = await t.throwsAsync(s.mgr.setUpPod(setUpReq()));
  t.true(err instanceof CniPluginError);
  const e = err as CniPluginError;
  t.is(e.cniCode, 11);
  t.is(e.cniMsg, 'no IP addresses available');
  t.is(e.cniDetails, 'range 10.1.0.0/24 is full');
  t.regex(e.message, /plugin type="b" name="testnet" failed \(add\): no IP addresses available: range 10.1.0.0\/24 is full \(CNI error code 11\)/);
  const calls = await readCalls(s.logDir);
  const dels = calls.filter((c) => c.env.CNI_COMMAND === 'DEL');
  t.deepEqual(dels.map((c) => c.plugin), ['b', 'a']);
  // What a allocated is handed to DEL.
  t.deepEqual(dels[1]!.stdin.prevResult, resultA);
  t.is(await s.mgr.cachedResult(POD.id), undefined);
  t.deepEqual(await s.mgr.recordedPods(), []);
});

test('a cache file of an earlier daemon (results/<id>.json) is read after an upgrade: DEL works from it and removes it', async (t) => {
  const s = await setup();
  await s.mgr.setUpPod(setUpReq());
  const rec = (await s.mgr.recordedPods())[0]!;
  t.is(rec.id, POD.id);
  // The same record as the earlier daemon kept it: a file of its own, no log.
  const cached = await s.mgr.cachedResult(POD.id);
  s.mgr.close();
  const logged = (s.mgr as unknown as { records: { get(id: string): { status: unknown } | undefined } }).records.get(POD.id)!.status;
  await fs.rm(join(s.config.cni.cache_dir, 'records'), { recursive: true });
  await fs.mkdir(join(s.config.cni.cache_dir, 'results'), { recursive: true });
  await fs.writeFile(join(s.config.cni.cache_dir, 'results', `${POD.id}.json`), JSON.stringify(logged));
  await clearCalls(s.logDir);

  const mgr2 = await NetworkManager.create({ config: s.config, logger: silentLogger() });
  t.deepEqual(await mgr2.recordedPods(), [rec]);
  t.deepEqual(await mgr2.cachedResult(POD.id), cached);
  await mgr2.tearDownPod({ ...POD });
  t.deepEqual((await readCalls(s.logDir)).map((c) => c.plugin), ['b', 'a']);
  t.deepEqual(await fs.readdir(join(s.config.cni.cache_dir, 'results')), []);
  t.deepEqual(await mgr2.recordedPods(), []);
});

test('a plugin without a CNI error object reports its stderr and exit status; failures are counted', async (t) => {
  const s = await setup({ plugins: { a: { stderr: 'boom: something broke', failOn: 'ADD' }, b: {} } });
  const counted: string[] = [];
  const mgr = await NetworkManager.create({ config: s.config, logger: silentLogger(), cniErrors: { inc: (l) => counted.push(l.command) } });
  const err = await t.throwsAsync(mgr.setUpPod(setUpReq()));
  t.regex(err!.message, /plugin type="a" name="testnet" failed \(add\): exit status 2: boom: something broke/);
  t.deepEqual(counted, ['add']);
});

test('a failing DEL keeps the record so the next teardown retries', async (t) => {
  const s = await setup({ plugins: { a: { result: resultA }, b: { error: { code: 999, msg: 'iptables busy' }, failOn: 'DEL' } } });
  await s.mgr.setUpPod(setUpReq());
  await t.throwsAsync(s.mgr.tearDownPod({ ...POD }), { message: /iptables busy/ });
  t.truthy(await s.mgr.cachedResult(POD.id));
  await fakePlugin(s.binDir, s.logDir, 'b', { result: resultB });
  await s.mgr.tearDownPod({ ...POD });
  t.is(await s.mgr.cachedResult(POD.id), undefined);
});

test('CHECK runs every plugin in order with the cached result', async (t) => {
  const s = await setup();
  await s.mgr.setUpPod(setUpReq());
  await clearCalls(s.logDir);
  // CHECK needs a real network namespace path; our own process's netns will do.
  await s.mgr.checkPod({ ...POD, netnsPath: '/proc/self/ns/net' });
  const calls = (await readCalls(s.logDir)).filter((c) => c.plugin !== 'loopback');
  t.deepEqual(calls.map((c) => [c.plugin, c.env.CNI_COMMAND]), [['a', 'CHECK'], ['b', 'CHECK']]);
  t.deepEqual(calls[0]!.stdin.prevResult, resultB);
  await t.throwsAsync(s.mgr.checkPod({ ...POD, id: 'b'.repeat(64) }), { message: /has no network/ });
});

test('runtimeConfig: ipRanges from the pod CIDR, bandwidth from annotations, dns', async (t) => {
  const s = await setup();
  s.mgr.setPodCidr('10.244.1.0/24');
  await s.mgr.setUpPod({
    ...setUpReq(),
    portMappings: [],
    annotations: { 'kubernetes.io/ingress-bandwidth': '10M', 'kubernetes.io/egress-bandwidth': '1Mi' },
    dns: { servers: ['10.96.0.10'], searches: ['default.svc.cluster.local'], options: ['ndots:5'] },
  });
  const b = (await readCalls(s.logDir)).find((c) => c.plugin === 'b')!;
  t.deepEqual(b.stdin.runtimeConfig, {
    portMappings: [],
    ipRanges: [[{ subnet: '10.244.1.0/24' }]],
    bandwidth: { ingressRate: 10_000_000, ingressBurst: 4294967295, egressRate: 1048576, egressBurst: 4294967295 },
    dns: { servers: ['10.96.0.10'], searches: ['default.svc.cluster.local'], options: ['ndots:5'] },
  });
});

test('the first config of the conf dir in lexical order is used; a .conf is a one-plugin list', async (t) => {
  const s = await setup({ confName: '20-later.conflist' });
  await fs.writeFile(join(s.confDir, '10-single.conf'), JSON.stringify({ cniVersion: '0.4.0', name: 'single', type: 'a', ipam: { type: 'ipamfake' } }));
  await fs.writeFile(join(s.confDir, '00-ignored.txt'), 'not a config');
  const res = await s.mgr.setUpPod(setUpReq());
  t.deepEqual(res.ips, ['10.1.0.5', 'fd00::5']);
  const calls = (await readCalls(s.logDir)).filter((c) => c.plugin !== 'loopback');
  t.deepEqual(calls.map((c) => c.plugin), ['a']);
  t.is(calls[0]!.stdin.name, 'single');
  t.is(calls[0]!.stdin.cniVersion, '0.4.0');
  t.deepEqual(calls[0]!.stdin.ipam, { type: 'ipamfake' });
});

test('status: ready, broken config, missing plugin', async (t) => {
  const s = await setup();
  t.deepEqual(await s.mgr.status(), { ready: true, reason: '', message: '' });
  await fs.rm(join(s.binDir, 'ipamfake'));
  let st = await s.mgr.status();
  t.false(st.ready);
  t.is(st.reason, 'NetworkPluginNotReady');
  t.regex(st.message, /plugin ipamfake not found/);
  await fs.writeFile(join(s.confDir, '05-broken.conflist'), '{"name": "x", ');
  st = await s.mgr.status();
  t.false(st.ready);
  t.regex(st.message, /05-broken.conflist: invalid JSON/);
  await t.throwsAsync(s.mgr.setUpPod(setUpReq()), { instanceOf: FailedPreconditionError, message: /05-broken/ });
});

test('a missing plugin fails ADD before anything runs', async (t) => {
  const s = await setup();
  await fs.rm(join(s.binDir, 'b'));
  await t.throwsAsync(s.mgr.setUpPod(setUpReq()), { instanceOf: FailedPreconditionError, message: /CNI plugin "b" not found/ });
  t.deepEqual(await readCalls(s.logDir), []);
});

test('default config: written under the root dir on a subnet free of host routes, then used', async (t) => {
  const s = await makeTempDirs();
  for (const p of ['loopback', 'bridge', 'host-local']) await fakePlugin(s.binDir, s.logDir, p, { result: resultA });
  const routeFile = join(s.base, 'route');
  // 10.88.0.0/16 is taken by a host route on eth1; the default route must not count.
  await fs.writeFile(routeFile, [
    'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
    'eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0',
    'eth1\t0000580A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0',
  ].join('\n'));
  const mgr = await NetworkManager.create({ config: s.config, logger: silentLogger(), routeFile });
  const file = join(s.config.root_dir, 'cni', 'net.d', '10-corral.conflist');
  const conf = JSON.parse(await fs.readFile(file, 'utf8'));
  t.is(conf.name, 'corral');
  t.deepEqual(conf.plugins.map((p: { type: string }) => p.type), ['bridge', 'portmap']);
  t.is(conf.plugins[0].bridge, 'corral0');
  t.true(conf.plugins[0].isGateway);
  t.true(conf.plugins[0].ipMasq);
  t.deepEqual(conf.plugins[0].ipam.ranges, [[{ subnet: '10.89.0.0/16' }]]);
  t.deepEqual(conf.plugins[1].capabilities, { portMappings: true });

  let st = await mgr.status();
  t.false(st.ready);
  t.regex(st.message, /portmap not found/);
  await fakePlugin(s.binDir, s.logDir, 'portmap');
  st = await mgr.status();
  t.true(st.ready, st.message);
  const res = await mgr.setUpPod(setUpReq());
  t.deepEqual(res.ips, ['10.1.0.5', 'fd00::5']);
  const calls = await readCalls(s.logDir);
  const pm = calls.find((c) => c.plugin === 'portmap')!;
  t.deepEqual(pm.stdin.prevResult, resultA);
  t.is(calls.find((c) => c.plugin === 'bridge')!.stdin.runtimeConfig, undefined);
  // With a pod CIDR from UpdateRuntimeConfig, the default network allocates from it.
  mgr.setPodCidr('10.244.3.0/24');
  await mgr.setUpPod({ ...setUpReq(), id: 'd'.repeat(64) });
  const br = (await readCalls(s.logDir)).filter((c) => c.plugin === 'bridge').pop()!;
  t.deepEqual((br.stdin.ipam as { ranges: unknown }).ranges, [[{ subnet: '10.244.3.0/24' }]]);
  t.is(br.stdin.runtimeConfig, undefined);
  // After a restart the pod CIDR is still known (the kubelet does not send it again).
  await new Promise((r) => setTimeout(r, 100));
  const mgr2 = await NetworkManager.create({ config: s.config, logger: silentLogger(), routeFile });
  await mgr2.setUpPod({ ...setUpReq(), id: 'e'.repeat(64) });
  const br2 = (await readCalls(s.logDir)).filter((c) => c.plugin === 'bridge').pop()!;
  t.deepEqual((br2.stdin.ipam as { ranges: unknown }).ranges, [[{ subnet: '10.244.3.0/24' }]]);

  // A config dropped into the conf dir later wins over the default.
  await fs.writeFile(join(s.confDir, '99-late.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'late', plugins: [{ type: 'nope' }] }));
  st = await mgr.status();
  t.false(st.ready);
  t.regex(st.message, /"late".*nope not found/);
});

test('a hung plugin times out; an aborted RPC cancels it', async (t) => {
  const s = await makeTempDirs();
  await fakePlugin(s.binDir, s.logDir, 'loopback');
  await fakePlugin(s.binDir, s.logDir, 'slow', { sleepSeconds: 5, sleepOn: 'ADD' });
  await fs.writeFile(join(s.confDir, '10.conflist'), JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'slow' }] }));
  const mgr = await NetworkManager.create({ config: s.config, logger: silentLogger(), pluginTimeoutMs: 300 });
  // Without the timeout the plugin would succeed after 5 s; the error alone proves it fired.
  await t.throwsAsync(mgr.setUpPod(setUpReq()), { instanceOf: DeadlineExceededError, message: /timed out after 300 ms/ });

  const mgr2 = await NetworkManager.create({ config: s.config, logger: silentLogger(), pluginTimeoutMs: 10_000 });
  const ac = new AbortController();
  setTimeout(() => ac.abort(), 200);
  await t.throwsAsync(mgr2.setUpPod({ ...setUpReq(), id: 'c'.repeat(64), signal: ac.signal }), { instanceOf: CancelledError });
});
