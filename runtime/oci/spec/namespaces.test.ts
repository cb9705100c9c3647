import test from 'ava';
import { FailedPreconditionError, InvalidArgumentError } from '../../errors.js';
import type { NamespaceOption__Output } from '../../../proto/gen/runtime/v1/NamespaceOption.js';
import type { ContainerSpecInput } from './context.js';
import { containerConfig, specContext, specInput } from './fixtures.js';
import { withNamespaces } from './namespaces.js';

function nsOpts(pid: string, target_id = ''): NamespaceOption__Output {
  return { network: 'POD', pid: pid as NamespaceOption__Output['pid'], ipc: 'POD', target_id, userns_options: null };
}

async function namespaces(opts: NamespaceOption__Output | null, over: Partial<ContainerSpecInput> = {}) {
  const base = specInput();
  const { spec, ctx } = specContext(specInput({
    config: containerConfig({ command: ['x'] }, { namespace_options: opts }),
    sandbox: { ...base.sandbox, namespaces: { ...base.sandbox.namespaces, pid: '/run/corral/ns/pid/s1' } },
    ...over,
  }));
  await withNamespaces(spec, ctx);
  return { spec, ctx };
}

const pidRows: Array<[string, NamespaceOption__Output | null, Partial<ContainerSpecInput>, { type: 'pid'; path?: string } | undefined]> = [
  ['CONTAINER: new', nsOpts('CONTAINER'), {}, { type: 'pid' }],
  ['POD: the sandbox one', nsOpts('POD'), {}, { type: 'pid', path: '/run/corral/ns/pid/s1' }],
  ['no options: POD', null, {}, { type: 'pid', path: '/run/corral/ns/pid/s1' }],
  ['NODE: the host one', nsOpts('NODE'), {}, undefined],
  ['TARGET: the target container', nsOpts('TARGET', 'c0'), { targetPidNs: '/proc/42/ns/pid' }, { type: 'pid', path: '/proc/42/ns/pid' }],
];
for (const [title, opts, over, want] of pidRows) {
  test(`namespaces: pid ${title}`, async (t) => {
    const { spec } = await namespaces(opts, over);
    t.deepEqual(spec.linux.namespaces.find((n) => n.type === 'pid'), want);
  });
}

test('namespaces: the pod net/ipc/uts by path, new mount, cgroup on v2, hostname', async (t) => {
  const { spec } = await namespaces(nsOpts('CONTAINER'));
  t.deepEqual(spec.linux.namespaces, [
    { type: 'pid' },
    { type: 'network', path: '/run/corral/ns/net/s1' },
    { type: 'ipc', path: '/run/corral/ns/ipc/s1' },
    { type: 'uts', path: '/run/corral/ns/uts/s1' },
    { type: 'mount' },
    { type: 'cgroup' },
  ]);
  t.is(spec.hostname, 'pod-host');
});

test('namespaces: no cgroup namespace on v1 and hybrid', async (t) => {
  for (const cgroupMode of ['v1', 'hybrid'] as const) {
    const { spec } = await namespaces(nsOpts('CONTAINER'), { cgroupMode });
    t.false(spec.linux.namespaces.some((n) => n.type === 'cgroup'), cgroupMode);
  }
});

test('namespaces: host network/ipc/uts are left out, and so is the hostname', async (t) => {
  const base = specInput();
  const { spec } = await namespaces(nsOpts('NODE'), { sandbox: { ...base.sandbox, namespaces: {} } });
  t.deepEqual(spec.linux.namespaces, [{ type: 'mount' }, { type: 'cgroup' }]);
  t.is(spec.hostname, undefined);
});

test('namespaces: POD without a pod pid namespace falls back to a private one', async (t) => {
  const base = specInput();
  const { spec, ctx } = await namespaces(nsOpts('POD'), { sandbox: { ...base.sandbox, namespaces: { net: '/n' } } });
  t.deepEqual(spec.linux.namespaces.find((n) => n.type === 'pid'), { type: 'pid' });
  t.regex(ctx.warnings.join(), /no shared pid namespace/);
});

test('namespaces: errors', async (t) => {
  await t.throwsAsync(namespaces(nsOpts('TARGET')), { instanceOf: InvalidArgumentError, message: /without target_id/ });
  await t.throwsAsync(namespaces(nsOpts('TARGET', 'c0')), { instanceOf: FailedPreconditionError, message: /c0/ });
  // A container cannot ask for a user namespace its pod was not made with.
  await t.throwsAsync(namespaces({ ...nsOpts('CONTAINER'), userns_options: { mode: 'POD', uids: [{ host_id: 100000, container_id: 0, length: 65536 }], gids: [] } }), { instanceOf: InvalidArgumentError, message: /has no user namespace of its own/ });
});

test('namespaces: a pod with its own user namespace: joined by path, with its maps', async (t) => {
  const base = specInput();
  const map = { containerId: 0, hostId: 231072, length: 65536 };
  const { spec } = await namespaces({ ...nsOpts('CONTAINER'), userns_options: { mode: 'POD', uids: [], gids: [] } }, {
    sandbox: { ...base.sandbox, namespaces: { ...base.sandbox.namespaces, user: '/run/corral/sandboxes/s1/ns/user' }, idMaps: { uids: [map], gids: [{ ...map, hostId: 300000 }] } },
  });
  t.deepEqual(spec.linux.namespaces.find((n) => n.type === 'user'), { type: 'user', path: '/run/corral/sandboxes/s1/ns/user' });
  t.deepEqual(spec.linux.uidMappings, [{ containerID: 0, hostID: 231072, size: 65536 }]);
  t.deepEqual(spec.linux.gidMappings, [{ containerID: 0, hostID: 300000, size: 65536 }]);
  const host = await namespaces(nsOpts('CONTAINER'));
  t.is(host.spec.linux.namespaces.find((n) => n.type === 'user'), undefined);
  t.is(host.spec.linux.uidMappings, undefined);
});
