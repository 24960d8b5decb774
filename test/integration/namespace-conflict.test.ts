import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { KubeClient } from '../../src/k8s/client.ts';
import { collectionPath, objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import type { KubeList, KubeObject } from '../../src/k8s/types.ts';
import {
  adminClient,
  breakGlassClient,
  createTenant,
  eraseTenantAndWait,
  requestErasure,
  getObject,
  getTenant,
} from '../support/cluster.ts';
import { OperatorProcess } from '../support/operator.ts';
import { waitFor } from '../support/wait.ts';

// A namespace named `tenant-<name>` that was not created for this Tenant is
// never adopted: someone else's workloads (or an earlier Tenant's data) would
// otherwise come under the new tenant's owners, and the Tenant's deletion
// would delete them. The Tenant reports NamespaceConflict and nothing in the
// namespace is touched, not even when the Tenant is deleted.

const FOREIGN = 'nsc-foreign';
const LEFTOVER = 'nsc-leftover';

let client: KubeClient;
let breakGlass: KubeClient;
let operator: OperatorProcess;

before(async () => {
  client = await adminClient();
  breakGlass = await breakGlassClient();
  operator = await OperatorProcess.start({ resyncSeconds: 300 });
  await operator.waitUntilLeader();
});

after(async () => {
  for (const name of [FOREIGN, LEFTOVER]) {
    await requestErasure(client, name).catch(() => undefined);
    await client.delete(objectPath(RESOURCES.Tenant, name)).catch(() => undefined);
    await breakGlass
      .delete(objectPath(RESOURCES.Namespace, `tenant-${name}`))
      .catch(() => undefined);
  }
  for (const name of [FOREIGN, LEFTOVER])
    await eraseTenantAndWait(client, name).catch(() => undefined);
  await operator.stop();
  await breakGlass.close();
  await client.close();
});

/** A namespace made by hand, with a ConfigMap in it. */
async function makeNamespace(name: string, labels: Record<string, string>): Promise<void> {
  await breakGlass.create(collectionPath(RESOURCES.Namespace), {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels, annotations: { owner: 'someone else' } },
  });
  await client.create(`/api/v1/namespaces/${name}/configmaps`, {
    apiVersion: 'v1',
    kind: 'ConfigMap',
    metadata: { name: 'keep-me' },
    data: { precious: 'yes' },
  });
}

/** Everything in the namespace that could matter: the namespace itself and what is in it. */
async function snapshot(namespace: string) {
  const ns = await getObject(client, 'Namespace', namespace);
  assert.ok(ns, `namespace ${namespace} is gone`);
  const inside: Record<string, string[]> = {};
  const collections = {
    NetworkPolicy: collectionPath(RESOURCES.NetworkPolicy, namespace),
    RoleBinding: collectionPath(RESOURCES.RoleBinding, namespace),
    ResourceQuota: collectionPath(RESOURCES.ResourceQuota, namespace),
    LimitRange: collectionPath(RESOURCES.LimitRange, namespace),
    Secret: collectionPath(RESOURCES.Secret, namespace),
    ConfigMap: `/api/v1/namespaces/${namespace}/configmaps`,
  };
  for (const [kind, path] of Object.entries(collections)) {
    const list = await client.request<KubeList<KubeObject>>('GET', path);
    inside[kind] = list.items
      .map((item) => `${item.metadata.name}@${item.metadata.resourceVersion}`)
      .filter((entry) => !entry.startsWith('kube-root-ca.crt@'))
      .sort();
  }
  return {
    resourceVersion: ns.metadata.resourceVersion,
    labels: ns.metadata.labels,
    annotations: ns.metadata.annotations,
    ownerReferences: ns.metadata.ownerReferences,
    deletionTimestamp: ns.metadata.deletionTimestamp,
    inside,
  };
}

