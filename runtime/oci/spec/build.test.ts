import test from 'ava';
import { execFile, spawn } from 'node:child_process';
import { copyFile, link, mkdir, mkdtemp, open, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { detectCgroups } from '../../cgroups/detect.js';
import type { LinuxContainerSecurityContext__Output } from '../../../proto/gen/runtime/v1/LinuxContainerSecurityContext.js';
import type { LinuxContainerResources__Output } from '../../../proto/gen/runtime/v1/LinuxContainerResources.js';
import type { Mount__Output } from '../../../proto/gen/runtime/v1/Mount.js';
import { ALL_CAPABILITIES, ANNOTATION, buildContainerSpec, hostSpecDeps } from './index.js';
import { containerConfig, fakeDeps, mountDefaults, specInput } from './fixtures.js';

const run = promisify(execFile);

async function busyboxRootfs(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'corral-spec-'));
  const rootfs = join(dir, 'rootfs');
  for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp', 'data']) await mkdir(join(rootfs, d), { recursive: true });
  await copyFile('/bin/busybox', join(rootfs, 'bin/busybox'));
  // Hard links, not symlinks: masking one applet must not mask busybox itself.
  for (const applet of ['sh', 'true', 'echo', 'id', 'cat', 'grep', 'ls', 'touch', 'wc', 'chmod', 'unshare']) await link(join(rootfs, 'bin/busybox'), join(rootfs, 'bin', applet));
  await writeFile(join(rootfs, 'etc/passwd'), 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000::/tmp:/bin/sh\n');
  await writeFile(join(rootfs, 'etc/group'), 'root:x:0:\napp:x:1000:\nextra:x:2000:app\n');
  return dir;
}

