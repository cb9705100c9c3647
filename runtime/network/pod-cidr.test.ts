import test from 'ava';
import { bridgeForPodCidr, parsePodCidr } from './pod-cidr.js';
import { InvalidArgumentError } from '../errors.js';

test('pod CIDRs the kubelet sends are accepted', (t) => {
  t.deepEqual(parsePodCidr('10.244.1.0/24'), ['10.244.1.0/24']);
  t.deepEqual(parsePodCidr('10.244.1.0/24, fd00:10:244:1::/64'), ['10.244.1.0/24', 'fd00:10:244:1::/64']);
});

test('anything else is InvalidArgument naming the value', (t) => {
  for (const bad of ['', 'garbage', '10.244.1.0', '10.244.1.0/33', '10.0.0.0/4', '300.1.1.1/24', '10.1.0.0/24,10.2.0.0/24',
    'fd00::/200', '10.1.0.0/24,', 'a,b,c', '10.1.0.0/24\n; rm -rf /']) {
    const err = t.throws(() => parsePodCidr(bad), undefined, bad);
    t.true(err instanceof InvalidArgumentError, bad);
  }
});

test('one bridge per range, within IFNAMSIZ; none set keeps corral0', (t) => {
  const a = bridgeForPodCidr(['10.244.1.0/24']);
  t.regex(a, /^corral[0-9a-f]{8}$/);
  t.true(a.length <= 15);
  t.not(a, bridgeForPodCidr(['10.244.2.0/24']));
  t.is(bridgeForPodCidr([]), 'corral0');
});

test('a range with host bits set or a zone is refused (the plugins would refuse every pod later)', (t) => {
  t.throws(() => parsePodCidr('10.0.0.5/24'), { message: /host bits/ });
  t.throws(() => parsePodCidr('fd00:1::5/64'), { message: /host bits/ });
  t.throws(() => parsePodCidr('fe80::%eth0/64'), { message: /host bits/ });
  t.deepEqual(parsePodCidr('10.244.1.0/24,fd00:1::/64'), ['10.244.1.0/24', 'fd00:1::/64']);
  t.deepEqual(parsePodCidr('10.244.0.0/16'), ['10.244.0.0/16']);
});