async function waitForConflict(name: string) {
  return waitFor(
    `tenant ${name} to report NamespaceConflict`,
    async () => {
      const tenant = await getTenant(client, name);
      const ready = tenant?.status?.conditions?.find((c) => c.type === 'Ready');
      return ready?.reason === 'NamespaceConflict' ? tenant : undefined;
    },
    { timeoutMs: 20_000 },
  );
}

async function warningEvents(tenantUid: string, reason: string): Promise<number> {
  const events = await client.request<{
    items: { reason: string; type: string; involvedObject: { uid?: string } }[];
  }>('GET', '/api/v1/namespaces/default/events');
  return events.items.filter(
    (e) => e.involvedObject.uid === tenantUid && e.reason === reason && e.type === 'Warning',
  ).length;
}

describe('a namespace that is not the tenant’s', () => {
  test('made by hand: NamespaceConflict, untouched, and left behind when the Tenant goes', async () => {
    const namespace = `tenant-${FOREIGN}`;
    await makeNamespace(namespace, { team: 'someone-else' });
    const before = await snapshot(namespace);
    assert.equal(before.inside.ConfigMap?.length, 1);
    assert.match(before.inside.ConfigMap[0] ?? '', /^keep-me@/);

    await createTenant(client, FOREIGN);
    const tenant = await waitForConflict(FOREIGN);
    const ready = tenant.status?.conditions?.find((c) => c.type === 'Ready');
    assert.equal(ready?.status, 'False');
    assert.match(ready?.message ?? '', /was not created for this Tenant/);
    assert.equal(tenant.status?.phase, 'Failed');
    assert.equal(tenant.status?.namespace, undefined);
    assert.equal(
      tenant.status?.conditions?.find((c) => c.type === 'NamespaceReady')?.reason,
      'NamespaceConflict',
    );
    // Once, not at every look.
    await operator.waitUntilIdle();
    assert.equal(await warningEvents(tenant.metadata.uid ?? '', 'NamespaceConflict'), 1);
    assert.deepEqual(await snapshot(namespace), before);

    await deleteTenant(FOREIGN);
    assert.deepEqual(await snapshot(namespace), before);
  });

  test('left by an earlier Tenant of the same name (another uid): a conflict too', async () => {
    const namespace = `tenant-${LEFTOVER}`;
    await makeNamespace(namespace, {
      'app.kubernetes.io/managed-by': 'tenant-operator',
      'tenancy.io/tenant': LEFTOVER,
      'tenancy.io/tenant-uid': '00000000-0000-0000-0000-000000000000',
    });
    const before = await snapshot(namespace);
    await createTenant(client, LEFTOVER);
    const tenant = await waitForConflict(LEFTOVER);
    assert.match(
      tenant.status?.conditions?.find((c) => c.type === 'Ready')?.message ?? '',
      /another Tenant, uid 00000000-0000-0000-0000-000000000000/,
    );
    await operator.waitUntilIdle();
    assert.deepEqual(await snapshot(namespace), before);

    // Once that namespace is gone, the tenant gets its own.
    await breakGlass.delete(objectPath(RESOURCES.Namespace, namespace));
    const ready = await waitFor(
      `tenant ${LEFTOVER} to be Ready in a namespace of its own`,
      async () => {
        const t = await getTenant(client, LEFTOVER);
        return t?.status?.phase === 'Ready' ? t : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 500 },
    );
    const own = await getObject(client, 'Namespace', namespace);
    assert.equal(own?.metadata.labels?.['tenancy.io/tenant-uid'], ready.metadata.uid);
    assert.equal(own?.metadata.annotations?.owner, undefined);
    await eraseTenantAndWait(client, LEFTOVER);
  });
});

/** Erases and deletes the Tenant, and waits until it is gone (its namespace is not ours to wait for). */
async function deleteTenant(name: string): Promise<void> {
  await requestErasure(client, name);
  await client.delete(objectPath(RESOURCES.Tenant, name));
  await waitFor(`tenant ${name} to be gone`, async () => !(await getTenant(client, name)), {
    timeoutMs: 30_000,
  });
}
