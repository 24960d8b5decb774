import assert from 'node:assert/strict';
import { test } from 'node:test';
import { StringPool } from '../../src/k8s/shared-strings.ts';

// The caches' string pool: values stay equal, only shareable values are
// pooled, and the pool never grows past its bound.

const tenant = (name: string, uid: string) => ({
  metadata: {
    name,
    uid,
    resourceVersion: `${uid}-rv`,
    creationTimestamp: `2026-01-01T00:00:${uid}Z`,
    labels: { 'app.kubernetes.io/managed-by': 'tenant-operator' },
    ownerReferences: [{ kind: 'Tenant', name, uid: `owner-${uid}` }],
  },
  // As compact objects carry it (compact-object.ts): unique to the object.
  ownedFieldsDigest: `digest-${uid}`,
  status: {
    phase: 'Ready',
    conditions: [
      { type: 'Ready', status: 'True', reason: 'Reconciled', message: 'tenant is provisioned' },
    ],
  },
});

test('pooled objects keep every value, nested arrays included', () => {
  const pool = new StringPool();
  const original = tenant('acme', '1');
  const shared = pool.shareAll(structuredClone(original));
  assert.deepEqual(shared, original);
});

test('values repeated across objects are pooled once; uids, versions and timestamps never', () => {
  const pool = new StringPool();
  pool.shareAll(tenant('acme', '1'));
  const afterOne = pool.size;
  // Same shared values (labels, conditions), new name and new unique fields.
  pool.shareAll(tenant('globex', '2'));
  assert.equal(pool.size, afterOne + 1, 'only the new name joins the pool');
  // acme, tenant-operator, Ready (phase and type), True, Reconciled, the message, Tenant
  assert.equal(afterOne, 7);
});

test('long values are left alone, and a full pool starts over instead of growing', () => {
  const pool = new StringPool(3);
  pool.share('x'.repeat(257));
  assert.equal(pool.size, 0);
  for (const value of ['a', 'b', 'c']) pool.share(value);
  assert.equal(pool.size, 3);
  assert.equal(pool.share('d'), 'd');
  assert.equal(pool.size, 1);
});
