import test from 'ava';
import { InvalidArgumentError } from '../errors.js';
import { chooseDefaultSubnet, defaultNetworkConf, parseNetworkConf, parseProcNetRoute, requiredBinaries, withPodCidr } from './cni-config.js';
import { bandwidthFromAnnotations, buildCapabilityArgs, parseQuantity, runtimeConfigFor, toCniPortMappings } from './runtime-config.js';
import { ipsFromResult } from './manager.js';
import { masqChainName, splitRule } from './masq-cleanup.js';

test('parseNetworkConf: conflist, single .conf, and errors naming the file', (t) => {
  const list = parseNetworkConf(JSON.stringify({ cniVersion: '1.0.0', name: 'n', plugins: [{ type: 'bridge', ipam: { type: 'host-local' } }, { type: 'portmap' }] }), 'f');
  t.deepEqual(requiredBinaries(list), ['bridge', 'host-local', 'portmap']);
  const single = parseNetworkConf(JSON.stringify({ cniVersion: '0.3.1', name: 's', type: 'ptp', mtu: 1400 }), 'g');
  t.deepEqual(single, { cniVersion: '0.3.1', name: 's', plugins: [{ type: 'ptp', mtu: 1400 }] });
  t.throws(() => parseNetworkConf('{', 'x.conf'), { instanceOf: InvalidArgumentError, message: /x.conf: invalid JSON/ });
  t.throws(() => parseNetworkConf('{"plugins":[{"type":"a"}]}', 'y'), { message: /"name" is missing/ });
  t.throws(() => parseNetworkConf('{"name":"n","plugins":[]}', 'y'), { message: /non-empty/ });
  t.throws(() => parseNetworkConf('{"name":"n","plugins":[{"x":1}]}', 'y'), { message: /plugins\[0\] has no "type"/ });
  t.throws(() => parseNetworkConf('{"name":"n","plugins":[{"type":"../../bin/sh"}]}', 'y'), { message: /plain name/ });
});

test('parseProcNetRoute and chooseDefaultSubnet', (t) => {
  const routes = parseProcNetRoute([
    'Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT',
    'eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0',
    'eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0',
    'eth1\t0000000A\t00000000\t0001\t0\t0\t0\t000000FF\t0\t0\t0',
  ].join('\n'));
  t.deepEqual(routes, [
    { dest: '0.0.0.0', prefix: 0, dev: 'eth0' },
    { dest: '192.0.2.0', prefix: 24, dev: 'eth0' },
    { dest: '10.0.0.0', prefix: 8, dev: 'eth1' },
  ]);
  t.is(chooseDefaultSubnet(routes.slice(0, 2)), '10.88.0.0/16');
  // 10/8 covers every 10.x candidate.
  t.is(chooseDefaultSubnet(routes), '172.30.0.0/16');
  // corral's own bridge does not count against its own subnet.
  t.is(chooseDefaultSubnet([{ dest: '10.88.0.0', prefix: 16, dev: 'corral0' }]), '10.88.0.0/16');
  t.is(chooseDefaultSubnet([{ dest: '10.88.3.0', prefix: 24, dev: 'wg0' }]), '10.89.0.0/16');
  t.throws(() => chooseDefaultSubnet([{ dest: '10.0.0.0', prefix: 8, dev: 'a' }], ['10.1.0.0/16']), { message: /no free private subnet/ });
});

test('parseQuantity follows Kubernetes quantities', (t) => {
  t.is(parseQuantity('10M'), 10_000_000);
  t.is(parseQuantity('1Mi'), 1_048_576);
  t.is(parseQuantity('1.5k'), 1500);
  t.is(parseQuantity('1e6'), 1_000_000);
  t.is(parseQuantity('100'), 100);
  t.is(parseQuantity('1500m'), 2);
  t.throws(() => parseQuantity('10 MB'));
  t.throws(() => parseQuantity('abc'));
});

test('bandwidth annotations: rates with the largest burst, bounds checked', (t) => {
  t.is(bandwidthFromAnnotations({}), undefined);
  t.deepEqual(bandwidthFromAnnotations({ 'kubernetes.io/egress-bandwidth': '2M' }), { egressRate: 2_000_000, egressBurst: 4294967295 });
  t.throws(() => bandwidthFromAnnotations({ 'kubernetes.io/ingress-bandwidth': '10' }), { instanceOf: InvalidArgumentError, message: /ingress-bandwidth.*1k..1P/ });
  t.throws(() => bandwidthFromAnnotations({ 'kubernetes.io/ingress-bandwidth': 'fast' }), { message: /invalid quantity/ });
});

