import test from 'ava';
import { InvalidArgumentError } from '../../errors.js';
import { containerConfig, fakeDeps, mountDefaults, specContext, specInput, type FakeNode } from './fixtures.js';
import { withMounts } from './mounts.js';
import type { Mount__Output } from '../../../proto/gen/runtime/v1/Mount.js';
import type { ContainerSpecInput } from './context.js';

const host: Record<string, FakeNode> = {
  '/data': { kind: 'dir' },
  '/data/sub': { kind: 'dir' },
  '/link': { kind: 'link', target: '/data' },
  '/var/lib/kubelet/pods/x/etc-hosts': { kind: 'file' },
};

async function mounts(m: Array<Partial<Mount__Output>>, sc: Parameters<typeof containerConfig>[1] = {}, over: Partial<ContainerSpecInput> = {}) {
  const { spec, ctx } = specContext(specInput({ config: containerConfig({ command: ['x'], mounts: m.map(mountDefaults) }, sc), ...over }), fakeDeps(host));
  await withMounts(spec, ctx);
  return { spec, ctx, byDest: (d: string) => spec.mounts.filter((x) => x.destination === d) };
}

test('mounts: defaults and the pod files', async (t) => {
  const { spec, byDest } = await mounts([]);
  t.deepEqual(spec.mounts.map((m) => m.destination), [
    '/proc', '/dev', '/sys', '/dev/pts', '/dev/mqueue', '/etc/hosts', '/etc/resolv.conf', '/etc/hostname', '/dev/shm', '/sys/fs/cgroup',
  ]);
  t.true(byDest('/sys')[0].options.includes('ro'));
  t.true(byDest('/sys/fs/cgroup')[0].options.includes('ro'));
  t.deepEqual(byDest('/etc/hosts')[0], { destination: '/etc/hosts', type: 'bind', source: '/run/corral/s1/hosts', options: ['rbind', 'rprivate', 'rw'] });
  t.is(byDest('/dev/shm')[0].source, '/run/corral/s1/shm');
  t.is(spec.linux.rootfsPropagation, undefined);
});

test('mounts: readonly rootfs makes the pod files read-only; privileged makes /sys writable', async (t) => {
  const ro = await mounts([], { readonly_rootfs: true });
  t.deepEqual(ro.byDest('/etc/resolv.conf')[0].options, ['rbind', 'rprivate', 'ro']);
  const priv = await mounts([], { privileged: true });
  t.true(priv.byDest('/sys')[0].options.includes('rw'));
  t.true(priv.byDest('/sys/fs/cgroup')[0].options.includes('rw'));
});

test('mounts: /dev/shm without a pod shm file: private tmpfs, or the host one with host IPC', async (t) => {
  const base = specInput();
  const priv = await mounts([], {}, { sandbox: { ...base.sandbox, files: {} } });
  t.deepEqual(priv.byDest('/dev/shm')[0], { destination: '/dev/shm', type: 'tmpfs', source: 'shm', options: ['nosuid', 'noexec', 'nodev', 'mode=1777', 'size=65536k'] });
  t.is(priv.byDest('/etc/hosts').length, 0);
  const hostIpc = await mounts([], {}, { sandbox: { ...base.sandbox, files: {}, namespaces: { net: '/n' } } });
  t.is(hostIpc.byDest('/dev/shm')[0].source, '/dev/shm');
});

const propRows: Array<[string, Mount__Output['propagation'], string, string | undefined, 'shared' | 'slave' | undefined]> = [
  ['private', 'PROPAGATION_PRIVATE', 'rprivate', undefined, undefined],
  ['host to container', 'PROPAGATION_HOST_TO_CONTAINER', 'rslave', 'rslave', 'slave'],
  ['bidirectional', 'PROPAGATION_BIDIRECTIONAL', 'rshared', 'rshared', 'shared'],
];
for (const [title, propagation, option, rootfsProp, hostMode] of propRows) {
  test(`mounts: propagation ${title}`, async (t) => {
    const { spec, ctx, byDest } = await mounts([{ container_path: '/mnt', host_path: '/data', propagation }]);
    t.deepEqual(byDest('/mnt')[0], { destination: '/mnt', type: 'bind', source: '/data', options: ['rbind', option, 'rw'] });
    t.is(spec.linux.rootfsPropagation, rootfsProp);
    t.deepEqual(ctx.hostPropagation, hostMode ? [{ path: '/data', mode: hostMode }] : []);
  });
}

test('mounts: bidirectional wins over host-to-container for the rootfs', async (t) => {
  const { spec, ctx } = await mounts([
    { container_path: '/a', host_path: '/data', propagation: 'PROPAGATION_HOST_TO_CONTAINER' },
    { container_path: '/b', host_path: '/data/sub', propagation: 'PROPAGATION_BIDIRECTIONAL' },
  ]);
  t.is(spec.linux.rootfsPropagation, 'rshared');
  t.deepEqual(ctx.hostPropagation, [{ path: '/data', mode: 'slave' }, { path: '/data/sub', mode: 'shared' }]);
});

