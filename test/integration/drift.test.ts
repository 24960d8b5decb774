import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { after, before, describe, test } from 'node:test';
import type { KubeClient } from '../../src/k8s/client.ts';
import { collectionPath, objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import type { KubeList, KubeObject } from '../../src/k8s/types.ts';
import {
  adminClient,
  breakGlassClient,
  createTenant,
  eraseTenantAndWait,
  getObject,
  getTenant,
  kubectl,
  waitForPhase,
} from '../support/cluster.ts';
import { OperatorProcess } from '../support/operator.ts';
import { waitFor } from '../support/wait.ts';

// Drift: everything the operator made for a tenant is wholly its own, so
// whatever someone adds, changes or removes there is put back, exactly as it
// was, within seconds (from the watch: the resync period here is 5 minutes).
// The edits are made by the break-glass identity, the only one besides the
// operator that the admission guard lets touch these objects. Then the
// steady state: resyncs (and a restart) of settled tenants write nothing,
// judged by the resourceVersion of every object involved.

const NET = 'drift-net';
const QUIET = 'drift-quiet';
const NS = `tenant-${NET}`;
const TENANTS = [NET, QUIET];

type ChildKind = 'NetworkPolicy' | 'RoleBinding' | 'ResourceQuota' | 'LimitRange';
const CHILD_KINDS: ChildKind[] = ['NetworkPolicy', 'RoleBinding', 'ResourceQuota', 'LimitRange'];
const KUBECTL_RESOURCE: Record<ChildKind | 'Namespace', string> = {
  NetworkPolicy: 'networkpolicy',
  RoleBinding: 'rolebinding',
  ResourceQuota: 'resourcequota',
  LimitRange: 'limitrange',
  Namespace: 'namespace',
};

let client: KubeClient;
let breakGlass: KubeClient;
let operator: OperatorProcess;

before(async () => {
  client = await adminClient();
  breakGlass = await breakGlassClient();
  operator = await OperatorProcess.start({ resyncSeconds: 300 });
  await operator.waitUntilLeader();
  await createTenant(client, NET, {
    displayName: 'Drift Net',
    network: {
      allowIngressFromNamespaces: [
        { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } },
      ],
      allowEgressCIDRs: ['203.0.113.0/24', '198.51.100.0/24'],
    },
  });
  await createTenant(client, QUIET);
  for (const name of TENANTS) await waitForPhase(client, name, 'Ready');
});

after(async () => {
  for (const name of TENANTS) await eraseTenantAndWait(client, name).catch(() => undefined);
  await operator.stop();
  await breakGlass.close();
  await client.close();
});

/** What the operator owns of an object, straight from the server's JSON. */
function owned(object: KubeObject): Record<string, unknown> {
  const { labels, annotations, ownerReferences, finalizers } = object.metadata;
  const body =
    object.kind === 'Namespace'
      ? {}
      : Object.fromEntries(
          Object.entries(object).filter(
            ([key]) => !['apiVersion', 'kind', 'metadata', 'status'].includes(key),
          ),
        );
  return { labels, annotations, ownerReferences, finalizers, ...body };
}

async function children(namespace: string, kind: ChildKind): Promise<KubeObject[]> {
  const list = await client.request<KubeList<KubeObject>>(
    'GET',
    collectionPath(RESOURCES[kind], namespace),
  );
  return list.items.map((item) => ({ ...item, kind }));
}

async function current(kind: ChildKind | 'Namespace', name: string): Promise<KubeObject> {
  const object =
    kind === 'Namespace'
      ? await getObject(client, kind, name)
      : await getObject(client, kind, name, NS);
  assert.ok(object, `${kind} ${name} does not exist`);
  return { ...object, kind };
}

/** A JSON-pointer token for a key holding '/' or '~'. */
function token(key: string): string {
  return key.replaceAll('~', '~0').replaceAll('/', '~1');
}

/**
 * Edits the object as break-glass, checks the edit took, then waits until
 * the operator has put back exactly what was there before.
 */
