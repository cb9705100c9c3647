/**
 * Root-only: the sandbox service with the real pinner, real mounts, the host's cgroups and
 * runtime/network's NetworkManager running Debian's CNI plugins on a throwaway bridge.
 * Checks what a pod looks like from outside and that stop + remove leave nothing.
 */
import test from 'ava';
import { execFile } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { existsSync, promises as fs } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { defaultConfig } from '../config.js';
import { detectCgroups } from '../cgroups/detect.js';
import { linux } from '../linux/syscalls.js';
import { silentLogger } from '../util/log.js';
import { NetworkManager } from '../network/index.js';
import { InvalidArgumentError } from '../errors.js';
import { SandboxService, type SandboxConfig } from './service.js';
import { leftovers } from './testing.js';

const run = promisify(execFile);
const canRun = process.getuid?.() === 0 && existsSync('/usr/lib/cni/bridge') && existsSync('/usr/bin/nsenter');
const itest = canRun ? test.serial : test.skip;

async function sh(cmd: string, args: string[]): Promise<string> {
  return (await run(cmd, args, { maxBuffer: 16 << 20 })).stdout;
}

async function mountsUnder(dir: string): Promise<string[]> {
  const info = await fs.readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m === dir || m.startsWith(`${dir}/`));
}

async function env(t: { teardown: (fn: () => Promise<void>) => void }) {
  const rand = randomBytes(2).toString('hex');
  const bridge = `csb${rand}`;
  const octet = randomInt(1, 254);
  const base = await fs.mkdtemp(join(tmpdir(), 'corral-sb-it-'));
  const cgroupTop = `/corral-test-${rand}`;
  const config = defaultConfig();
  config.root_dir = join(base, 'root');
  config.state_dir = join(base, 'run');
  config.cni = { conf_dir: join(base, 'net.d'), bin_dirs: ['/usr/lib/cni'], cache_dir: join(base, 'cache') };
  await fs.mkdir(config.cni.conf_dir, { recursive: true });
  await fs.writeFile(join(config.cni.conf_dir, '10-sb.conflist'), JSON.stringify({
    cniVersion: '1.0.0',
    name: `sb${rand}`,
    plugins: [
      { type: 'bridge', bridge, isGateway: true, ipMasq: false, ipam: { type: 'host-local', ranges: [[{ subnet: `10.254.${octet}.0/24` }]], dataDir: join(base, 'ipam') } },
    ],
  }));
  const cgroups = await detectCgroups('cgroupfs');
  const network = await NetworkManager.create({ config, logger: silentLogger() });
  const svc = await SandboxService.create({ config, logger: silentLogger(), syscalls: linux, cgroups, network });
  t.teardown(async () => {
    await svc.close();
    for (const m of (await mountsUnder(base)).reverse()) await run('umount', ['-l', m]).catch(() => undefined);
    await run('ip', ['link', 'del', bridge]).catch(() => undefined);
    const tops = cgroups.mode === 'v2' ? [join(cgroups.root, cgroupTop)] : [...cgroups.controllers, 'unified'].map((c) => join(cgroups.root, c, cgroupTop));
    for (const d of tops) await run('find', [d, '-depth', '-type', 'd', '-exec', 'rmdir', '{}', ';']).catch(() => undefined);
    await fs.rm(base, { recursive: true, force: true });
  });
  return { svc, config, base, cgroups, cgroupTop, rand };
}

function pod(name: string, over: Partial<SandboxConfig['linux']> = {}, nsOpts = { network: 'POD', pid: 'CONTAINER', ipc: 'POD' }): SandboxConfig {
  return {
    metadata: { name, uid: `uid-${name}`, namespace: 'it', attempt: 0 },
    hostname: `${name}-host`,
    log_directory: '',
    dns_config: { servers: ['10.96.0.10'], searches: ['it.svc.cluster.local'], options: ['ndots:5'] },
    port_mappings: [],
    labels: {},
    annotations: {},
    linux: {
      cgroup_parent: '',
      security_context: { namespace_options: { ...nsOpts, target_id: '', userns_options: null } } as never,
      sysctls: {},
      overhead: null,
      resources: null,
      ...over,
    },
    windows: null,
  };
}

