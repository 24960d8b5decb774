import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { describe, test } from 'node:test';
import { tenantSpecSchema } from '../../src/api/tenant.ts';
import {
  ownedFieldDiffers,
  ownedFields,
  ownedFieldsDigest,
  ownedFieldsEqual,
  replacementFor,
} from '../../src/k8s/owned-fields.ts';
import { exactQuantityValue } from '../../src/k8s/quantity.ts';
import { ServerAnswers } from '../../src/k8s/server-answers.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import { desiredChildren } from '../../src/tenant/children.ts';

// Exact comparison of what the operator owns: what the API server adds of
// its own is ignored, everything anyone else adds, changes or removes is not.

const owner = {
  apiVersion: 'tenancy.io/v1alpha1',
  kind: 'Tenant',
  name: 'acme',
  uid: 'u-1',
  controller: true,
  blockOwnerDeletion: true,
};
const labels = { 'app.kubernetes.io/managed-by': 'tenant-operator', 'tenancy.io/tenant': 'acme' };

function policy(spec: Record<string, unknown>): KubeObject {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'default-deny', namespace: 'tenant-acme', labels, ownerReferences: [owner] },
    spec,
  };
}

/** The same object as the API server answers it: server metadata, status. */
function asLive(object: KubeObject, extra: Record<string, unknown> = {}): KubeObject {
  return {
    ...structuredClone(object),
    metadata: {
      ...structuredClone(object.metadata),
      uid: 'live-uid',
      resourceVersion: '42',
      generation: 3,
      creationTimestamp: '2026-01-01T00:00:00Z',
      managedFields: [{ manager: 'tenant-operator' }],
    },
    ...extra,
  };
}

const denyAll = policy({ podSelector: {}, policyTypes: ['Ingress', 'Egress'] });

