import test from 'ava';
import { matchesLabelFilter, namesRegex, parseKnown, specLabels } from './lists.js';

test('known-failures: a name line, then its indented reason', (t) => {
  const m = parseKnown([
    '# comment',
    '[sig-node] A spec [NodeConformance] [sig-node, NodeConformance]',
    '    reason: no such image here',
    '',
    '[sig-node] Another (with parens) [NodeConformance] [sig-node, NodeConformance]',
    '  reason:  the kernel lacks it ',
  ].join('\n'));
  t.deepEqual([...m.keys()], [
    '[sig-node] A spec [NodeConformance] [sig-node, NodeConformance]',
    '[sig-node] Another (with parens) [NodeConformance] [sig-node, NodeConformance]',
  ]);
  t.is(m.get('[sig-node] A spec [NodeConformance] [sig-node, NodeConformance]')?.reason, 'no such image here');
  t.is(m.get('[sig-node] Another (with parens) [NodeConformance] [sig-node, NodeConformance]')?.reason, 'the kernel lacks it');
});

test('known-failures: a spec without a reason, or a reason without a spec, is an error', (t) => {
  t.throws(() => parseKnown('[sig-node] A\n[sig-node] B\n  reason: x\n'), { message: /no reason for \[sig-node\] A/ });
  t.throws(() => parseKnown('  reason: x\n'), { message: /without a spec/ });
  t.throws(() => parseKnown('[sig-node] A\n'), { message: /no reason/ });
});

test('namesRegex matches the full text ginkgo matches, without the labels, and nothing else', (t) => {
  const names = [
    '[sig-node] Pods should get a host IP [NodeConformance] [Conformance] [sig-node, NodeConformance, Conformance]',
    '[sig-node] Probing container with readiness probe (1.5s) [NodeConformance] [sig-node, NodeConformance]',
  ];
  const re = new RegExp(namesRegex(names));
  t.true(re.test('[sig-node] Pods should get a host IP [NodeConformance] [Conformance]'));
  t.true(re.test('[sig-node] Probing container with readiness probe (1.5s) [NodeConformance]'));
  t.false(re.test('[sig-node] Probing container with readiness probe (1x5s) [NodeConformance]'));
  t.false(re.test('[sig-node] Pods should get a host'));
});

test('label filters of the sets select by the labels of a spec name', (t) => {
  const conf = '[sig-node] Kubelet should work [NodeConformance] [sig-node, NodeConformance, Conformance]';
  const feature = '[sig-node] ImageVolume [Feature:ImageVolume] works [sig-node, Feature:ImageVolume]';
  const slow = '[sig-node] Resize slowly [NodeConformance] [sig-node, NodeConformance, Slow]';
  t.deepEqual(specLabels(conf), ['sig-node', 'NodeConformance', 'Conformance']);
  t.deepEqual(specLabels('no labels here'), []);
  const ci = '(NodeConformance || Feature:ImageVolume || Feature:UserNamespacesSupport) && !Serial && !Slow && !Flaky';
  t.true(matchesLabelFilter(ci, specLabels(conf)));
  t.true(matchesLabelFilter(ci, specLabels(feature)));
  t.false(matchesLabelFilter(ci, specLabels(slow)));
  t.false(matchesLabelFilter('(Feature:ImageVolume) && !Serial', specLabels(conf)));
  t.true(matchesLabelFilter('NodeConformance && Slow && !Serial', specLabels(slow)));
  t.throws(() => matchesLabelFilter('(NodeConformance', []), { message: /"\)" expected/ });
  t.throws(() => matchesLabelFilter('NodeConformance Slow', []), { message: /unexpected Slow/ });
});
