import test from 'ava';
import { crunAppliesRro, kernelAtLeast } from './features.js';

test('crun applies rro from 1.8 on, by its version line', (t) => {
  t.true(crunAppliesRro('crun version 1.8.1'));
  t.true(crunAppliesRro('crun version 1.21'));
  t.true(crunAppliesRro('crun version 2.0'));
  t.false(crunAppliesRro('crun version 1.7.2'));
  t.false(crunAppliesRro('runc version 1.1.5'));
  t.false(crunAppliesRro(''));
});

test('kernelAtLeast compares major and minor', (t) => {
  t.true(kernelAtLeast(5, 12, '6.18.44-fc'));
  t.true(kernelAtLeast(5, 12, '5.12.0'));
  t.false(kernelAtLeast(5, 12, '5.11.9'));
  t.false(kernelAtLeast(5, 12, 'weird'));
});
