import test from 'ava';
import { credentialsFrom, parseChallenges } from './auth.js';

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
