import assert from 'node:assert/strict';
import { test } from 'node:test';
import { canonicalQuantity } from '../../src/k8s/quantity.ts';

// The API server's canonical spelling of quantities (resource.Quantity),
// which the operator writes so that desired and live objects compare equal.

test('quantities take the canonical form the API server stores', () => {
  const cases: [string, string][] = [
    ['4', '4'],
    ['0', '0'],
    ['0Gi', '0'],
    ['1000m', '1'],
    ['1500m', '1500m'],
    ['0.5', '500m'],
    ['1.5', '1500m'],
    ['2000', '2k'],
    ['1500', '1500'],
    ['8Gi', '8Gi'],
    ['1024Mi', '1Gi'],
    ['1.5Gi', '1536Mi'],
    ['2048Ki', '2Mi'],
    ['0.5Ki', '512'],
    ['1Ki', '1Ki'],
    ['1025', '1025'],
    ['100Gi', '100Gi'],
    ['20Gi', '20Gi'],
    ['1G', '1G'],
    ['1000M', '1G'],
    ['0.1', '100m'],
    // ResourceLists are rounded up to thousandths.
    ['0.0001', '1m'],
    ['0.0000000001', '1m'],
    ['1.0001Ki', '1024103m'],
    ['0.3Ki', '307200m'],
    ['12.5k', '12500'],
  ];
  for (const [input, canonical] of cases) {
    assert.equal(canonicalQuantity(input), canonical, input);
  }
});

test('anything but a plain quantity is refused', () => {
  for (const bad of ['', '1e3', '-1', '1 Gi', 'Gi', '1.5.5']) {
    assert.throws(() => canonicalQuantity(bad), /not a quantity/, bad);
  }
});
