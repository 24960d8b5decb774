import assert from 'node:assert/strict';
import { test } from 'node:test';
import { LAST_APPLIED, withoutLastApplied } from '../../src/k8s/last-applied.ts';
import type { KubeObject } from '../../src/k8s/types.ts';

const tenant = (annotations?: Record<string, string>): KubeObject => ({
  apiVersion: 'tenancy.io/v1alpha1',
  kind: 'Tenant',
  metadata: { name: 'acme', resourceVersion: '7', ...(annotations ? { annotations } : {}) },
  spec: { owners: [{ kind: 'Group', name: 'acme-admins' }] },
});

test("kubectl's last-applied annotation is left out, and every other one kept", () => {
  const applied = tenant({
    [LAST_APPLIED]: JSON.stringify(tenant()),
    'tenancy.io/closed-at': '2026-12-07T10:00:00Z',
  });
  const kept = withoutLastApplied(applied);
  assert.deepEqual(kept.metadata.annotations, { 'tenancy.io/closed-at': '2026-12-07T10:00:00Z' });
  assert.deepEqual(kept.spec, applied.spec);
  assert.equal(kept.metadata.resourceVersion, '7');
  // The informer's object is not changed: a copy.
  assert.ok(applied.metadata.annotations?.[LAST_APPLIED]);
});

test('the annotations map stays, empty, when that annotation was all it held', () => {
  // A JSON patch then adds a key to it instead of replacing the server's map.
  const kept = withoutLastApplied(tenant({ [LAST_APPLIED]: '{}' }));
  assert.deepEqual(kept.metadata.annotations, {});
});

test('an object without it is answered as it is', () => {
  for (const object of [tenant(), tenant({ 'tenancy.io/closed-at': '2026-12-07T10:00:00Z' })])
    assert.equal(withoutLastApplied(object), object);
});