itest('a pod: reachable IP, hostname, sysctls, shm and cgroup; stop + remove leave nothing', async (t) => {
  const e = await env(t);
  const cgroupParent = `${e.cgroupTop}/burstable/pod1`;
  const id = await e.svc.run(pod('web', {
    cgroup_parent: cgroupParent,
    sysctls: { 'net.ipv4.ip_unprivileged_port_start': '0', 'kernel.shmmax': '1048576' },
    resources: { memory_limit_in_bytes: String(256 << 20), cpu_shares: '256' } as never,
  }));
  const v = e.svc.get(id);
  t.is(v.state, 'READY');
  t.is(v.ips.length, 1);
  const ip = v.ips[0]!;
  await t.notThrowsAsync(sh('busybox', ['ping', '-c1', '-W2', ip]));
  t.is((await sh('nsenter', [`--uts=${v.namespaces.uts}`, 'hostname'])).trim(), 'web-host');
  t.is((await sh('nsenter', [`--net=${v.namespaces.net}`, 'cat', '/proc/sys/net/ipv4/ip_unprivileged_port_start'])).trim(), '0');
  t.is((await sh('nsenter', [`--ipc=${v.namespaces.ipc}`, 'cat', '/proc/sys/kernel/shmmax'])).trim(), '1048576');
  t.true((await sh('nsenter', [`--net=${v.namespaces.net}`, 'ip', '-o', 'addr'])).includes(`inet ${ip}/24`));
  const shmLine = (await fs.readFile('/proc/self/mountinfo', 'utf8')).split('\n').find((l) => l.split(' ')[4] === v.files.shm);
  t.truthy(shmLine);
  t.regex(shmLine!, / rw,nosuid,nodev,noexec,.* - tmpfs shm .*size=65536k/);
  t.regex(await fs.readFile(v.files.hosts, 'utf8'), new RegExp(`${ip.replace(/\./g, '\\.')}\\tweb-host`));
  if (e.cgroups.mode !== 'v2') {
    t.is((await fs.readFile(join(e.cgroups.root, 'memory', cgroupParent, 'memory.limit_in_bytes'), 'utf8')).trim(), String(256 << 20));
    t.is((await fs.readFile(join(e.cgroups.root, 'cpu', cgroupParent, 'cpu.shares'), 'utf8')).trim(), '256');
    if (e.cgroups.mode === 'hybrid') t.true(existsSync(join(e.cgroups.root, 'unified', cgroupParent)));
  } else {
    t.is((await fs.readFile(join(e.cgroups.root, cgroupParent, 'memory.max'), 'utf8')).trim(), String(256 << 20));
    t.is((await fs.readFile(join(e.cgroups.root, cgroupParent, 'cpu.weight'), 'utf8')).trim(), '10');
  }
  const info = JSON.parse(e.svc.status(id, true).info!.info!);
  t.is(info.namespaces.net, v.namespaces.net);
  t.truthy(info.network.cniResult);

  await e.svc.stop(id);
  t.deepEqual(e.svc.get(id).ips, []);
  t.deepEqual(await mountsUnder(v.files.shm!), []);
  await t.throwsAsync(sh('busybox', ['ping', '-c1', '-W1', ip]));
  await e.svc.remove(id);
  t.deepEqual(await mountsUnder(e.base), []);
  t.deepEqual(await leftovers(e.svc, join(e.config.root_dir, 'sandboxes')), []);
  t.deepEqual(await leftovers(e.svc, join(e.config.state_dir, 'sandboxes')), []);
  const podDirs = e.cgroups.mode === 'v2' ? [join(e.cgroups.root, e.cgroupTop)] : [...e.cgroups.controllers, 'unified'].map((c) => join(e.cgroups.root, c, e.cgroupTop));
  for (const d of podDirs) t.false(existsSync(d), d);
  t.deepEqual(await fs.readdir(join(e.base, 'ipam', `sb${e.rand}`)).then((n) => n.filter((x) => /^\d/.test(x)), () => []), []);
});

itest('host network pod: no netns, host hostname; a refused sysctl undoes everything', async (t) => {
  const e = await env(t);
  const id = await e.svc.run(pod('hostnet', {}, { network: 'NODE', pid: 'CONTAINER', ipc: 'NODE' }));
  const v = e.svc.get(id);
  t.deepEqual(v.namespaces, {});
  t.is(await fs.readFile(v.files.hostname, 'utf8'), `${(await sh('hostname', [])).trim()}\n`);
  await e.svc.remove(id);

  await t.throwsAsync(e.svc.run(pod('bad', { sysctls: { 'net.ipv4.no_such_thing': '1' }, cgroup_parent: `${e.cgroupTop}/bad` })), { instanceOf: InvalidArgumentError, message: /net\.ipv4\.no_such_thing/ });
  t.deepEqual(await mountsUnder(e.base), []);
  t.deepEqual(await leftovers(e.svc, join(e.config.root_dir, 'sandboxes')), []);
  t.deepEqual(await leftovers(e.svc, join(e.config.state_dir, 'sandboxes')), []);
});

itest('restart: a READY pod is READY again with its IP and can be stopped and removed', async (t) => {
  const e = await env(t);
  const id = await e.svc.run(pod('survivor'));
  const ip = e.svc.get(id).ips[0]!;
  await e.svc.close();
  const network = await NetworkManager.create({ config: e.config, logger: silentLogger() });
  const svc2 = await SandboxService.create({ config: e.config, logger: silentLogger(), syscalls: linux, cgroups: e.cgroups, network });
  t.teardown(() => svc2.close());
  t.is(svc2.get(id).state, 'READY');
  t.deepEqual(svc2.get(id).ips, [ip]);
  await t.notThrowsAsync(sh('busybox', ['ping', '-c1', '-W2', ip]));
  await svc2.remove(id);
  t.deepEqual(await mountsUnder(e.base), []);
});