test('build: a whole spec with fake host deps', async (t) => {
  const dir = await busyboxRootfs();
  try {
    const input = specInput({
      rootfs: join(dir, 'rootfs'),
      config: containerConfig(
        { command: ['/bin/sh', '-c', 'true'], envs: [{ key: 'K', value: Buffer.from('v') }], annotations: { 'example.com/a': 'b' },
          mounts: [mountDefaults({ container_path: '/data', host_path: '/data', propagation: 'PROPAGATION_BIDIRECTIONAL' })] },
        { run_as_username: 'app', supplemental_groups: ['3000'], seccomp: { profile_type: 'RuntimeDefault', localhost_ref: '' } },
        { memory_limit_in_bytes: '1048576', oom_score_adj: '-997' },
      ),
      hostCaps: ALL_CAPABILITIES.filter((c) => c !== 'CAP_SYS_RESOURCE'),
    });
    const r = await buildContainerSpec(input, fakeDeps({ '/data': { kind: 'dir' } }));
    t.deepEqual(r.user, { uid: 1000, gid: 1000, additionalGids: [1000, 2000, 3000], username: 'app' });
    t.deepEqual(r.spec.process.user, { uid: 1000, gid: 1000, additionalGids: [1000, 2000, 3000] });
    t.deepEqual(r.hostPropagation, [{ path: '/data', mode: 'shared' }]);
    t.is(r.spec.process.oomScoreAdj, 0);
    t.true(r.warnings.some((w) => /oom_score_adj -997 raised to 0/.test(w)));
    t.is(r.spec.root.path, join(dir, 'rootfs'));
    t.is(r.spec.hostname, 'pod-host');
    t.is(r.spec.linux.cgroupsPath, '/kubepods/pod1/c1');
    t.truthy(r.spec.linux.seccomp);
    t.is(r.spec.annotations[ANNOTATION.sandboxId], 's1');
    t.is(r.spec.annotations[ANNOTATION.containerType], 'container');
    t.is(r.spec.annotations['example.com/a'], 'b');
    t.true(r.spec.process.env.includes('K=v'));
    t.deepEqual(JSON.parse(JSON.stringify(r.spec)), r.spec, 'plain JSON');
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

const isRoot = process.getuid?.() === 0;
const RUNC = '/usr/sbin/runc';

/** Runs the generated spec with the real runc; returns its stdout. */
async function runWithRunc(name: string, sc: Partial<LinuxContainerSecurityContext__Output>, res: Partial<LinuxContainerResources__Output> | undefined, script: string, mounts: Array<Partial<Mount__Output>> = []): Promise<string> {
  const dir = await busyboxRootfs();
  const id = `corral-spectest-${name}-${process.pid}`;
  const stateRoot = join(dir, 'runc-state');
  try {
    const cg = await detectCgroups('cgroupfs');
    await writeFile(join(dir, 'hosts'), '127.0.0.1 localhost\n');
    await writeFile(join(dir, 'shared.txt'), 'from-the-host\n');
    const base = specInput();
    const r = await buildContainerSpec({
      ...base,
      containerId: id,
      rootfs: join(dir, 'rootfs'),
      config: containerConfig({ command: ['/bin/sh', '-c', script], mounts: mounts.map(mountDefaults) }, sc, res),
      // The host's network, IPC and UTS namespaces: nothing to pin for this test.
      sandbox: { ...base.sandbox, namespaces: {}, files: { hosts: join(dir, 'hosts') } },
      cgroupsPath: `/${id}`,
      cgroupMode: cg.mode,
      hostCaps: undefined,
    }, hostSpecDeps());
    await writeFile(join(dir, 'config.json'), JSON.stringify(r.spec, null, 2));
    const { stdout } = await run(RUNC, ['--root', stateRoot, 'run', '--bundle', dir, id], { timeout: 30_000 });
    return stdout;
  } finally {
    await run(RUNC, ['--root', stateRoot, 'delete', '--force', id]).catch(() => undefined);
    await rm(dir, { recursive: true, force: true });
  }
}

const rootTest = isRoot ? test.serial : test.skip;

rootTest('runc runs the generated spec: user, seccomp, caps, mounts, limits', async (t) => {
  const dir0 = await mkdtemp(join(tmpdir(), 'corral-spec-src-'));
  try {
    await writeFile(join(dir0, 'f'), 'host-file\n');
    await run('chmod', ['755', dir0]); // mkdtemp makes it 0700; the container runs as uid 1000
    const out = await runWithRunc('plain',
      { run_as_user: { value: '1000' }, seccomp: { profile_type: 'RuntimeDefault', localhost_ref: '' }, readonly_rootfs: true, no_new_privs: true },
      { memory_limit_in_bytes: String(64 * 1024 * 1024), cpu_shares: '512', oom_score_adj: '-997' },
      'echo hello-from-runc; id; grep -E "^(Seccomp|NoNewPrivs|CapBnd):" /proc/self/status; cat /data/f; cat /etc/hosts; touch /x 2>&1 || echo ro-ok; echo timer_list=$(cat /proc/timer_list | wc -c) firmware=$(ls /sys/firmware | wc -l); ls /proc/sys >/dev/null && echo proc-ok; unshare -U true 2>&1 || echo unshare-denied',
      [{ container_path: '/data', host_path: dir0, readonly: true }]);
    t.regex(out, /hello-from-runc/);
    t.regex(out, /uid=1000\(app\) gid=1000\(app\) groups=1000\(app\),2000\(extra\)/);
    t.regex(out, /Seccomp:\s+2/);
    t.regex(out, /NoNewPrivs:\s+1/);
    t.regex(out, /CapBnd:\s+00000000a80425fb/);
    t.regex(out, /host-file/);
    t.regex(out, /127\.0\.0\.1 localhost/);
    t.regex(out, /ro-ok/);
    t.regex(out, /proc-ok/);
    t.regex(out, /timer_list=0 firmware=0/, 'masked paths');
    t.regex(out, /unshare-denied/, 'seccomp refuses new user namespaces');
  } finally {
    await rm(dir0, { recursive: true, force: true });
  }
});

rootTest('runc runs the generated spec: privileged', async (t) => {
  const out = await runWithRunc('priv', { privileged: true }, undefined, 'grep -E "^(Seccomp|CapEff):" /proc/self/status; ls /dev/null /dev/full && echo devs-ok; echo timer_list=$(cat /proc/timer_list | wc -c) firmware=$(ls /sys/firmware | wc -l)');
  t.regex(out, /Seccomp:\s+0/);
  t.regex(out, /devs-ok/);
  t.regex(out, /timer_list=[1-9]\d* firmware=[1-9]/, 'nothing masked');
});

/**
 * critest's mount propagation specs with the generated spec under runc: a host mount made
 * under an rshared source shows up in the container for HOST_TO_CONTAINER and
 * BIDIRECTIONAL, and a mount made in the container shows up on the host only for
 * BIDIRECTIONAL.
 */
for (const [prop, backToHost] of [['PROPAGATION_HOST_TO_CONTAINER', false], ['PROPAGATION_BIDIRECTIONAL', true], ['PROPAGATION_PRIVATE', false]] as const) {
  rootTest(`runc: mount propagation ${prop}`, async (t) => {
    const dir = await busyboxRootfs();
    for (const applet of ['mount', 'mkdir', 'sleep']) await link(join(dir, 'rootfs/bin/busybox'), join(dir, 'rootfs/bin', applet));
    const id = `corral-spectest-prop-${prop.length}-${process.pid}`;
    const stateRoot = join(dir, 'runc-state');
    const src = join(dir, 'mnt');
    const srcDir = join(dir, 'propagationSrcDir');
    const mounted: string[] = [];
    const sh = (cmd: string, ...args: string[]) => run(cmd, args);
    try {
      await mkdir(join(src, 'propagationMnt'), { recursive: true });
      await mkdir(srcDir, { recursive: true });
      await writeFile(join(srcDir, 'flagFile'), '');
      await sh('mount', '--bind', src, src);
      mounted.push(src);
      await sh('mount', prop === 'PROPAGATION_PRIVATE' ? '--make-rprivate' : '--make-rshared', src);
      const cg = await detectCgroups('cgroupfs');
      const base = specInput();
      const r = await buildContainerSpec({
        ...base, containerId: id, rootfs: join(dir, 'rootfs'),
        config: containerConfig({ command: ['/bin/sleep', '60'], mounts: [mountDefaults({ container_path: '/vol', host_path: src, propagation: prop })] }, { privileged: true }),
        sandbox: { ...base.sandbox, namespaces: {}, files: {} }, cgroupsPath: `/${id}`, cgroupMode: cg.mode, hostCaps: undefined,
      }, hostSpecDeps());
      t.deepEqual(r.hostPropagation, prop === 'PROPAGATION_PRIVATE' ? [] : [{ path: src, mode: prop === 'PROPAGATION_BIDIRECTIONAL' ? 'shared' : 'slave' }]);
      await writeFile(join(dir, 'config.json'), JSON.stringify(r.spec));
      // The detached container keeps its stdio: give it a file, not a pipe someone waits on.
      const out = await open(join(dir, 'out.log'), 'w');
      try {
        const child = spawn(RUNC, ['--root', stateRoot, 'run', '--detach', '--bundle', dir, id], { stdio: ['ignore', out.fd, out.fd] });
        const code = await new Promise<number | null>((res) => child.on('exit', res));
        t.is(code, 0, await readFile(join(dir, 'out.log'), 'utf8'));
      } finally {
        await out.close();
      }

      await sh('mount', '--bind', srcDir, join(src, 'propagationMnt'));
      mounted.unshift(join(src, 'propagationMnt'));
      const seen = (await sh(RUNC, '--root', stateRoot, 'exec', id, 'ls', '-A', '/vol/propagationMnt')).stdout;
      t.is(seen.trim(), prop === 'PROPAGATION_PRIVATE' ? '' : 'flagFile', 'host -> container');

      await sh(RUNC, '--root', stateRoot, 'exec', id, 'sh', '-c', 'mkdir -p /vol/containerMntPoint && mount --bind /etc /vol/containerMntPoint');
      const back = await readdir(join(src, 'containerMntPoint'));
      if (backToHost) mounted.unshift(join(src, 'containerMntPoint'));
      t.is(back.length > 0, backToHost, 'container -> host');
    } finally {
      await run(RUNC, ['--root', stateRoot, 'delete', '--force', id]).catch(() => undefined);
      for (const m of mounted) await run('umount', ['-l', m]).catch(() => undefined);
      await rm(dir, { recursive: true, force: true });
    }
  });
}

// Declared last: serial tests run in declaration order.
rootTest('runc leaves no cgroup behind', async (t) => {
  const cg = await detectCgroups('cgroupfs');
  const dirs = cg.mode === 'v2' ? [cg.root] : cg.controllers.map((c) => join(cg.root, c));
  for (const d of dirs) {
    const left = (await readdir(d).catch(() => [] as string[])).filter((n) => n.startsWith('corral-spectest-'));
    t.deepEqual(left, [], d);
  }
});
