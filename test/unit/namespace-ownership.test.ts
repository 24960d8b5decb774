import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tenantSpecSchema } from '../../src/api/tenant.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import { buildNamespace, isTenantNamespace } from '../../src/tenant/namespace.ts';

// Which namespace is the tenant's: only one made for this very Tenant (its
// uid), never one that merely has the right name or copies our labels.

const tenant = {
  name: 'acme',
  uid: 'uid-acme',
  namespace: 'tenant-acme',
  spec: tenantSpecSchema.parse({ owners: [{ kind: 'Group', name: 'g' }] }),
};

function namespace(metadata: Partial<KubeObject['metadata']>): KubeObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name: 'tenant-acme', ...metadata } };
}

test('the namespace we build is ours, and carries the uid', () => {
  const built = buildNamespace(tenant);
  assert.equal(built.metadata.labels?.['tenancy.io/tenant-uid'], 'uid-acme');
  assert.equal(isTenantNamespace(built, 'uid-acme'), true);
});

test('an older namespace of ours, known by its owner reference, is ours', () => {
  const older = namespace({
    ownerReferences: [
      { apiVersion: 'tenancy.io/v1alpha1', kind: 'Tenant', name: 'acme', uid: 'uid-acme' },
    ],
  });
  assert.equal(isTenantNamespace(older, 'uid-acme'), true);
});

test('same name, copied labels, another uid or no uid: not ours', () => {
  const copied = {
    'app.kubernetes.io/managed-by': 'tenant-operator',
    'tenancy.io/tenant': 'acme',
  };
  assert.equal(isTenantNamespace(namespace({}), 'uid-acme'), false);
  assert.equal(isTenantNamespace(namespace({ labels: copied }), 'uid-acme'), false);
  assert.equal(
    isTenantNamespace(
      namespace({ labels: { ...copied, 'tenancy.io/tenant-uid': 'uid-old' } }),
      'uid-acme',
    ),
    false,
  );
  assert.equal(
    isTenantNamespace(
      namespace({
        ownerReferences: [
          { apiVersion: 'tenancy.io/v1alpha1', kind: 'Tenant', name: 'acme', uid: 'uid-old' },
        ],
      }),
      'uid-acme',
    ),
    false,
  );
  // A Tenant without a uid (never from the API server) owns nothing.
  assert.equal(
    isTenantNamespace(namespace({ labels: { 'tenancy.io/tenant-uid': '' } }), ''),
    false,
  );
});
