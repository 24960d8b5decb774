import assert from 'node:assert/strict';
import { test } from 'node:test';
import { isSubset } from '../../src/k8s/subset.ts';

test('a live object with extra defaulted fields still contains the desired one', () => {
  const desired = { metadata: { name: 'a', labels: { x: '1' } }, spec: { ports: [{ port: 53 }] } };
  const live = {
    metadata: { name: 'a', uid: 'u', labels: { x: '1', y: '2' } },
    spec: { ports: [{ port: 53, protocol: 'TCP' }] },
  };
  assert.equal(isSubset(desired, live), true);
});

test('a changed value, a missing field or a list of another length is a difference', () => {
  assert.equal(isSubset({ a: { b: 1 } }, { a: { b: 2 } }), false);
  assert.equal(isSubset({ a: { b: 1 } }, { a: {} }), false);
  assert.equal(isSubset({ a: [1, 2] }, { a: [1, 2, 3] }), false);
  assert.equal(isSubset({ a: [1] }, { a: 'x' }), false);
});

test('request paths map to the resource they address', async () => {
  const { resourceOfPath } = await import('../../src/k8s/resources.ts');
  assert.equal(resourceOfPath('/api/v1/namespaces/tenant-a/resourcequotas/q'), 'resourcequotas');
  assert.equal(resourceOfPath('/api/v1/namespaces/tenant-a'), 'namespaces');
  assert.equal(resourceOfPath('/apis/tenancy.io/v1alpha1/tenants/acme/status'), 'tenants');
  assert.equal(
    resourceOfPath('/apis/coordination.k8s.io/v1/namespaces/x/leases/l?fieldManager=a'),
    'leases',
  );
  assert.equal(resourceOfPath('/api/v1/namespaces/default/events'), 'events');
});