test('mounts: readonly, recursive read-only, mount options, symlinked source', async (t) => {
  const { byDest } = await mounts([
    { container_path: '/ro', host_path: '/data', readonly: true },
    { container_path: '/rro', host_path: '/data', readonly: true, recursive_read_only: true },
    { container_path: '/opts', host_path: '/link', mount_options: ['noexec', 'nosuid'] },
  ]);
  t.deepEqual(byDest('/ro')[0].options, ['rbind', 'rprivate', 'ro']);
  t.deepEqual(byDest('/rro')[0].options, ['rbind', 'rprivate', 'ro', 'rro']);
  t.deepEqual(byDest('/opts')[0], { destination: '/opts', type: 'bind', source: '/data', options: ['rbind', 'rprivate', 'rw', 'noexec', 'nosuid'] });
});

const badRows: Array<[string, Partial<Mount__Output>, RegExp]> = [
  ['missing host path', { container_path: '/m', host_path: '/nope' }, /host_path \/nope \(for \/m\) does not exist/],
  ['relative container path', { container_path: 'm', host_path: '/data' }, /not an absolute path/],
  ['rro without readonly', { container_path: '/m', host_path: '/data', recursive_read_only: true }, /requires readonly/],
  ['rro with propagation', { container_path: '/m', host_path: '/data', readonly: true, recursive_read_only: true, propagation: 'PROPAGATION_HOST_TO_CONTAINER' }, /requires propagation/],
  ['unknown mount option', { container_path: '/m', host_path: '/data', mount_options: ['suid'] }, /mount option "suid"/],
  ['empty host path', { container_path: '/m' }, /host_path is empty/],
  // The container service turns image volumes into binds of their views before the spec.
  ['unprepared image volume', { container_path: '/img', readonly: true, image: { image: 'sha256:abc', annotations: {}, user_specified_image: '', runtime_handler: '', image_ref: '' } }, /image volume sha256:abc was not prepared/],
];
for (const [title, m, re] of badRows) {
  test(`mounts: error: ${title}`, async (t) => {
    const err = await t.throwsAsync(mounts([m]), { instanceOf: InvalidArgumentError });
    t.regex(err!.message, re);
  });
}

test('mounts: CRI mounts override defaults and pod files, /dev replaces its children, parents first', async (t) => {
  const { spec, byDest, ctx } = await mounts([
    { container_path: '/data/deep/er', host_path: '/data/sub' },
    { container_path: '/etc/hosts', host_path: '/var/lib/kubelet/pods/x/etc-hosts' },
    { container_path: '/data', host_path: '/data' },
    { container_path: '/dev/shm', host_path: '/data' },
  ]);
  t.is(byDest('/etc/hosts').length, 1);
  t.is(byDest('/etc/hosts')[0].source, '/var/lib/kubelet/pods/x/etc-hosts');
  t.is(byDest('/dev/shm')[0].source, '/data');
  t.deepEqual(ctx.warnings, []);
  const dests = spec.mounts.map((m) => m.destination);
  t.true(dests.indexOf('/data') < dests.indexOf('/data/deep/er'));
  for (let i = 1; i < dests.length; i++) t.true(dests[i - 1].split('/').length <= dests[i].split('/').length, dests.join(' '));

  const dev = await mounts([{ container_path: '/dev', host_path: '/data' }]);
  t.deepEqual(dev.spec.mounts.filter((m) => m.destination.startsWith('/dev')).map((m) => m.destination), ['/dev']);
});

test('mounts: trailing slashes are dropped, "/" is refused', async (t) => {
  const { byDest } = await mounts([{ container_path: '/mnt//x/', host_path: '/data' }]);
  t.is(byDest('/mnt/x').length, 1);
  await t.throwsAsync(mounts([{ container_path: '/', host_path: '/data' }]), { instanceOf: InvalidArgumentError, message: /cannot be mounted over/ });
});

test('mounts: id mappings make an idmapped bind in a pod with its own user namespace, and are ignored without one', async (t) => {
  const map = [{ container_id: 0, host_id: 231072, length: 65536 }];
  const m = { container_path: '/v', host_path: '/data', uidMappings: map, gidMappings: map };
  const base = specInput();
  const userns = { sandbox: { ...base.sandbox, namespaces: { ...base.sandbox.namespaces, user: '/run/corral/s1/ns/user' } } };
  const { byDest } = await mounts([m], {}, userns);
  t.deepEqual(byDest('/v')[0]!.uidMappings, [{ containerID: 0, hostID: 231072, size: 65536 }]);
  t.deepEqual(byDest('/v')[0]!.gidMappings, [{ containerID: 0, hostID: 231072, size: 65536 }]);
  await t.throwsAsync(mounts([{ ...m, gidMappings: [] }], {}, userns), { instanceOf: InvalidArgumentError, message: /go together/ });
  const plain = await mounts([m]);
  t.is(plain.byDest('/v')[0]!.uidMappings, undefined);
  t.regex(plain.ctx.warnings.join(), /id mappings ignored/);
});