describe('owned fields', () => {
  test('server metadata and status are not compared', () => {
    assert.equal(ownedFieldsEqual(denyAll, asLive(denyAll, { status: { anything: 1 } })), true);
  });

  test('allow-all rules added to default-deny are drift', () => {
    const live = asLive(denyAll);
    (live.spec as Record<string, unknown>).ingress = [{}];
    (live.spec as Record<string, unknown>).egress = [{}];
    assert.equal(ownedFieldsEqual(denyAll, live), false);
  });

  test('matchLabels put into an empty podSelector is drift', () => {
    const live = asLive(denyAll);
    (live.spec as Record<string, unknown>).podSelector = { matchLabels: { app: 'x' } };
    assert.equal(ownedFieldsEqual(denyAll, live), false);
  });

  test('a removed policy type, label, owner reference is drift', () => {
    const noEgress = asLive(denyAll);
    (noEgress.spec as Record<string, unknown>).policyTypes = ['Ingress'];
    assert.equal(ownedFieldsEqual(denyAll, noEgress), false);
    const noLabel = asLive(denyAll);
    noLabel.metadata.labels = { 'tenancy.io/tenant': 'acme' };
    assert.equal(ownedFieldsEqual(denyAll, noLabel), false);
    const noOwner = asLive(denyAll);
    delete noOwner.metadata.ownerReferences;
    assert.equal(ownedFieldsEqual(denyAll, noOwner), false);
  });

  test('an added label, annotation, finalizer or top-level field is drift', () => {
    for (const change of [
      (o: KubeObject) => (o.metadata.labels = { ...labels, extra: 'x' }),
      (o: KubeObject) => (o.metadata.annotations = { note: 'x' }),
      (o: KubeObject) => (o.metadata.finalizers = ['someone/keep']),
      (o: KubeObject) => (o.extra = { any: 1 }),
    ]) {
      const live = asLive(denyAll);
      change(live);
      assert.equal(ownedFieldsEqual(denyAll, live), false, String(change));
    }
  });

  test('an added RoleBinding subject is drift; a changed roleRef is seen as such', () => {
    const binding: KubeObject = {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'tenant-admins', namespace: 'tenant-acme', labels },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'admin' },
      subjects: [{ kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: 'acme-admins' }],
    };
    const live = asLive(binding);
    (live.subjects as unknown[]).push({
      kind: 'User',
      apiGroup: 'rbac.authorization.k8s.io',
      name: 'mallory',
    });
    assert.equal(ownedFieldsEqual(binding, live), false);
    assert.equal(ownedFieldDiffers(binding, live, ['roleRef']), false);
    const otherRole = asLive(binding, {
      roleRef: {
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'ClusterRole',
        name: 'cluster-admin',
      },
    });
    assert.equal(ownedFieldDiffers(binding, otherRole, ['roleRef']), true);
  });

  test('quantities compare by value, and scopes added to a quota are drift', () => {
    const quota: KubeObject = {
      apiVersion: 'v1',
      kind: 'ResourceQuota',
      metadata: { name: 'tenant-quota', namespace: 'tenant-acme', labels },
      spec: { hard: { 'requests.memory': '1024Mi', 'requests.cpu': '0.5', pods: '50' } },
    };
    const canonical = asLive(quota, {
      spec: { hard: { 'requests.memory': '1Gi', 'requests.cpu': '500m', pods: '50' } },
    });
    assert.equal(ownedFieldsEqual(quota, canonical), true);
    const bigger = asLive(quota, {
      spec: { hard: { 'requests.memory': '1025Mi', 'requests.cpu': '500m', pods: '50' } },
    });
    assert.equal(ownedFieldsEqual(quota, bigger), false);
    const scoped = asLive(quota, {
      spec: { ...(canonical.spec as object), scopes: ['BestEffort'] },
    });
    assert.equal(ownedFieldsEqual(quota, scoped), false);
    assert.equal(ownedFieldDiffers(quota, scoped, ['spec', 'scopes']), true);
    assert.equal(ownedFieldDiffers(quota, bigger, ['spec', 'scopes']), false);
  });

  test('a widened LimitRange is drift; an equal one in canonical form is not', () => {
    const limits: KubeObject = {
      apiVersion: 'v1',
      kind: 'LimitRange',
      metadata: { name: 'tenant-limits', namespace: 'tenant-acme', labels },
      spec: {
        limits: [
          {
            type: 'Container',
            default: { cpu: '500m', memory: '512Mi' },
            defaultRequest: { cpu: '0.1', memory: '128Mi' },
          },
        ],
      },
    };
    const same = asLive(limits, {
      spec: {
        limits: [
          {
            type: 'Container',
            default: { cpu: '500m', memory: '512Mi' },
            defaultRequest: { cpu: '100m', memory: '128Mi' },
          },
        ],
      },
    });
    assert.equal(ownedFieldsEqual(limits, same), true);
    const widened = structuredClone(same);
    (widened.spec as { limits: Record<string, unknown>[] }).limits[0]!.max = { cpu: '64' };
    assert.equal(ownedFieldsEqual(limits, widened), false);
  });

  test('quantities are only compared by value where quantities live', () => {
    const labelled = policy({ podSelector: { matchLabels: { size: '1Gi' } } });
    const live = asLive(labelled);
    (
      live.spec as { podSelector: { matchLabels: Record<string, string> } }
    ).podSelector.matchLabels.size = '1024Mi';
    assert.equal(ownedFieldsEqual(labelled, live), false);
  });

  test('empty lists and maps equal absent ones, but an empty selector does not', () => {
    const desired = policy({ podSelector: {}, policyTypes: ['Ingress'], ingress: [] });
    const live = asLive(policy({ podSelector: { matchLabels: {} }, policyTypes: ['Ingress'] }));
    assert.equal(ownedFieldsEqual(desired, live), true);
    const peer = (from: Record<string, unknown>) =>
      policy({ podSelector: {}, ingress: [{ from: [from] }] });
    const ownPods = peer({ podSelector: { matchLabels: { a: 'b' } } });
    const allNamespaces = asLive(
      peer({ podSelector: { matchLabels: { a: 'b' } }, namespaceSelector: {} }),
    );
    assert.equal(ownedFieldsEqual(ownPods, allNamespaces), false);
  });

  test('the namespace: the server label and spec are not ours, every other label is', () => {
    const namespace: KubeObject = {
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: {
        name: 'tenant-acme',
        labels: { ...labels, 'pod-security.kubernetes.io/enforce': 'restricted' },
      },
    };
    const live = asLive(namespace, {
      spec: { finalizers: ['kubernetes'] },
      status: { phase: 'Active' },
    });
    live.metadata.labels = {
      ...namespace.metadata.labels,
      'kubernetes.io/metadata.name': 'tenant-acme',
    };
    assert.equal(ownedFieldsEqual(namespace, live), true);
    const privileged = structuredClone(live);
    privileged.metadata.labels!['pod-security.kubernetes.io/enforce'] = 'privileged';
    assert.equal(ownedFieldsEqual(namespace, privileged), false);
    const extra = structuredClone(live);
    extra.metadata.labels!['istio-injection'] = 'enabled';
    assert.equal(ownedFieldsEqual(namespace, extra), false);
    // A replace keeps what the server owns.
    const body = replacementFor(namespace, live);
    assert.deepEqual(body.spec, { finalizers: ['kubernetes'] });
    assert.equal(body.metadata.resourceVersion, '42');
    assert.equal(body.metadata.uid, 'live-uid');
    assert.deepEqual(body.metadata.labels, namespace.metadata.labels);
  });

  test('a replacement carries exactly the desired fields, none of the drift', () => {
    const live = asLive(denyAll);
    (live.spec as Record<string, unknown>).ingress = [{}];
    live.metadata.annotations = { note: 'x' };
    const body = replacementFor(denyAll, live);
    assert.deepEqual(body.spec, denyAll.spec);
    assert.equal(body.metadata.annotations, undefined);
    assert.equal(body.metadata.resourceVersion, '42');
    assert.equal(ownedFieldsEqual(denyAll, body), true);
  });

  test('digests follow content, not key order', () => {
    const reordered = policy({ policyTypes: ['Ingress', 'Egress'], podSelector: {} });
    assert.equal(ownedFieldsDigest(denyAll), ownedFieldsDigest(reordered));
    assert.notEqual(ownedFieldsDigest(denyAll), ownedFieldsDigest(policy({ podSelector: {} })));
  });
});

