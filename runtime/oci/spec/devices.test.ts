import test from 'ava';
import { InvalidArgumentError } from '../../errors.js';
import type { Device__Output } from '../../../proto/gen/runtime/v1/Device.js';
import { majorMinor, withDevices } from './devices.js';
import { containerConfig, fakeDeps, specContext, specInput, type FakeNode } from './fixtures.js';

const mk = (major: number, minor: number) => (major << 8) | minor;

const hostDev: Record<string, FakeNode> = {
  '/dev': { kind: 'dir' },
  '/dev/null': { kind: 'char', rdev: mk(1, 3), mode: 0o20666 },
  '/dev/fuse': { kind: 'char', rdev: mk(10, 229), mode: 0o20666 },
  '/dev/sda': { kind: 'block', rdev: mk(8, 0), mode: 0o60660 },
  '/dev/console': { kind: 'char', rdev: mk(5, 1) },
  '/dev/stdin': { kind: 'link', target: '/dev/null' },
  '/dev/pts': { kind: 'dir' },
  '/dev/pts/0': { kind: 'char', rdev: mk(136, 0) },
  '/dev/snd': { kind: 'dir' },
  '/dev/snd/timer': { kind: 'char', rdev: mk(116, 33), mode: 0o20660 },
  '/dev/by-name': { kind: 'link', target: '/dev/sda' },
  '/etc/passwd': { kind: 'file' },
};

async function devices(devs: Device__Output[], privileged = false) {
  const { spec, ctx } = specContext(specInput({ config: containerConfig({ command: ['x'], devices: devs }, { privileged }) }), fakeDeps(hostDev));
  await withDevices(spec, ctx);
  return spec;
}

test('devices: CRI devices with permissions, symlinked host path, directories', async (t) => {
  const spec = await devices([
    { host_path: '/dev/fuse', container_path: '/dev/fuse', permissions: 'rw' },
    { host_path: '/dev/by-name', container_path: '/dev/xvda', permissions: '' },
    { host_path: '/dev/snd', container_path: '/dev/snd', permissions: 'r' },
  ]);
  t.deepEqual(spec.linux.devices, [
    { type: 'c', path: '/dev/fuse', major: 10, minor: 229, fileMode: 0o666, uid: 0, gid: 0 },
    { type: 'b', path: '/dev/xvda', major: 8, minor: 0, fileMode: 0o660, uid: 0, gid: 0 },
    { type: 'c', path: '/dev/snd/timer', major: 116, minor: 33, fileMode: 0o660, uid: 0, gid: 0 },
  ]);
  t.deepEqual(spec.linux.resources?.devices, [
    { allow: false, access: 'rwm' },
    { allow: true, type: 'c', major: 10, minor: 229, access: 'rw' },
    { allow: true, type: 'b', major: 8, minor: 0, access: 'rwm' },
    { allow: true, type: 'c', major: 116, minor: 33, access: 'r' },
  ]);
});

test('devices: errors name the device', async (t) => {
  await t.throwsAsync(devices([{ host_path: '/dev/nope', container_path: '/dev/nope', permissions: 'rwm' }]), { instanceOf: InvalidArgumentError, message: /\/dev\/nope does not exist/ });
  await t.throwsAsync(devices([{ host_path: '/etc/passwd', container_path: '/dev/x', permissions: 'rwm' }]), { instanceOf: InvalidArgumentError, message: /not a character or block device/ });
  await t.throwsAsync(devices([{ host_path: '/dev/fuse', container_path: '/dev/fuse', permissions: 'rwx' }]), { instanceOf: InvalidArgumentError, message: /permissions/ });
});

test('devices: privileged gets the host devices (no pts, console or symlinks) and all access', async (t) => {
  const spec = await devices([], true);
  t.deepEqual(spec.linux.devices?.map((d) => d.path), ['/dev/fuse', '/dev/null', '/dev/sda', '/dev/snd/timer']);
  t.deepEqual(spec.linux.resources?.devices, [{ allow: true, access: 'rwm' }]);
});

test('devices: none: deny-all rule only, no devices key', async (t) => {
  const spec = await devices([]);
  t.is(spec.linux.devices, undefined);
  t.deepEqual(spec.linux.resources?.devices, [{ allow: false, access: 'rwm' }]);
});

test('devices: majorMinor decodes large numbers', (t) => {
  t.deepEqual(majorMinor(mk(1, 3)), { major: 1, minor: 3 });
  // minor numbers above 255 use the high bits of dev_t
  t.deepEqual(majorMinor(Number((259n & 0xfffn) << 8n | (0x12345n & 0xffn) | ((0x12345n & ~0xffn) << 12n))), { major: 259, minor: 0x12345 });
});