async function driftAndExpectRepair(
  kind: ChildKind | 'Namespace',
  name: string,
  patch: { type: 'json' | 'merge'; body: unknown },
): Promise<void> {
  const original = await current(kind, name);
  const args = [
    'patch',
    KUBECTL_RESOURCE[kind],
    name,
    `--type=${patch.type}`,
    '-p',
    JSON.stringify(patch.body),
    '-o',
    'json',
  ];
  const result = kubectl(kind === 'Namespace' ? args : ['-n', NS, ...args], undefined, {
    as: 'break-glass',
  });
  assert.equal(result.status, 0, `${kind} ${name} ${JSON.stringify(patch.body)}: ${result.stderr}`);
  const edited = JSON.parse(result.stdout) as KubeObject;
  assert.equal(
    isDeepStrictEqual(owned({ ...edited, kind }), owned(original)),
    false,
    `the edit ${JSON.stringify(patch.body)} of ${kind} ${name} changed nothing`,
  );
  await waitFor(
    `${kind} ${name} to be restored after ${JSON.stringify(patch.body)}`,
    async () => {
      const now = await current(kind, name);
      return (
        now.metadata.resourceVersion !== edited.metadata.resourceVersion &&
        isDeepStrictEqual(owned(now), owned(original))
      );
    },
    { timeoutMs: 10_000, intervalMs: 100 },
  );
}

/**
 * Deletes the object as break-glass and creates it again changed (for fields
 * the API server does not let anyone change in place), then waits until the
 * operator has put back exactly what was there before.
 */
async function recreateAndExpectRepair(
  kind: 'RoleBinding' | 'ResourceQuota',
  name: string,
  change: (original: KubeObject) => KubeObject,
): Promise<void> {
  const original = await current(kind, name);
  const { labels, ownerReferences } = original.metadata;
  const forged = change({
    ...original,
    metadata: {
      name,
      namespace: NS,
      ...(labels ? { labels } : {}),
      ...(ownerReferences ? { ownerReferences } : {}),
    },
  });
  delete forged.status;
  // The operator may put its own back between the delete and the create: then try again.
  const created = await waitFor(
    `a forged ${kind} ${name} to be in place`,
    async () => {
      await breakGlass.delete(objectPath(RESOURCES[kind], name, NS));
      return breakGlass.create<KubeObject>(collectionPath(RESOURCES[kind], NS), forged);
    },
    { timeoutMs: 5_000, intervalMs: 50 },
  );
  assert.equal(
    isDeepStrictEqual(owned({ ...created, kind }), owned(original)),
    false,
    `the forged ${kind} ${name} is the same as the original`,
  );
  await waitFor(
    `${kind} ${name} to be put back after being recreated changed`,
    async () => {
      const now = await current(kind, name);
      return (
        now.metadata.uid !== created.metadata.uid && isDeepStrictEqual(owned(now), owned(original))
      );
    },
    { timeoutMs: 10_000, intervalMs: 100 },
  );
}

/** Add a field, change a field, remove a field: the three shapes of drift. */
function networkPolicyEdits(policy: KubeObject): { type: 'json'; body: unknown }[] {
  const spec = policy.spec as {
    policyTypes: string[];
    ingress?: unknown[];
    egress?: unknown[];
  };
  const add = spec.ingress
    ? { op: 'add', path: '/spec/ingress/-', value: {} }
    : { op: 'add', path: '/spec/ingress', value: [{}] };
  const remove =
    spec.policyTypes.length > 1
      ? { op: 'remove', path: `/spec/policyTypes/${spec.policyTypes.length - 1}` }
      : { op: 'remove', path: spec.egress ? '/spec/egress' : '/spec/ingress' };
  return [
    { type: 'json', body: [add] },
    {
      type: 'json',
      body: [{ op: 'replace', path: '/spec/podSelector', value: { matchLabels: { app: 'x' } } }],
    },
    { type: 'json', body: [remove] },
    // Our labels removed: the object drops out of the operator's label-selected cache.
    {
      type: 'json',
      body: [{ op: 'remove', path: `/metadata/labels/${token('app.kubernetes.io/managed-by')}` }],
    },
    { type: 'json', body: [{ op: 'add', path: '/metadata/annotations', value: { note: 'x' } }] },
  ];
}