describe('quantities', () => {
  test('equal values in any spelling have one canonical form', () => {
    const same = (a: string, b: string) =>
      assert.equal(exactQuantityValue(a), exactQuantityValue(b));
    same('1024Mi', '1Gi');
    same('0.5', '500m');
    same('1e3', '1k');
    same('1E3', '1000');
    same('.5', '500m');
    same('100m', '0.1');
    same('2Ki', '2048');
    same('1000000n', '1m');
  });

  test('different values differ, and non-quantities are refused', () => {
    assert.notEqual(exactQuantityValue('1Gi'), exactQuantityValue('1G'));
    assert.notEqual(exactQuantityValue('1025Mi'), exactQuantityValue('1Gi'));
    assert.notEqual(exactQuantityValue('-1'), exactQuantityValue('1'));
    for (const bad of ['', 'abc', '1.2.3', '1Gb', '1e999', 'Mi']) {
      assert.equal(exactQuantityValue(bad), undefined, bad);
    }
  });
});

describe('server answers', () => {
  test('only the remembered answer to the same desired state is accepted, with one warning', () => {
    const answers = new ServerAnswers();
    const answer = asLive(denyAll);
    (answer.spec as Record<string, unknown>).unknownDefault = 'on';
    let warnings = 0;
    assert.equal(
      answers.accepts(denyAll, answer, () => warnings++),
      false,
    );
    answers.remember(denyAll, answer);
    assert.equal(
      answers.accepts(denyAll, answer, () => warnings++),
      true,
    );
    assert.equal(
      answers.accepts(denyAll, answer, () => warnings++),
      true,
    );
    assert.equal(warnings, 1);
    // Someone's edit on top of it is still drift.
    const edited = structuredClone(answer);
    (edited.spec as Record<string, unknown>).ingress = [{}];
    assert.equal(
      answers.accepts(denyAll, edited, () => warnings++),
      false,
    );
    // Another desired state (the spec changed) is not answered by the old write.
    const other = policy({ podSelector: {}, policyTypes: ['Ingress'] });
    assert.equal(
      answers.accepts(other, answer, () => warnings++),
      false,
    );
  });
});

