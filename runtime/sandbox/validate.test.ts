import test from 'ava';
import { FailedPreconditionError, InvalidArgumentError } from '../errors.js';
import { namespaceModes, podHostname, requireInfra, sandboxName, validateDns, validateKeyValues, validateLogDirectory, validateMetadata, validatePortMappings, validateSysctls } from './validate.js';

test('metadata: name, uid and namespace are required, named in the error', (t) => {
  t.throws(() => validateMetadata(null), { instanceOf: InvalidArgumentError, message: /metadata is required/ });
  t.throws(() => validateMetadata({ uid: 'u', namespace: 'n' }), { instanceOf: InvalidArgumentError, message: /metadata\.name/ });
  t.throws(() => validateMetadata({ name: 'a', namespace: 'n' }), { message: /metadata\.uid/ });
  t.throws(() => validateMetadata({ name: 'a', uid: 'u', namespace: '' }), { message: /metadata\.namespace/ });
  const md = validateMetadata({ name: 'web', uid: 'u1', namespace: 'default' });
  t.is(sandboxName(md), 'k8s_POD_web_default_u1_0');
  t.is(sandboxName(validateMetadata({ name: 'web', uid: 'u1', namespace: 'default', attempt: 3 })), 'k8s_POD_web_default_u1_3');
});

test('namespace modes: defaults, and modes a pod cannot have', (t) => {
  t.deepEqual(namespaceModes(null), { network: 'POD', pid: 'CONTAINER', ipc: 'POD', targetId: '' });
  t.deepEqual(namespaceModes({ network: 'NODE', pid: 'POD', ipc: 'NODE' }), { network: 'NODE', pid: 'POD', ipc: 'NODE', targetId: '' });
  t.deepEqual(namespaceModes({ network: 2, pid: 1, ipc: 0 }), { network: 'NODE', pid: 'CONTAINER', ipc: 'POD', targetId: '' });
  t.throws(() => namespaceModes({ network: 'CONTAINER' }), { instanceOf: InvalidArgumentError, message: /network/ });
  t.throws(() => namespaceModes({ pid: 'TARGET' }), { instanceOf: InvalidArgumentError, message: /pid/ });
  t.throws(() => requireInfra(namespaceModes({ pid: 'POD' }), false), { instanceOf: FailedPreconditionError });
  t.notThrows(() => namespaceModes({ userns_options: { mode: 'NODE' } }));
  t.throws(() => namespaceModes({ userns_options: { mode: 'CONTAINER' } }), { instanceOf: InvalidArgumentError, message: /userns_options\.mode: CONTAINER/ });
  t.throws(() => namespaceModes({ userns_options: { mode: 'TARGET' } }), { instanceOf: InvalidArgumentError, message: /userns_options\.mode: TARGET/ });
  t.notThrows(() => requireInfra(namespaceModes({ pid: 'POD' }), true));
});

test('sysctls: namespaced ones pass as /proc/sys paths; others and wrong namespaces are named', (t) => {
  const pod = namespaceModes({ network: 'POD', ipc: 'POD', pid: 'CONTAINER' });
  t.deepEqual(validateSysctls({
    'net.ipv4.ip_unprivileged_port_start': '0',
    'kernel.shmmax': '1000',
    'kernel.sem': '250 32000 32 128',
    'fs.mqueue.msg_max': '20',
    'net/ipv4/conf/eth0.100/forwarding': '1',
  }, pod), [
    ['fs/mqueue/msg_max', '20'],
    ['kernel/sem', '250 32000 32 128'],
    ['kernel/shmmax', '1000'],
    ['net/ipv4/ip_unprivileged_port_start', '0'],
    ['net/ipv4/conf/eth0.100/forwarding', '1'],
  ]);
  t.throws(() => validateSysctls({ 'kernel.pid_max': '1' }, pod), { instanceOf: InvalidArgumentError, message: /kernel\.pid_max is not namespaced/ });
  t.throws(() => validateSysctls({ 'vm.swappiness': '1' }, pod), { message: /vm\.swappiness/ });
  const hostNet = namespaceModes({ network: 'NODE', ipc: 'POD' });
  t.throws(() => validateSysctls({ 'net.core.somaxconn': '1' }, hostNet), { instanceOf: InvalidArgumentError, message: /net\.core\.somaxconn .*host network/ });
  t.notThrows(() => validateSysctls({ 'kernel.msgmax': '1' }, hostNet));
  const hostIpc = namespaceModes({ network: 'POD', ipc: 'NODE' });
  t.throws(() => validateSysctls({ 'kernel.shm_rmid_forced': '1' }, hostIpc), { message: /kernel\.shm_rmid_forced .*host IPC/ });
  t.throws(() => validateSysctls({ 'fs.mqueue.queues_max': '1' }, hostIpc), { message: /host IPC/ });
  t.throws(() => validateSysctls({ 'net..x': '1' }, pod), { message: /invalid name/ });
  t.throws(() => validateSysctls({ 'net/../../kernel/x': '1' }, pod), { message: /invalid name/ });
  t.throws(() => validateSysctls({ 'net.a': '1\n2' }, pod), { message: /invalid value/ });
});

