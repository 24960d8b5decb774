import assert from 'node:assert/strict';
import { test } from 'node:test';
import { compactOwnedObject, digestOf, isCompact } from '../../src/k8s/compact-object.ts';
import { ownedFieldsDigest } from '../../src/k8s/owned-fields.ts';
import type { KubeObject } from '../../src/k8s/types.ts';

// What the caches keep of a tenant's namespace and children: enough to say
// "as we want it" by digest, and what the reconcile reads from the cache.

const policy: KubeObject = {
  apiVersion: 'networking.k8s.io/v1',
  kind: 'NetworkPolicy',
  metadata: {
    name: 'default-deny',
    namespace: 'tenant-acme',
    uid: 'u-1',
    resourceVersion: '42',
    labels: { 'tenancy.io/tenant': 'acme' },
    ownerReferences: [
      { apiVersion: 'tenancy.io/v1alpha1', kind: 'Tenant', name: 'acme', uid: 't-1' },
    ],
    managedFields: [{ manager: 'tenant-operator', operation: 'Update' }],
    creationTimestamp: '2026-01-01T00:00:00Z',
  },
  spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'] },
};

test('a child keeps who it is, its labels and the digest of what we own, and nothing else', () => {
  const compact = compactOwnedObject(policy);
  assert.ok(isCompact(compact));
  // No uid: a NetworkPolicy is read whole before it is written or deleted.
  assert.deepEqual(compact.metadata, {
    name: 'default-deny',
    namespace: 'tenant-acme',
    resourceVersion: '42',
    labels: { 'tenancy.io/tenant': 'acme' },
  });
  assert.equal(compact.spec, undefined);
  assert.equal(digestOf(compact), ownedFieldsDigest(policy));
  assert.ok(JSON.stringify(compact).length < JSON.stringify(policy).length);
});

test('any difference in what we own gives another digest; what the server owns does not', () => {
  const opened = { ...policy, spec: { podSelector: {}, policyTypes: ['Egress'] } };
  assert.notEqual(digestOf(compactOwnedObject(opened)), digestOf(compactOwnedObject(policy)));
  const bumped = { ...policy, metadata: { ...policy.metadata, resourceVersion: '43' } };
  assert.equal(digestOf(compactOwnedObject(bumped)), digestOf(compactOwnedObject(policy)));
});

test('a namespace keeps its owners and phase, which the reconcile reads from the cache', () => {
  const namespace: KubeObject = {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { ...policy.metadata, name: 'tenant-acme' },
    spec: { finalizers: ['kubernetes'] },
    status: { phase: 'Terminating', conditions: [{ type: 'NamespaceDeletionDiscoveryFailure' }] },
  };
  delete namespace.metadata.namespace;
  const compact = compactOwnedObject(namespace);
  assert.deepEqual(compact.status, { phase: 'Terminating' });
  assert.deepEqual(compact.metadata.ownerReferences, policy.metadata.ownerReferences);
  // Its erasure deletes it with a uid precondition, from the cache.
  assert.equal(compact.metadata.uid, 'u-1');
});

test('the backup CronJob and ServiceAccount keep their uid: they are deleted from the cache', () => {
  for (const kind of ['CronJob', 'ServiceAccount']) {
    const compact = compactOwnedObject({ ...policy, kind, apiVersion: 'v1' });
    assert.equal(compact.metadata.uid, 'u-1', kind);
  }
});