describe('drift in every child is put back exactly', () => {
  test('every NetworkPolicy: rules added, podSelector changed, parts removed', async () => {
    const policies = await children(NS, 'NetworkPolicy');
    const names = policies.map((p) => p.metadata.name).sort();
    for (const expected of [
      'default-deny',
      'allow-same-namespace',
      'allow-dns',
      'allow-ingress-from-namespaces',
      'allow-egress-cidrs',
    ]) {
      assert.ok(names.includes(expected), `${expected} missing from ${names.join(', ')}`);
    }
    for (const policy of policies) {
      for (const edit of networkPolicyEdits(policy))
        await driftAndExpectRepair('NetworkPolicy', policy.metadata.name, edit);
    }
  });

  test('default-deny opened to everything both ways (kubectl patch --type merge) is closed again', async () => {
    await driftAndExpectRepair('NetworkPolicy', 'default-deny', {
      type: 'merge',
      body: { spec: { ingress: [{}], egress: [{}] } },
    });
  });

  test('the owners RoleBinding: subject added, changed, removed', async () => {
    const subject = { kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'mallory' };
    await driftAndExpectRepair('RoleBinding', 'tenant-admins', {
      type: 'json',
      body: [{ op: 'add', path: '/subjects/-', value: subject }],
    });
    await driftAndExpectRepair('RoleBinding', 'tenant-admins', {
      type: 'json',
      body: [{ op: 'replace', path: '/subjects/0/name', value: 'mallory' }],
    });
    await driftAndExpectRepair('RoleBinding', 'tenant-admins', {
      type: 'json',
      body: [{ op: 'remove', path: '/subjects/0' }],
    });
    await driftAndExpectRepair('RoleBinding', 'tenant-admins', {
      type: 'json',
      body: [{ op: 'add', path: '/metadata/labels/extra', value: 'x' }],
    });
  });

  test('the owners RoleBinding recreated with another role is put back (roleRef is immutable)', async () => {
    await recreateAndExpectRepair('RoleBinding', 'tenant-admins', (original) => ({
      ...original,
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'admin' },
    }));
  });

  test('the ResourceQuota recreated with scopes is put back (scopes are immutable)', async () => {
    // Scoped to non-best-effort pods, the quota leaves best-effort pods and
    // everything that is not a pod (storage, object counts: no pod scope
    // allows them) unlimited.
    await recreateAndExpectRepair('ResourceQuota', 'tenant-quota', (original) => {
      const hard = Object.fromEntries(
        Object.entries((original.spec as { hard: Record<string, string> }).hard).filter(
          ([resource]) => /^(pods|(requests|limits)\.(cpu|memory))$/.test(resource),
        ),
      );
      return { ...original, spec: { hard, scopes: ['NotBestEffort'] } };
    });
  });

  test('the ResourceQuota: limits changed, removed, added', async () => {
    await driftAndExpectRepair('ResourceQuota', 'tenant-quota', {
      type: 'json',
      body: [{ op: 'replace', path: '/spec/hard/pods', value: '999' }],
    });
    await driftAndExpectRepair('ResourceQuota', 'tenant-quota', {
      type: 'json',
      body: [{ op: 'remove', path: '/spec/hard/limits.memory' }],
    });
    await driftAndExpectRepair('ResourceQuota', 'tenant-quota', {
      type: 'json',
      body: [{ op: 'add', path: '/spec/hard/services', value: '5' }],
    });
  });

  test('the LimitRange: widened, a max added, a default removed', async () => {
    await driftAndExpectRepair('LimitRange', 'tenant-limits', {
      type: 'json',
      body: [{ op: 'replace', path: '/spec/limits/0/default/memory', value: '16Gi' }],
    });
    await driftAndExpectRepair('LimitRange', 'tenant-limits', {
      type: 'json',
      body: [{ op: 'add', path: '/spec/limits/0/max', value: { cpu: '64', memory: '64Gi' } }],
    });
    await driftAndExpectRepair('LimitRange', 'tenant-limits', {
      type: 'json',
      body: [{ op: 'remove', path: '/spec/limits/0/defaultRequest' }],
    });
  });

  test("the namespace's labels and annotations: added, changed, removed", async () => {
    await driftAndExpectRepair('Namespace', NS, {
      type: 'json',
      body: [{ op: 'add', path: '/metadata/labels/istio-injection', value: 'enabled' }],
    });
    await driftAndExpectRepair('Namespace', NS, {
      type: 'json',
      body: [
        {
          op: 'replace',
          path: `/metadata/labels/${token('pod-security.kubernetes.io/enforce')}`,
          value: 'privileged',
        },
      ],
    });
    await driftAndExpectRepair('Namespace', NS, {
      type: 'json',
      body: [
        { op: 'remove', path: `/metadata/labels/${token('pod-security.kubernetes.io/warn')}` },
      ],
    });
    await driftAndExpectRepair('Namespace', NS, {
      type: 'json',
      body: [
        {
          op: 'replace',
          path: `/metadata/annotations/${token('tenancy.io/display-name')}`,
          value: 'Someone Else',
        },
      ],
    });
  });

  test('deleted children come back', async () => {
    for (const [kind, name] of [
      ['NetworkPolicy', 'default-deny'],
      ['RoleBinding', 'tenant-admins'],
      ['ResourceQuota', 'tenant-quota'],
      ['LimitRange', 'tenant-limits'],
    ] as const) {
      const original = await current(kind, name);
      await breakGlass.delete(objectPath(RESOURCES[kind], name, NS));
      await waitFor(
        `${kind} ${name} to be recreated`,
        async () => {
          const now = await getObject(client, kind, name, NS);
          return (
            now !== undefined &&
            now.metadata.uid !== original.metadata.uid &&
            isDeepStrictEqual(owned({ ...now, kind }), owned(original))
          );
        },
        { timeoutMs: 10_000, intervalMs: 100 },
      );
    }
  });

  test('a NetworkPolicy with our labels that we did not make is removed', async () => {
    const policies = collectionPath(RESOURCES.NetworkPolicy, NS);
    const template = await current('NetworkPolicy', 'default-deny');
    const forged = await breakGlass.create<KubeObject>(policies, {
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'allow-everything', namespace: NS, labels: template.metadata.labels ?? {} },
      spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'], ingress: [{}], egress: [{}] },
    });
    assert.ok(forged.metadata.uid);
    await waitFor(
      'the forged policy to be removed',
      async () => !(await getObject(client, 'NetworkPolicy', 'allow-everything', NS)),
      { timeoutMs: 10_000, intervalMs: 100 },
    );
  });

  test('repairs are counted per kind', async () => {
    for (const kind of [...CHILD_KINDS, 'Namespace']) {
      assert.ok(
        (await operator.metric('tenant_operator_drift_repairs_total', `kind="${kind}"`)) >= 3,
        kind,
      );
    }
  });
});