test('hostname and DNS checks', (t) => {
  const pod = namespaceModes(null);
  t.is(podHostname('web-0', pod, 'abcdef0123456789', 'node1'), 'web-0');
  t.is(podHostname('', pod, 'abcdef0123456789', 'node1'), 'abcdef012345');
  t.is(podHostname('ignored', namespaceModes({ network: 'NODE' }), 'x', 'node1'), 'node1');
  t.throws(() => podHostname('a'.repeat(65), pod, 'x', 'n'), { instanceOf: InvalidArgumentError });
  t.notThrows(() => validateDns({ servers: ['10.0.0.10'], searches: ['svc.cluster.local'], options: ['ndots:5'] }));
  t.throws(() => validateDns({ servers: ['1.1.1.1\nnameserver 6.6.6.6'] }), { instanceOf: InvalidArgumentError, message: /dns_config\.servers/ });
});

test('user namespaces: POD takes exactly one uid and one gid mapping from container id 0; NODE takes none', (t) => {
  const map = [{ container_id: 0, host_id: 65536, length: 65536 }];
  t.deepEqual(namespaceModes({ userns_options: { mode: 'POD', uids: map, gids: [{ container_id: 0, host_id: '131072', length: '65536' }] } }).userns, {
    uids: [{ containerId: 0, hostId: 65536, length: 65536 }],
    gids: [{ containerId: 0, hostId: 131072, length: 65536 }],
  });
  t.is(namespaceModes({ userns_options: { mode: 'NODE' } }).userns, undefined);
  const bad: Array<[unknown, RegExp]> = [
    [{ mode: 'POD', gids: map }, /uids: exactly one mapping is supported, got 0/],
    [{ mode: 'POD', uids: [...map, { container_id: 0, host_id: 2000, length: 1 }], gids: map }, /uids: exactly one mapping/],
    [{ mode: 'POD', uids: map, gids: [{ container_id: 1, host_id: 1000, length: 10 }] }, /gids: container id 0 must be mapped/],
    [{ mode: 'POD', uids: [{ container_id: 0, host_id: 0, length: 10 }], gids: map }, /host id 0/],
    [{ mode: 'POD', uids: [{ container_id: 0, host_id: 1000, length: 0 }], gids: map }, /length must be greater than 0/],
    [{ mode: 'POD', uids: [{ container_id: 0, host_id: 4294967295, length: 2 }], gids: map }, /exceed 32 bits/],
    [{ mode: 'NODE', uids: map, gids: map }, /mode NODE .* takes no uids or gids/],
  ];
  for (const [u, re] of bad) t.throws(() => namespaceModes({ userns_options: u as any }), { instanceOf: InvalidArgumentError, message: re }, JSON.stringify(u));
  for (const k of ['network', 'ipc', 'pid']) {
    t.throws(() => namespaceModes({ [k]: 'NODE', userns_options: { mode: 'POD', uids: map, gids: map } }), { instanceOf: InvalidArgumentError, message: new RegExp(`${k}: NODE cannot be combined`) });
  }
});

test('port mappings: ports in range, a known protocol, an IP; host port 0 maps nothing', (t) => {
  t.notThrows(() => validatePortMappings([{ protocol: 'TCP', container_port: 80, host_port: 8080 }, { container_port: 53, protocol: 'udp' }, { container_port: 9, host_port: 0 }]));
  t.throws(() => validatePortMappings([{ protocol: 7 as never, container_port: 80, host_port: 80 }]), { instanceOf: InvalidArgumentError, message: /unknown protocol 7/ });
  t.throws(() => validatePortMappings([{ container_port: 80, host_port: 70000 }]), { message: /host_port must be 0\.\.65535/ });
  t.throws(() => validatePortMappings([{ container_port: 80, host_port: -1 }]), { message: /host_port/ });
  t.throws(() => validatePortMappings([{ container_port: 0, host_port: 80 }]), { message: /container_port must be 1\.\.65535/ });
  t.throws(() => validatePortMappings([{ container_port: 80, host_port: 80, host_ip: 'nope' }]), { message: /host_ip "nope" is not an IP/ });
});

test('log directory absolute; names capped; labels and annotations capped in total', (t) => {
  t.notThrows(() => validateLogDirectory('/var/log/pods/ns_name_uid'));
  t.notThrows(() => validateLogDirectory(''));
  t.throws(() => validateLogDirectory('.'), { message: /must be an absolute path/ });
  t.throws(() => validateLogDirectory('/x\0y'), { message: /must be an absolute path/ });
  t.throws(() => validateMetadata({ name: 'a'.repeat(254), uid: 'u', namespace: 'n' }), { message: /254 bytes long/ });
  t.notThrows(() => validateKeyValues({ a: 'b'.repeat(1000) }, 'labels'));
  t.throws(() => validateKeyValues({ a: 'b'.repeat(300 * 1024) }, 'annotations'), { message: /annotations: \d+ bytes in total/ });
  t.throws(() => validateKeyValues({ '': 'x' }, 'labels'), { message: /empty or contains NUL/ });
});
