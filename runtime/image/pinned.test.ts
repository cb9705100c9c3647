import test from 'ava';
import { parseConfig } from '../config.js';
import { pinnedMatcher } from './pinned.js';

const pause = { repoTags: ['registry.k8s.io/pause:3.10'], repoDigests: ['registry.k8s.io/pause@sha256:' + 'a'.repeat(64)] };
const busybox = { repoTags: ['docker.io/library/busybox:latest', 'docker.io/library/busybox:1.36'], repoDigests: [] };
const app = { repoTags: ['127.0.0.1:5000/team/app:v1'], repoDigests: ['127.0.0.1:5000/team/app@sha256:' + 'b'.repeat(64)] };
const untagged = { repoTags: [], repoDigests: [] };

test('no patterns pin nothing', (t) => {
  const m = pinnedMatcher([]);
  for (const img of [pause, busybox, app, untagged]) t.false(m(img));
});

test('exact patterns match a tag or a digest, short names normalised as a pull would', (t) => {
  t.true(pinnedMatcher(['registry.k8s.io/pause:3.10'])(pause));
  t.false(pinnedMatcher(['registry.k8s.io/pause:3.9'])(pause));
  t.false(pinnedMatcher(['registry.k8s.io/pause'])(pause), 'no tag means :latest');
  t.true(pinnedMatcher(['busybox'])(busybox));
  t.true(pinnedMatcher(['busybox:1.36'])(busybox));
  t.true(pinnedMatcher(['docker.io/library/busybox:1.36'])(busybox));
  t.true(pinnedMatcher([`registry.k8s.io/pause@sha256:${'a'.repeat(64)}`])(pause));
  t.true(pinnedMatcher([`registry.k8s.io/pause:3.10@sha256:${'a'.repeat(64)}`])(pause), 'tag@digest: the digest decides');
  t.false(pinnedMatcher([`registry.k8s.io/pause@sha256:${'c'.repeat(64)}`])(pause));
  t.false(pinnedMatcher(['busybox'])(untagged));
});

test('a trailing * matches names starting with the rest; *keyword* matches names containing it', (t) => {
  t.true(pinnedMatcher(['registry.k8s.io/pause:*'])(pause));
  t.true(pinnedMatcher(['registry.k8s.io/pau*'])(pause));
  t.false(pinnedMatcher(['registry.k8s.io/pause:*'])(busybox));
  t.false(pinnedMatcher(['busybox*'])(busybox), 'globs are compared as written, against normalised names');
  t.true(pinnedMatcher(['docker.io/library/busybox:*'])(busybox));
  t.true(pinnedMatcher(['127.0.0.1:5000/team/app@*'])(app), 'digests match too');
  t.true(pinnedMatcher(['*pause*'])(pause));
  t.true(pinnedMatcher(['*team/app*'])(app));
  t.false(pinnedMatcher(['*pause*'])(app));
  t.true(pinnedMatcher(['*'])(app), 'a lone * pins every named image');
  t.false(pinnedMatcher(['*'])(untagged), 'an image without names has nothing to match');
  const several = pinnedMatcher(['nomatch', '*pause*', 'docker.io/library/busybox:*']);
  t.true(several(pause));
  t.true(several(busybox));
  t.false(several(app));
});

test('config: image.pinned_images defaults to none; a * elsewhere than the ends is refused naming the key', (t) => {
  t.deepEqual(parseConfig('', 'f.toml').image.pinned_images, []);
  const ok = ['registry.k8s.io/pause:3.10', 'registry.k8s.io/pause*', '*pause*', '*'];
  t.deepEqual(parseConfig(`[image]\npinned_images = ${JSON.stringify(ok)}\n`, 'f.toml').image.pinned_images, ok);
  for (const bad of ['*pause', 'registry.k8s.io/*/pause', 'a*b*', '*a*b*', '']) {
    t.throws(() => parseConfig(`[image]\npinned_images = [${JSON.stringify(bad)}]\n`, 'f.toml'), { message: /f\.toml.*image\.pinned_images/ }, bad);
  }
  t.throws(() => parseConfig('[image]\npinned_images = "x"\n', 'f.toml'), { message: /image\.pinned_images.*array of strings/ });
});