describe('the digest', () => {
  // The digest is written in one pass; its definition is the normalised
  // owned fields as JSON with sorted keys. Held to that definition here.
  function sortedJson(value: unknown): string {
    if (Array.isArray(value)) return `[${value.map(sortedJson).join(',')}]`;
    if (value !== null && typeof value === 'object') {
      const keys = Object.keys(value).sort();
      return `{${keys.map((k) => `${JSON.stringify(k)}:${sortedJson((value as Record<string, unknown>)[k])}`).join(',')}}`;
    }
    return JSON.stringify(value);
  }
  // Its first 128 bits, base64url.
  const byDefinition = (object: KubeObject) =>
    createHash('sha256')
      .update(sortedJson(ownedFields(object)))
      .digest()
      .subarray(0, 16)
      .toString('base64url');

  test('is the sorted JSON of the normalised owned fields, for every object a tenant gets', () => {
    const spec = tenantSpecSchema.parse({
      owners: [
        { kind: 'Group', name: 'acme-admins' },
        { kind: 'User', name: 'ada@example.com' },
      ],
      network: {
        allowEgressCIDRs: ['203.0.113.0/24', '2001:db8::/64'],
        allowIngressFromNamespaces: [
          { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } },
        ],
      },
      quota: { cpu: '4', memory: '8Gi', storage: '100Gi', ephemeralStorage: '10Gi' },
    });
    const children = desiredChildren(
      { name: 'acme', uid: 'u-1', spec, namespace: 'tenant-acme' },
      {
        platform: [{ blocks: [{ cidr: '198.51.100.7/32' }], port: 5432 }],
        forbidden: [],
      },
    );
    const objects = [children.namespace, ...children.namespaced];
    assert.ok(objects.length >= 8, `${objects.length} objects`);
    for (const object of objects)
      assert.equal(
        ownedFieldsDigest(object),
        byDefinition(object),
        `${object.kind} ${object.metadata.name}`,
      );
  });

  test('drops and keeps what normalisation drops and keeps', () => {
    const tricky: KubeObject[] = [
      policy({ podSelector: {}, policyTypes: [], ingress: [{}], egress: null }),
      policy({ podSelector: { matchLabels: {} }, ingress: [{ from: [] }, null], weird: '' }),
      {
        apiVersion: 'v1',
        kind: 'ResourceQuota',
        metadata: {
          name: 'q',
          namespace: 'n',
          labels: {},
          annotations: { 'a/b': '' },
          finalizers: [],
        },
        spec: { hard: { cpu: '1000m', memory: '1024Mi', 'requests.storage': 'not-a-quantity' } },
      },
      asLive(policy({ podSelector: {} }), { status: { anything: true } }),
      {
        apiVersion: 'v1',
        kind: 'LimitRange',
        metadata: { name: 'limits', namespace: 'n' },
        spec: { limits: [{ type: 'Container', default: { cpu: '0.5' }, max: {}, min: null }] },
      },
    ];
    for (const object of tricky) assert.equal(ownedFieldsDigest(object), byDefinition(object));
    // And the normalisations themselves: an empty podSelector is kept, an empty list is not.
    assert.notEqual(ownedFieldsDigest(policy({ podSelector: {} })), ownedFieldsDigest(policy({})));
    assert.equal(
      ownedFieldsDigest(policy({ podSelector: {}, policyTypes: [] })),
      ownedFieldsDigest(policy({ podSelector: {} })),
    );
  });
});