describe('steady state', () => {
  /** resourceVersion of every object the operator keeps for the tenants, and of the tenants. */
  async function versions(): Promise<Map<string, string>> {
    const result = new Map<string, string>();
    for (const name of TENANTS) {
      const tenant = await getTenant(client, name);
      result.set(`Tenant/${name}`, tenant?.metadata.resourceVersion ?? 'missing');
      const namespace = await getObject(client, 'Namespace', `tenant-${name}`);
      result.set(`Namespace/${name}`, namespace?.metadata.resourceVersion ?? 'missing');
      for (const kind of CHILD_KINDS) {
        for (const child of await children(`tenant-${name}`, kind)) {
          result.set(
            `${kind}/${name}/${child.metadata.name}`,
            child.metadata.resourceVersion ?? '',
          );
        }
      }
    }
    return result;
  }

  test('a restart and resyncs of settled tenants write nothing', async () => {
    await operator.waitUntilIdle();
    const before = await versions();
    assert.ok(before.size >= 2 * 7, `too few objects: ${[...before.keys()].join(', ')}`);
    // A fresh operator remembers none of its earlier writes: it must find
    // every object in sync by comparison alone.
    await operator.stop();
    operator = await OperatorProcess.start({ resyncSeconds: 2 });
    await operator.waitUntilLeader();
    await operator.waitUntilIdle();
    const reconciles = await operator.metric('tenant_operator_reconcile_duration_seconds_count');
    await waitFor(
      'two more resyncs of both tenants',
      async () =>
        (await operator.metric('tenant_operator_reconcile_duration_seconds_count')) >=
        reconciles + 2 * TENANTS.length,
      { timeoutMs: 20_000 },
    );
    await operator.waitUntilIdle();
    assert.deepEqual(await versions(), before);
    assert.equal(await operator.writes(), 0);
    for (const name of TENANTS)
      assert.equal((await getTenant(client, name))?.status?.phase, 'Ready');
  });
});
