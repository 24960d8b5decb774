import assert from 'node:assert/strict';
import { test } from 'node:test';

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
