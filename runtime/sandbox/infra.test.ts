import test from 'ava';
import { execFile } from 'node:child_process';
import { existsSync, promises as fs, readFileSync, readlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { defaultConfig } from '../config.js';
import { detectCgroups } from '../cgroups/detect.js';
import { linux } from '../linux/syscalls.js';
import { OciRuntimes } from '../oci/runtime.js';
import { silentLogger } from '../util/log.js';
import { InvalidArgumentError } from '../errors.js';
import { OciInfraRunner, infraCgroupsPath, infraOciSpec } from './infra.js';
import { SandboxService, type SandboxConfig } from './service.js';
import type { InfraSpec } from './ports.js';
import { leftovers } from './testing.js';

const run = promisify(execFile);

function spec(over: Partial<InfraSpec> = {}): InfraSpec {
  return {
    podId: 'p1', command: ['/usr/bin/catatonit', '-P'], runtimeHandler: 'crun',
    namespaces: { net: '/run/x/net', uts: '/run/x/uts' }, cgroupParent: '', hostname: 'h',
    labels: {}, annotations: {}, logDirectory: '', securityContext: null, ...over,
  };
}

test('infraOciSpec: new pid and mount namespaces, joins only the pinned ones, host binary read-only', (t) => {
  const s = infraOciSpec(spec(), '/corral-infra-p1') as { process: { args: string[]; capabilities: { bounding: string[] } }; mounts: Array<{ destination: string; source: string; options: string[] }>; linux: { namespaces: unknown[]; cgroupsPath: string }; root: { readonly: boolean } };
  t.deepEqual(s.linux.namespaces, [{ type: 'pid' }, { type: 'mount' }, { type: 'network', path: '/run/x/net' }, { type: 'uts', path: '/run/x/uts' }]);
  t.deepEqual(s.process.args, ['/usr/bin/catatonit', '-P']);
  t.deepEqual(s.process.capabilities.bounding, []);
  t.true(s.root.readonly);
  const bin = s.mounts.find((m) => m.destination === '/usr/bin/catatonit')!;
  t.is(bin.source, '/usr/bin/catatonit');
  t.true(bin.options.includes('ro'));
  t.is(s.linux.cgroupsPath, '/corral-infra-p1');
  t.throws(() => infraOciSpec(spec({ command: ['catatonit'] }), '/x'), { instanceOf: InvalidArgumentError });
});

test('infraCgroupsPath: below the pod cgroup in the driver spelling', (t) => {
  t.is(infraCgroupsPath('p', '/kubepods/burstable/pod1', 'cgroupfs'), '/kubepods/burstable/pod1/corral-infra-p');
  t.is(infraCgroupsPath('p', '', 'cgroupfs'), '/corral-infra-p');
  t.is(infraCgroupsPath('p', 'kubepods-pod1.slice', 'systemd'), 'kubepods-pod1.slice:corral:infra-p');
  t.is(infraCgroupsPath('p', '', 'systemd'), 'system.slice:corral:infra-p');
});

const canRun = process.getuid?.() === 0 && existsSync('/usr/bin/catatonit') && existsSync('/usr/bin/conmon') && existsSync('/usr/bin/nsenter');
const rtest = canRun ? test.serial : test.skip;

async function mountsUnder(dir: string): Promise<string[]> {
  const info = await fs.readFile('/proc/self/mountinfo', 'utf8');
  return info.split('\n').map((l) => l.split(' ')[4] ?? '').filter((m) => m === dir || m.startsWith(`${dir}/`));
}

function alive(pid: number): boolean {
  try { process.kill(pid, 0); return true; } catch { return false; }
}

for (const handler of ['crun', 'runc'] as const) {
  rtest(`pid POD with ${handler}: catatonit holds the pod pid namespace in the pod's namespaces; stop and remove leave nothing`, async (t) => {
    const base = await fs.mkdtemp(join(tmpdir(), 'corral-infra-'));
    const config = defaultConfig();
    config.root_dir = join(base, 'root');
    config.state_dir = join(base, 'run');
    config.runtimes = {
      crun: { path: '/usr/bin/crun', root: join(base, 'run', 'crun'), options: [] },
      runc: { path: '/usr/sbin/runc', root: join(base, 'run', 'runc'), options: [] },
    };
    const cgroups = await detectCgroups('cgroupfs');
    const logger = silentLogger();
    const runtimes = await OciRuntimes.create(config, cgroups, logger);
    const infra = new OciInfraRunner({ config, runtimes, cgroups, logger });
    const svc = await SandboxService.create({ config, logger, syscalls: linux, cgroups, infra });
    t.teardown(async () => {
      await svc.close();
      for (const m of (await mountsUnder(base)).reverse()) await run('umount', ['-l', m]).catch(() => undefined);
      await fs.rm(base, { recursive: true, force: true });
    });
    const cfg: SandboxConfig = {
      metadata: { name: `shared-pid-${handler}`, uid: 'u1', namespace: 'it', attempt: 0 },
      hostname: 'shared', log_directory: '', dns_config: null, port_mappings: [], labels: {}, annotations: {},
      linux: {
        cgroup_parent: '', sysctls: {}, overhead: null, resources: null,
        security_context: { namespace_options: { network: 'POD', pid: 'POD', ipc: 'POD', target_id: '', userns_options: null } } as never,
      },
      windows: null,
    };
    const id = await svc.run(cfg, handler);
    const v = svc.get(id);
    t.regex(v.namespaces.pid ?? '', /^\/proc\/\d+\/ns\/pid$/);
    const pid = Number(/\/proc\/(\d+)\//.exec(v.namespaces.pid!)![1]);
    t.regex(readFileSync(`/proc/${pid}/cmdline`, 'utf8'), /catatonit/);
    t.not(readlinkSync(`/proc/${pid}/ns/pid`), readlinkSync('/proc/self/ns/pid'));
    // It sits in the pod's pinned namespaces.
    t.is(readlinkSync(`/proc/${pid}/ns/net`), `net:[${(await fs.stat(v.namespaces.net!)).ino}]`);
    t.is(readlinkSync(`/proc/${pid}/ns/uts`), `uts:[${(await fs.stat(v.namespaces.uts!)).ino}]`);
    // It is pid 1 of its namespace.
    t.regex(readFileSync(`/proc/${pid}/status`, 'utf8'), /^NSpid:\s+\d+\s+1$/m);

    await svc.stop(id);
    t.false(alive(pid));
    await svc.remove(id);
    t.deepEqual(await mountsUnder(base), []);
    t.deepEqual(await leftovers(svc, join(config.state_dir, 'sandboxes')), []);
    const st = await run(config.runtimes[handler]!.path, ['--root', config.runtimes[handler]!.root, 'list']).then((r) => r.stdout, () => '');
    t.false(st.includes(id));
    const cgDirs = cgroups.mode === 'v2' ? [join(cgroups.root, `corral-infra-${id}`)] : cgroups.controllers.map((c) => join(cgroups.root, c, `corral-infra-${id}`));
    for (const d of cgDirs) t.false(existsSync(d), d);
    const conmons = (await run('ps', ['-eo', 'args']).then((r) => r.stdout)).split('\n').filter((l) => l.includes('conmon') && l.includes(id));
    t.deepEqual(conmons, []);
  });
}
