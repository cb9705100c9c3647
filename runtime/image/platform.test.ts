import test from 'ava';
import { selectPlatform, type PlatformDescriptor } from './platform.js';

const d = (os: string, architecture: string, variant?: string): PlatformDescriptor => ({
  digest: `sha256:${os}-${architecture}-${variant ?? ''}`, platform: { os, architecture, ...(variant ? { variant } : {}) },
});

const index = [d('linux', 'arm', 'v6'), d('linux', 'arm', 'v7'), d('linux', 'amd64'), d('linux', 'arm64', 'v8'), d('windows', 'amd64'), d('unknown', 'unknown')];

test('picks the host os/arch', (t) => {
  t.is(selectPlatform(index, { os: 'linux', architecture: 'amd64' }, 'x').digest, 'sha256:linux-amd64-');
});

test('arm variants: exact first, then an older variant', (t) => {
  t.is(selectPlatform(index, { os: 'linux', architecture: 'arm', variant: 'v7' }, 'x').digest, 'sha256:linux-arm-v7');
  t.is(selectPlatform([d('linux', 'arm', 'v6')], { os: 'linux', architecture: 'arm', variant: 'v7' }, 'x').digest, 'sha256:linux-arm-v6');
  t.throws(() => selectPlatform([d('linux', 'arm', 'v7')], { os: 'linux', architecture: 'arm', variant: 'v6' }, 'x'));
});

test('arm64 without a variant matches v8', (t) => {
  t.is(selectPlatform([d('linux', 'arm64')], { os: 'linux', architecture: 'arm64', variant: 'v8' }, 'x').digest, 'sha256:linux-arm64-');
  t.is(selectPlatform(index, { os: 'linux', architecture: 'arm64' }, 'x').digest, 'sha256:linux-arm64-v8');
});

test('a missing platform is NotFound listing what exists (without attestations)', (t) => {
  const err = t.throws(() => selectPlatform(index, { os: 'linux', architecture: 's390x' }, 'example.com/img:1'));
  t.is((err as { kind?: string }).kind, 'NotFound');
  t.regex(err!.message, /example\.com\/img:1/);
  t.regex(err!.message, /linux\/s390x/);
  t.regex(err!.message, /linux\/arm\/v6, linux\/arm\/v7, linux\/amd64, linux\/arm64\/v8, windows\/amd64$/);
});
