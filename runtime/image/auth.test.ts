import test from 'ava';
import { credentialsForHost, credentialsFrom, parseChallenges, registryHostOf } from './auth.js';
import { retryAfterMs } from './registry.js';

test('bearer challenge with quoted params', (t) => {
  t.deepEqual(parseChallenges('Bearer realm="https://auth.example.com/token",service="registry.example.com",scope="repository:a/b:pull,push"'), [
    { scheme: 'bearer', params: { realm: 'https://auth.example.com/token', service: 'registry.example.com', scope: 'repository:a/b:pull,push' } },
  ]);
});

test('basic challenge, unquoted values, spaces and several challenges', (t) => {
  t.deepEqual(parseChallenges('Basic realm="Registry Realm"'), [{ scheme: 'basic', params: { realm: 'Registry Realm' } }]);
  t.deepEqual(parseChallenges('Bearer realm=https://a/token , service=reg,  Basic realm="x\\"y"'), [
    { scheme: 'bearer', params: { realm: 'https://a/token', service: 'reg' } },
    { scheme: 'basic', params: { realm: 'x"y' } },
  ]);
  t.deepEqual(parseChallenges(''), []);
});

test('CRI AuthConfig fields', (t) => {
  t.deepEqual(credentialsFrom(undefined), { kind: 'anonymous' });
  t.deepEqual(credentialsFrom({ username: '', password: '' }), { kind: 'anonymous' });
  t.deepEqual(credentialsFrom({ username: 'u', password: 'p' }), { kind: 'basic', username: 'u', password: 'p' });
  t.deepEqual(credentialsFrom({ auth: Buffer.from('u:p:with:colons').toString('base64') }), { kind: 'basic', username: 'u', password: 'p:with:colons' });
  t.deepEqual(credentialsFrom({ identity_token: 'it', username: 'u' }), { kind: 'identity', token: 'it' });
  t.deepEqual(credentialsFrom({ registry_token: 'rt', identity_token: 'it' }), { kind: 'registry', token: 'rt' });
});

test('server_address: the registry host it names, in the forms docker config files and the kubelet use', (t) => {
  const cases: Array<[string, string]> = [
    ['registry.example.com', 'registry.example.com'],
    ['Registry.Example.com:5000', 'registry.example.com:5000'],
    ['https://registry.example.com/v2/', 'registry.example.com'],
    ['https://registry.example.com:443', 'registry.example.com'],
    ['registry.example.com:443', 'registry.example.com'],
    ['http://127.0.0.1:5000/some/path', '127.0.0.1:5000'],
    ['127.0.0.1:5000/some/path', '127.0.0.1:5000'],
    ['https://index.docker.io/v1/', 'docker.io'],
    ['registry-1.docker.io', 'docker.io'],
    ['docker.io', 'docker.io'],
    ['[::1]:5000', '[::1]:5000'],
    [' https://user@quay.io/ ', 'quay.io'],
  ];
  for (const [addr, host] of cases) t.is(registryHostOf(addr), host, addr);
});

test('credentials go to the host of their server_address only; without one, everywhere', (t) => {
  const c = credentialsFrom({ username: 'u', password: 'p', server_address: 'https://reg.example.com:5000/' });
  t.deepEqual(c, { kind: 'basic', username: 'u', password: 'p', server: 'reg.example.com:5000' });
  t.is(credentialsForHost(c, 'reg.example.com:5000'), c);
  t.is(credentialsForHost(c, 'REG.example.com:5000'), c);
  t.deepEqual(credentialsForHost(c, 'reg.example.com'), { kind: 'anonymous' }, 'another port is another registry');
  t.deepEqual(credentialsForHost(c, 'mirror.example.com:5000'), { kind: 'anonymous' });
  const hub = credentialsFrom({ auth: Buffer.from('u:p').toString('base64'), server_address: 'https://index.docker.io/v1/' });
  t.is(credentialsForHost(hub, 'docker.io'), hub);
  t.deepEqual(credentialsForHost(hub, '127.0.0.1:5000'), { kind: 'anonymous' });
  for (const other of [credentialsFrom({ identity_token: 'it', server_address: 'a.io' }), credentialsFrom({ registry_token: 'rt', server_address: 'a.io' })]) {
    t.is(credentialsForHost(other, 'a.io'), other);
    t.deepEqual(credentialsForHost(other, 'b.io'), { kind: 'anonymous' });
  }
  const anywhere = credentialsFrom({ username: 'u', password: 'p' });
  t.is(credentialsForHost(anywhere, 'any.example.com'), anywhere);
  t.deepEqual(credentialsFrom({ server_address: 'a.io' }), { kind: 'anonymous' });
});

test('credentials with control characters are InvalidArgument (they would go into a header)', (t) => {
  t.throws(() => credentialsFrom({ identity_token: ' ', registry_token: '\n' }), { message: /auth\.registry_token contains control characters/ });
  t.throws(() => credentialsFrom({ username: 'a', password: 'b\r\nX-Evil: 1' }), { message: /auth\.password/ });
  t.is(credentialsFrom({ username: 'a', password: 'b c' }).kind, 'basic');
});

test('Retry-After: delay-seconds or an HTTP date, in ms', (t) => {
  t.is(retryAfterMs('2'), 2000);
  t.is(retryAfterMs(undefined), undefined);
  t.is(retryAfterMs('soon'), undefined);
  t.is(retryAfterMs(new Date(10_000).toUTCString(), 4_000), 6_000);
  t.is(retryAfterMs(new Date(0).toUTCString(), 4_000), 0);
});
