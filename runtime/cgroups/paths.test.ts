import test from 'ava';
import { InvalidArgumentError } from '../errors.js';
import { expandSlice, podCgroupPath } from './paths.js';

test('expandSlice: each dash prefix is a parent slice', (t) => {
  t.is(expandSlice('kubepods-burstable-pod123.slice'), '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod123.slice');
  t.is(expandSlice('kubepods.slice'), '/kubepods.slice');
  t.is(expandSlice('kubepods-pod1_2.slice'), '/kubepods.slice/kubepods-pod1_2.slice');
  t.is(expandSlice('-.slice'), '/');
  t.throws(() => expandSlice('a--b.slice'), { instanceOf: InvalidArgumentError });
  t.throws(() => expandSlice('kubepods'), { instanceOf: InvalidArgumentError });
  t.throws(() => expandSlice('a/b.slice'), { instanceOf: InvalidArgumentError });
});

test('podCgroupPath: cgroupfs driver', (t) => {
  t.is(podCgroupPath('', 'cgroupfs'), undefined);
  t.deepEqual(podCgroupPath('/kubepods/burstable/pod123', 'cgroupfs'), { parent: '/kubepods/burstable/pod123', path: '/kubepods/burstable/pod123' });
  t.deepEqual(podCgroupPath('kubepods/besteffort/podx/', 'cgroupfs'), { parent: '/kubepods/besteffort/podx', path: '/kubepods/besteffort/podx' });
  t.deepEqual(podCgroupPath('//a//b', 'cgroupfs'), { parent: '/a/b', path: '/a/b' });
  // crictl users often pass a slice name even with cgroupfs: expanded the same way.
  t.deepEqual(podCgroupPath('kubepods-besteffort-pod9.slice', 'cgroupfs')?.path, '/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod9.slice');
  t.throws(() => podCgroupPath('/kubepods/../../etc', 'cgroupfs'), { instanceOf: InvalidArgumentError, message: /\.\./ });
});

test('podCgroupPath: systemd driver', (t) => {
  t.deepEqual(podCgroupPath('kubepods-burstable-pod123.slice', 'systemd'), {
    parent: 'kubepods-burstable-pod123.slice',
    path: '/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod123.slice',
  });
  t.deepEqual(podCgroupPath('/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podz.slice', 'systemd')?.parent, 'kubepods-besteffort-podz.slice');
  t.throws(() => podCgroupPath('/kubepods/burstable/pod1', 'systemd'), { instanceOf: InvalidArgumentError, message: /systemd slice/ });
});
