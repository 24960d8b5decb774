import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LabelPool } from '../../src/k8s/shared-labels.ts';
import { StringPool } from '../../src/k8s/shared-strings.ts';

const childLabels = (tenant: string) => ({
  'app.kubernetes.io/managed-by': 'tenant-operator',
  'tenancy.io/tenant': tenant,
});
// As the informer sees them: each from its own JSON.parse.
const parsed = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

test("a tenant's objects share one frozen label map, another tenant's have their own", () => {
  const pool = new LabelPool();
  const a = [0, 1, 2].map(() => pool.share(parsed(childLabels('acme'))));
  const b = pool.share(parsed(childLabels('globex')));
  assert.equal(a[0], a[1]);
  assert.equal(a[0], a[2]);
  assert.notEqual(a[0], b);
  assert.deepEqual(b, childLabels('globex'));
  assert.ok(Object.isFrozen(a[0]));
  // Shared means read-only: relabelling one object cannot relabel the others.
  assert.throws(() => {
    (a[1] as Record<string, string>)['tenancy.io/tenant'] = 'globex';
  }, TypeError);
  assert.equal(pool.size, 2);
});

test('one label, two in another order, or other values are other maps', () => {
  const pool = new LabelPool();
  const base = pool.share(parsed(childLabels('acme')));
  const variants = [
    { 'tenancy.io/tenant': 'acme' },
    { 'tenancy.io/tenant': 'acme', 'app.kubernetes.io/managed-by': 'tenant-operator' },
    { 'app.kubernetes.io/managed-by': 'someone-else', 'tenancy.io/tenant': 'acme' },
    { 'app.kubernetes.io/managed-by': 'tenant-operator', 'tenancy.io/other': 'acme' },
  ];
  for (const variant of variants) {
    const shared = pool.share(parsed(variant));
    assert.notEqual(shared, base);
    assert.deepEqual(shared, variant);
    // And each is found again.
    assert.equal(pool.share(parsed(variant)), shared);
  }
});

test('maps of more than two labels, or none, are not shared or frozen', () => {
  const pool = new LabelPool();
  const namespace = { ...childLabels('acme'), 'tenancy.io/tenant-uid': 'u-1' };
  const empty = {};
  assert.equal(pool.share(namespace), namespace);
  assert.equal(pool.share(empty), empty);
  assert.ok(!Object.isFrozen(namespace) && !Object.isFrozen(empty));
  assert.equal(pool.size, 0);
});

test('a full pool starts over and still answers right', () => {
  const pool = new LabelPool(2);
  const first = pool.share(parsed(childLabels('t1')));
  pool.share(parsed(childLabels('t2')));
  pool.share(parsed(childLabels('t3')));
  assert.equal(pool.size, 1);
  const again = pool.share(parsed(childLabels('t1')));
  assert.notEqual(again, first);
  assert.deepEqual(again, first);
});

test('the string pool passes over what is already shared and frozen', () => {
  const strings = new StringPool();
  const labels = new LabelPool().share(parsed(childLabels('acme')));
  const object = { metadata: { name: 'default-deny', labels } };
  assert.equal(strings.shareAll(object).metadata.labels, labels);
});

test('a string pool may take long values when asked to (certificates)', () => {
  const pem = `-----BEGIN CERTIFICATE-----\n${'A'.repeat(1200)}\n-----END CERTIFICATE-----`;
  const certificates = new StringPool(10, 64 * 1024);
  const first = certificates.share(parsed({ pem }).pem);
  assert.equal(certificates.share(parsed({ pem }).pem), first);
  assert.equal(certificates.size, 1);
  // (Strings compare by content: what shows the pooling is the count.)
  // The caches' pool leaves values that long alone.
  const caches = new StringPool();
  caches.share(pem);
  assert.equal(caches.size, 0);
  caches.share('tenant-operator');
  assert.equal(caches.size, 1);
});
