import test from 'ava';
import { formatReference, parseReference } from './reference.js';

const D = 'sha256:' + 'a'.repeat(64);

const good: Array<[string, string]> = [
  ['busybox', 'docker.io/library/busybox:latest'],
  ['busybox:1.36', 'docker.io/library/busybox:1.36'],
  ['library/busybox', 'docker.io/library/busybox:latest'],
  ['docker.io/busybox', 'docker.io/library/busybox:latest'],
  ['index.docker.io/library/busybox:1', 'docker.io/library/busybox:1'],
  ['prom/prometheus', 'docker.io/prom/prometheus:latest'],
  ['registry.k8s.io/pause:3.9', 'registry.k8s.io/pause:3.9'],
  ['registry.k8s.io/e2e-test-images/busybox:1.29-2', 'registry.k8s.io/e2e-test-images/busybox:1.29-2'],
  ['localhost/foo', 'localhost/foo:latest'],
  ['localhost:5000/foo/bar:v1', 'localhost:5000/foo/bar:v1'],
  ['127.0.0.1:5000/a/b', '127.0.0.1:5000/a/b:latest'],
  ['[::1]:5000/a:t', '[::1]:5000/a:t'],
  [`busybox@${D}`, `docker.io/library/busybox@${D}`],
  [`quay.io/a/b:tag@${D}`, `quay.io/a/b:tag@${D}`],
  ['a_b/c__d/e-f/g.h:T_1.2-x', 'docker.io/a_b/c__d/e-f/g.h:T_1.2-x'],
];

for (const [input, want] of good) {
  test(`parses ${input}`, (t) => {
    t.is(formatReference(parseReference(input)), want);
  });
}

const bad: Array<[string, RegExp]> = [
  ['', /empty/],
  ['Busybox', /lowercase/],
  ['docker.io/Library/busybox', /lowercase/],
  ['busybox:', /bad tag/],
  ['busybox:-x', /bad tag/],
  ['busybox:' + 'x'.repeat(129), /bad tag/],
  ['busybox@sha256:abc', /bad digest/],
  ['busybox@', /bad digest/],
  ['a//b', /component/],
  ['a/b-', /component/],
  ['-a.io/b', /bad registry host/],
  [':tag', /no repository/],
  ['a/../b', /component/],
  ['a b', /component/],
  ['host.io/' + 'a'.repeat(260), /255/],
];

for (const [input, why] of bad) {
  test(`rejects ${JSON.stringify(input)}`, (t) => {
    const err = t.throws(() => parseReference(input));
    t.is((err as { kind?: string }).kind, 'InvalidArgument');
    t.regex(err!.message, why);
    t.true(err!.message.includes(`"${input}"`));
  });
}