test('port mappings: lowercased protocol, host IP kept, no host port skipped, bad protocol refused', (t) => {
  t.deepEqual(toCniPortMappings([
    { protocol: 'SCTP', container_port: 1, host_port: 2, host_ip: '::1' },
    { container_port: 80, host_port: 0 },
    { container_port: 81, host_port: 8081 },
  ]), [
    { hostPort: 2, containerPort: 1, protocol: 'sctp', hostIP: '::1' },
    { hostPort: 8081, containerPort: 81, protocol: 'tcp' },
  ]);
  t.throws(() => toCniPortMappings([{ protocol: 'ICMP', container_port: 1, host_port: 1 }]), { message: /unknown protocol/ });
});

test('runtimeConfig only carries declared capabilities the pod has', (t) => {
  const caps = buildCapabilityArgs({ portMappings: [], annotations: {} }, '10.0.0.0/24, fd00::/64');
  t.deepEqual(caps.ipRanges, [[{ subnet: '10.0.0.0/24' }], [{ subnet: 'fd00::/64' }]]);
  t.is(runtimeConfigFor({ type: 'x' }, caps), undefined);
  t.deepEqual(runtimeConfigFor({ type: 'x', capabilities: { portMappings: true, bandwidth: true, ipRanges: false } }, caps), { portMappings: [] });
});

test('ipsFromResult: pod interface only, IPv4 first, old result formats', (t) => {
  t.deepEqual(ipsFromResult({
    interfaces: [{ name: 'cni0' }, { name: 'veth1' }, { name: 'eth0', sandbox: '/n' }],
    ips: [{ address: 'fd00::2/64', interface: 2 }, { address: '10.0.0.1/24', interface: 0 }, { address: '10.0.0.2/24', interface: 2 }],
  }, 'eth0'), ['10.0.0.2', 'fd00::2']);
  t.deepEqual(ipsFromResult({ ips: [{ address: '10.0.0.3/24' }] }, 'eth0'), ['10.0.0.3']);
  t.deepEqual(ipsFromResult({ ip4: { ip: '10.0.0.4/24' }, ip6: { ip: 'fd00::4/64' } }, 'eth0'), ['10.0.0.4', 'fd00::4']);
  t.deepEqual(ipsFromResult(null, 'eth0'), []);
});

test('masquerade chain name and iptables -S parsing', (t) => {
  t.is(masqChainName('ctestee41', '7ecc06a7f6d83c44b5a5000ece61297c3110bf25554f2e80e5d23acdfba6b222'), 'CNI-f41e383e88dc8687832ef63a');
  t.deepEqual(
    splitRule('-A POSTROUTING -s 10.255.48.2/32 -m comment --comment "name: \\"n\\" id: \\"x y\\"" -j CNI-f41e'),
    ['-A', 'POSTROUTING', '-s', '10.255.48.2/32', '-m', 'comment', '--comment', 'name: "n" id: "x y"', '-j', 'CNI-f41e'],
  );
  t.deepEqual(splitRule('-N X'), ['-N', 'X']);
  t.deepEqual(splitRule('-A X --comment ""'), ['-A', 'X', '--comment', '']);
});

test('withPodCidr replaces the default bridge ranges (dual-stack adds the v6 default route)', (t) => {
  const conf = defaultNetworkConf('10.88.0.0/16', '/d');
  const v4 = withPodCidr(conf, '10.244.1.0/24', 'corral1234abcd');
  t.is(v4.plugins[0]!.bridge, 'corral1234abcd');
  t.deepEqual(v4.plugins[0]!.ipam, { type: 'host-local', ranges: [[{ subnet: '10.244.1.0/24' }]], routes: [{ dst: '0.0.0.0/0' }], dataDir: '/d' });
  const ds = withPodCidr(conf, '10.244.1.0/24, fd00:10:244:1::/64', 'corral1234abcd');
  t.deepEqual((ds.plugins[0]!.ipam as { ranges: unknown }).ranges, [[{ subnet: '10.244.1.0/24' }], [{ subnet: 'fd00:10:244:1::/64' }]]);
  t.deepEqual((ds.plugins[0]!.ipam as { routes: unknown }).routes, [{ dst: '0.0.0.0/0' }, { dst: '::/0' }]);
  t.deepEqual(ds.plugins[1], conf.plugins[1]);
  t.is(withPodCidr(conf, '', 'corral0'), conf);
});
