/**
 * Real containers: busybox through conmon and runc (and crun, with the hybrid workaround
 * where the host needs it), with the real spec builder. Needs root, conmon, runc and
 * busybox-static; skipped otherwise. The image port is a stand-in that builds the rootfs
 * from /bin/busybox with hard links (symlinked applets break when one is masked).
 */
import test from 'ava';
import { promises as fs, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { ContainerService } from './service.js';
import type { ImagePort, SandboxPort, SandboxViewLike } from './ports.js';
import { OciRuntimes } from '../oci/runtime.js';
import { execWithConmon } from '../oci/conmon.js';
import { defaultConfig } from '../config.js';
import { silentLogger } from '../util/log.js';
import { linux } from '../linux/syscalls.js';
import { detectCgroups } from '../cgroups/detect.js';

const BUSYBOX = '/bin/busybox';
const canRun = process.getuid?.() === 0 && existsSync('/usr/bin/conmon') && existsSync('/usr/sbin/runc') && existsSync(BUSYBOX);
const rtest = canRun ? test.serial : test.skip;

const APPLETS = ['sh', 'echo', 'sleep', 'cat', 'ls', 'true', 'false', 'id', 'env', 'trap', 'printf', 'seq'];
const IMAGE = { id: 'sha256:' + '11'.repeat(32), repoTags: ['busybox:test'], repoDigests: [], config: { config: { Env: ['PATH=/bin'], Cmd: ['sh'] } } };

class BusyboxImages implements ImagePort {
  resolve(ref: string) { return ref === 'busybox:test' ? IMAGE : undefined; }
  async prepareRootfs(_id: string, _image: string, target: string) {
    for (const d of ['bin', 'etc', 'proc', 'sys', 'dev', 'tmp']) await fs.mkdir(join(target, d), { recursive: true });
    await fs.writeFile(join(target, 'etc', 'passwd'), 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/sh\n');
    await fs.writeFile(join(target, 'etc', 'group'), 'root:x:0:\nnogroup:x:65534:\n');
    try {
      await fs.link(BUSYBOX, join(target, 'bin', 'busybox'));
    } catch {
      await fs.copyFile(BUSYBOX, join(target, 'bin', 'busybox'));
      await fs.chmod(join(target, 'bin', 'busybox'), 0o755);
    }
    for (const a of APPLETS) await fs.link(join(target, 'bin', 'busybox'), join(target, 'bin', a));
  }
  async releaseRootfs() { /* a plain directory: removed with the container's */ }
  async prepareImageVolume(): Promise<void> { throw new Error('no image volumes here'); }
  async releaseImageVolume() { /* none */ }
  imageVolumeKeys() { return []; }
}

let dir = '';
let svc: ContainerService;
let sandboxes: { pods: Map<string, SandboxViewLike> } & SandboxPort;
let make: () => Promise<ContainerService>;
const created: string[] = [];

test.before(async () => {
  if (!canRun) return;
  dir = await fs.mkdtemp(join(tmpdir(), 'corral-real-'));
  const config = defaultConfig();
  config.root_dir = join(dir, 'lib');
  config.state_dir = join(dir, 'run');
  config.runtimes = {
    runc: { path: '/usr/sbin/runc', root: join(dir, 'run', 'runc'), options: [] },
    crun: { path: '/usr/bin/crun', root: join(dir, 'run', 'crun'), options: [] },
  };
  config.default_runtime = 'runc';
  const cgroups = await detectCgroups('cgroupfs');
  const pods = new Map<string, SandboxViewLike>();
  sandboxes = { pods, get: (id: string) => pods.get(id) };
  for (const handler of ['runc', 'crun']) {
    const id = `${handler}pod`.padEnd(64, '0');
    pods.set(id, {
      id, name: `k8s_POD_${handler}_default_u_0`,
      config: { metadata: { name: handler, namespace: 'default', uid: `u-${handler}`, attempt: 0 }, log_directory: join(dir, 'logs', handler) },
      state: 'READY', namespaces: {}, hostname: 'real', files: {}, cgroupParent: '', runtimeHandler: handler,
    });
  }
  const runtimes = await OciRuntimes.create(config, cgroups, silentLogger());
  make = () => ContainerService.create({ config, logger: silentLogger(), syscalls: linux, images: new BusyboxImages(), sandboxes, cgroups, runtimes });
  svc = await make();
  svc.onEvent((e) => { if (e.type === 'CONTAINER_CREATED_EVENT') created.push(e.containerId); });
});

test.after.always(async () => {
  if (!canRun || !svc) return;
  for (const c of svc.listViews()) await svc.remove(c.id).catch(() => undefined);
  await svc.close();
  await fs.rm(dir, { recursive: true, force: true });
});

function config(name: string, args: string[], extra: Record<string, unknown> = {}) {
  return { metadata: { name, attempt: 0 }, image: { image: 'busybox:test' }, command: args, args: [], log_path: `${name}.log`, labels: {}, annotations: {}, mounts: [], envs: [], ...extra };
}

const waitFor = async (cond: () => boolean | Promise<boolean>, ms = 10_000) => {
  const end = Date.now() + ms;
  while (!(await cond()) && Date.now() < end) await new Promise((r) => setTimeout(r, 25));
  return cond();
};

function diag(id: string, handler: string): string {
  const b = join(dir, 'lib', 'containers', id);
  return execFileSync('sh', ['-c', `(ls -la --time-style=full-iso ${b} ${dir}/run/exits; cat ${b}/conmon.stderr; ${handler} --root ${dir}/run/${handler} state ${id}; ps -ef | grep -v grep | grep ${id.slice(0, 12)}; date) 2>&1 || true`]).toString();
}

const LOG_LINE = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+(Z|[+-]\d\d:\d\d) (stdout|stderr) (F|P) /;

for (const handler of ['runc', 'crun']) {
  rtest(`${handler}: create, start, exit code and CRI log lines`, async (t) => {
    const pod = `${handler}pod`.padEnd(64, '0');
    const id = await svc.create({ pod_sandbox_id: pod, config: config(`exit-${handler}`, ['sh', '-c', 'echo hello; echo oops >&2; printf partial; exit 3']) });
    t.is(svc.get(id).state, 'CREATED');
    t.true(svc.get(id).pid > 0);
    await svc.start(id);
    if (!(await waitFor(() => svc.get(id).state === 'EXITED'))) {
      const b = svc.get(id).bundleDir;
      t.log(diag(id, handler));
    }
    t.is(svc.get(id).state, 'EXITED');
    const st = svc.status(id).status;
    t.is(st.exit_code, 3);
    t.is(st.reason, 'Error');
    const log = await fs.readFile(st.log_path, 'utf8');
    const lines = log.split('\n').filter(Boolean);
    for (const l of lines) t.regex(l, LOG_LINE);
    t.true(lines.some((l) => / stdout F hello$/.test(l)));
    t.true(lines.some((l) => / stderr F oops$/.test(l)));
    t.true(lines.some((l) => / stdout P partial$/.test(l)));
    await svc.remove(id);
    t.true(existsSync(st.log_path), 'the CRI log stays for the kubelet');
    t.false(existsSync(join(dir, 'lib', 'containers', id)));
  });
}

for (const handler of ['runc', 'crun']) {
  rtest(`${handler}: a create the runtime refuses leaves nothing behind`, async (t) => {
    const pod = `${handler}pod`.padEnd(64, '0');
    const before = svc.listViews().length;
    let id = '';
    const off = svc.onEvent((e) => { id = e.containerId; });
    const err = await t.throwsAsync(svc.create({ pod_sandbox_id: pod, config: config(`bad-${handler}`, ['/no/such/binary']) }));
    off();
    if (!err) return;
    t.regex(err.message, /no such|not found|No such file/i);
    t.is(svc.listViews().length, before);
    t.is(id, '', 'no created event');
    await svc.settled();
    const dirs = await fs.readdir(join(dir, 'lib', 'containers'));
    t.deepEqual(dirs.filter((d) => d !== '.trash' && !svc.find(d)), []);
    t.deepEqual(await fs.readdir(join(dir, 'lib', 'containers', '.trash')).catch(() => []), []);
    const st = await fs.readdir(join(dir, 'run', handler)).catch(() => [] as string[]);
    t.deepEqual(st.filter((d) => /^[0-9a-f]{64}$/.test(d) && !svc.find(d)), []);
    const failed = /container ([0-9a-f]{64})/.exec(err.message)?.[1];
    t.truthy(failed, err.message);
    const cg = execFileSync('sh', ['-c', `ls -d /sys/fs/cgroup/*/corral-${failed} 2>/dev/null || true`]).toString().trim();
    t.is(cg, '', 'no cgroup of the failed container');
    t.false(existsSync(join(dir, 'run', 'attach', failed!)));
    // a retry with a good command works: the name was released
    const ok = await svc.create({ pod_sandbox_id: pod, config: config(`bad-${handler}`, ['true']) });
    await svc.remove(ok);
  });
}

for (const handler of ['runc', 'crun']) {
  rtest(`${handler}: stop in a shared pid namespace kills the container's other processes too`, async (t) => {
    const pod = `${handler}pod`.padEnd(64, '0');
    const a = await svc.create({ pod_sandbox_id: pod, config: config(`pidhost-${handler}`, ['sleep', '2000']) });
    await svc.start(a);
    const b = await svc.create({
      pod_sandbox_id: pod,
      config: config(`pidguest-${handler}`, ['sh', '-c', 'sleep 1001 & sleep 1002 & wait'], { linux: { security_context: { namespace_options: { pid: 'TARGET', target_id: a } } } }),
    });
    await svc.start(b);
    const count = () => execFileSync('sh', ['-c', 'ps -eo args | grep -c "^sleep 100[12]$" || true']).toString().trim();
    t.true(await waitFor(() => count() === '2'));
    await svc.stop(b, 0);
    t.true(await waitFor(() => count() === '0', 3000), `left: ${count()}`);
    t.is(svc.get(a).state, 'RUNNING');
    await svc.remove(b);
    await svc.remove(a);
  });
}

rtest('stop: a process ignoring SIGTERM is killed after the timeout', async (t) => {
  const pod = 'runcpod'.padEnd(64, '0');
  const id = await svc.create({ pod_sandbox_id: pod, config: config('stubborn', ['sh', '-c', 'trap "" TERM; echo ready; while true; do sleep 0.1; done']) });
  await svc.start(id);
  const log = svc.get(id).logPath;
  t.true(await waitFor(async () => (await fs.readFile(log, 'utf8').catch(() => '')).includes('ready')));
  const t0 = Date.now();
  await svc.stop(id, 1);
  const took = Date.now() - t0;
  if (took > 8000) t.log(diag(id, 'runc'));
  t.true(took >= 1000, `took ${took} ms`);
  t.true(took < 8000, `took ${took} ms`);
  const st = svc.status(id).status;
  t.is(st.state, 'CONTAINER_EXITED');
  t.is(st.exit_code, 137);
  await svc.remove(id);
});

rtest('stop right after start: a stop signal dropped before the handler exists is sent again', async (t) => {
  const pod = 'runcpod'.padEnd(64, '0');
  const id = await svc.create({ pod_sandbox_id: pod, config: config('latehandler', ['sh', '-c', 'sleep 1; trap "exit 0" TERM; while true; do sleep 0.1; done']) });
  await svc.start(id);
  const t0 = Date.now();
  await svc.stop(id, 30);
  const took = Date.now() - t0;
  t.true(took < 5000, `took ${took} ms`);
  t.is(svc.status(id).status.exit_code, 0);
  await svc.remove(id);
});

for (const handler of ['runc', 'crun']) {
  rtest(`${handler}: stop at once after start reaches the program, not the runtime's init`, async (t) => {
    const pod = `${handler}pod`.padEnd(64, '0');
    for (let i = 0; i < 4; i++) {
      const id = await svc.create({ pod_sandbox_id: pod, config: config(`quickstop-${handler}-${i}`, ['sh', '-c', 'trap "exit 0" TERM; while true; do sleep 0.1; done']) });
      await svc.start(id);
      const t0 = Date.now();
      await svc.stop(id, 30);
      const took = Date.now() - t0;
      t.true(took < 5000, `round ${i} took ${took} ms`);
      t.is(svc.status(id).status.exit_code, 0);
      await svc.remove(id);
    }
  });
}

rtest('exec through conmon (-e --exec-process-spec): pid, exit code, k8s-file output', async (t) => {
  const pod = 'runcpod'.padEnd(64, '0');
  const id = await svc.create({ pod_sandbox_id: pod, config: config('conmonexec', ['sleep', '3600']) });
  await svc.start(id);
  const v = svc.get(id);
  const proc = { ...v.spec!.process, args: ['sh', '-c', 'echo via-conmon; exit 3'], terminal: false };
  const procPath = join(dir, 'exec-proc.json');
  await fs.writeFile(procPath, JSON.stringify(proc));
  const log = join(dir, 'exec.log');
  const h = await execWithConmon({
    conmonPath: '/usr/bin/conmon', id, name: v.name, bundleDir: v.bundleDir, runtime: svc.runtimes.get('runc').handler,
    exitDir: join(dir, 'exec-exits'), persistDir: join(dir, 'exec-persist'), socketDir: join(dir, 'exec-attach'),
    timeoutMs: 10_000, processSpecPath: procPath, pidFile: join(dir, 'exec.pid'), logPath: log, execTimeoutSec: 0,
  });
  t.true((await h.pid) > 0);
  t.is(await h.exit, 3);
  t.regex(await fs.readFile(log, 'utf8'), / stdout F via-conmon\n/);
  await new Promise((r) => setTimeout(r, 200));
  t.is(svc.get(id).state, 'RUNNING', "the exec's exit is not the container's");
  await svc.remove(id);
});

rtest('crun execSync timeout kills the command', async (t) => {
  const pod = 'crunpod'.padEnd(64, '0');
  const id = await svc.create({ pod_sandbox_id: pod, config: config('crunexec', ['sleep', '3600']) });
  await svc.start(id);
  const err = await t.throwsAsync(svc.execSync(id, ['sleep', '4321'], 1));
  t.is((err as any).kind, 'DeadlineExceeded');
  await new Promise((r) => setTimeout(r, 200));
  // gone, and not a zombie left to the container's init (which never reaps)
  const init = svc.get(id).pid;
  const children = execFileSync('sh', ['-c', 'cat /proc/[0-9]*/stat 2>/dev/null || true']).toString()
    .split('\n').filter((l) => { const f = l.slice(l.lastIndexOf(')') + 2).split(' '); return Number(f[1]) === init; });
  t.deepEqual(children, [], 'no child of the container init left behind');
  const alive = execFileSync('sh', ['-c', 'ps -eo args | grep "^sleep 4321" || true']).toString().trim();
  t.is(alive, '', 'the timed-out command is gone');
  await svc.remove(id);
});

rtest('execSync: output, exit code, timeout; reopenLog after rotation; state kept across a restart', async (t) => {
  const pod = 'runcpod'.padEnd(64, '0');
  const id = await svc.create({ pod_sandbox_id: pod, config: config('ticker', ['sh', '-c', 'i=0; while true; do echo line$i; i=$((i+1)); sleep 0.05; done']) });
  await svc.start(id);
  const r = await svc.execSync(id, ['sh', '-c', 'echo hi; echo there >&2; exit 2'], 10);
  t.is(r.stdout.toString(), 'hi\n');
  t.is(r.stderr.toString(), 'there\n');
  t.is(r.exitCode, 2);
  const big = await svc.execSync(id, ['sh', '-c', 'seq 1 200000'], 20);
  t.is(big.stdout.toString().split('\n').length, 200001);
  const t0 = Date.now();
  const err = await t.throwsAsync(svc.execSync(id, ['sleep', '30'], 1));
  t.is((err as any).kind, 'DeadlineExceeded');
  t.true(Date.now() - t0 < 5000);

  const log = svc.get(id).logPath;
  t.true(await waitFor(async () => (await fs.readFile(log, 'utf8').catch(() => '')).includes('line3')));
  await fs.rename(log, `${log}.1`);
  await svc.reopenLog(id);
  t.true(await waitFor(async () => (await fs.readFile(log, 'utf8').catch(() => '')).split('\n').length > 3));
  const newer = (await fs.readFile(log, 'utf8')).split('\n').filter(Boolean);
  for (const l of newer) t.regex(l, LOG_LINE);

  // the daemon goes away and comes back: the container keeps running and is manageable
  const pid = svc.get(id).pid;
  await svc.close();
  svc = await make();
  svc.onEvent((e) => { if (e.type === 'CONTAINER_CREATED_EVENT') created.push(e.containerId); });
  t.is(svc.get(id).state, 'RUNNING');
  t.is(svc.get(id).pid, pid);
  process.kill(pid, 0);
  const again = await svc.execSync(id, ['echo', 'back'], 5);
  t.is(again.stdout.toString(), 'back\n');
  await svc.stop(id, 0);
  t.is(svc.get(id).state, 'EXITED');
  await svc.remove(id);
});

rtest('an exit while the daemon is down is picked up at start', async (t) => {
  const pod = 'runcpod'.padEnd(64, '0');
  const id = await svc.create({ pod_sandbox_id: pod, config: config('short', ['sh', '-c', 'sleep 0.3; exit 5']) });
  await svc.start(id);
  await svc.close();
  await new Promise((r) => setTimeout(r, 800));
  svc = await make();
  svc.onEvent((e) => { if (e.type === 'CONTAINER_CREATED_EVENT') created.push(e.containerId); });
  t.true(await waitFor(() => svc.get(id).state === 'EXITED', 3000));
  t.is(svc.status(id).status.exit_code, 5);
  await svc.remove(id);
});

rtest('nothing is left behind: no runtime state, no cgroups, no conmon', async (t) => {
  t.deepEqual(svc.listViews(), []);
  for (const rt of ['runc', 'crun']) {
    const root = join(dir, 'run', rt);
    const left = existsSync(root) ? await fs.readdir(root) : [];
    t.deepEqual(left.filter((f) => /^[0-9a-f]{64}$/.test(f)), [], `${rt} state`);
  }
  t.true(created.length >= 5);
  for (const id of created) {
    const cg = execFileSync('sh', ['-c', `ls -d /sys/fs/cgroup/*/corral-${id} 2>/dev/null || true`]).toString().trim();
    t.is(cg, '', `cgroups of ${id}`);
  }
  const conmons = execFileSync('sh', ['-c', `pgrep -a conmon | grep -F '${dir}' || true`]).toString().trim();
  t.is(conmons, '');
});
