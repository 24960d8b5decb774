import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { TENANT_FINALIZER_POLICY } from '../../src/admission/tenant-finalizer.ts';
import { FIELD_MANAGER, FINALIZER } from '../../src/api/constants.ts';
import type { TenantObject } from '../../src/tenant/model.ts';
import { installTenantFinalizerPolicy, probeGetsFinalizer } from '../../src/cli/install-crds.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { collectionPath, objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import {
  adminClient,
  createTenant,
  deleteUnreconciledTenant,
  eraseTenantAndWait,
  getTenant,
  kubectl,
  tenantManifest,
  waitForPhase,
} from '../support/cluster.ts';
import { OperatorProcess } from '../support/operator.ts';
import { waitFor } from '../support/wait.ts';

// The Tenant's finalizer comes from the API server (a MutatingAdmissionPolicy
// install-crds applies), so the operator writes nothing to give it; where the
// policy is missing the operator still adds it. Judged from what the API
// server stores: the finalizers and who owns them in managedFields.

const PREFIX = 'fin';
let client: KubeClient;

before(async () => {
  client = await adminClient();
});

after(async () => {
  // Tenants the operator never saw: nothing of theirs to erase but the object.
  const { items } = await client.request<{ items: TenantObject[] }>(
    'GET',
    collectionPath(RESOURCES.Tenant),
  );
  for (const tenant of items)
    if (tenant.metadata.name.startsWith(`${PREFIX}-`))
      await deleteUnreconciledTenant(client, tenant.metadata.name);
  await client.close();
});

/** Who owns metadata.finalizers on the stored object: managers of the main resource. */
function finalizerOwners(tenant: KubeObject): string[] {
  return (tenant.metadata.managedFields ?? [])
    .filter((entry) => entry.subresource === undefined)
    .filter((entry) => JSON.stringify(entry.fieldsV1 ?? {}).includes('"f:finalizers"'))
    .map((entry) => `${entry.manager}/${entry.operation}`);
}

async function stored(name: string): Promise<TenantObject> {
  const tenant = await getTenant(client, name);
  if (!tenant) throw new Error(`Tenant ${name} is not there`);
  return tenant;
}

describe('without the operator: the API server adds the finalizer', () => {
  test('a created Tenant comes back with it, next to the finalizers it was created with', async () => {
    const plain = await createTenant(client, `${PREFIX}-plain`);
    assert.deepEqual(plain.metadata.finalizers, [FINALIZER]);
    const other = await client.create(collectionPath(RESOURCES.Tenant), {
      ...tenantManifest(`${PREFIX}-other`),
      metadata: { name: `${PREFIX}-other`, finalizers: ['example.com/keep'] },
    });
    assert.deepEqual(other.metadata.finalizers, ['example.com/keep', FINALIZER]);
    const already = await client.create(collectionPath(RESOURCES.Tenant), {
      ...tenantManifest(`${PREFIX}-already`),
      metadata: { name: `${PREFIX}-already`, finalizers: [FINALIZER] },
    });
    assert.deepEqual(already.metadata.finalizers, [FINALIZER]);
    assert.deepEqual((await stored(`${PREFIX}-plain`)).metadata.finalizers, [FINALIZER]);
  });

  test('kubectl apply, client-side and server-side, applied twice, leaves it in place', async () => {
    for (const [name, args] of [
      [`${PREFIX}-csa`, ['apply', '-f', '-']],
      [`${PREFIX}-ssa`, ['apply', '--server-side', '--field-manager', 'pipeline', '-f', '-']],
    ] as const) {
      const manifest = JSON.stringify(tenantManifest(name));
      for (let i = 0; i < 2; i++) {
        const applied = kubectl([...args], manifest);
        assert.equal(applied.status, 0, applied.stderr);
      }
      // A changed spec, applied again: the appliers never listed the finalizer,
      // so no apply of theirs removes it.
      const changed = kubectl(
        [...args],
        JSON.stringify(tenantManifest(name, { quota: { pods: 7 } })),
      );
      assert.equal(changed.status, 0, changed.stderr);
      assert.deepEqual((await stored(name)).metadata.finalizers, [FINALIZER], name);
    }
  });

  test('an update that drops it outside a deletion gets it back', async () => {
    const name = `${PREFIX}-plain`;
    const patched = await client.jsonPatch<TenantObject>(objectPath(RESOURCES.Tenant, name), [
      { op: 'remove', path: '/metadata/finalizers' },
    ]);
    assert.deepEqual(patched.metadata.finalizers, [FINALIZER]);
    const replaced = await client.mergePatch<TenantObject>(objectPath(RESOURCES.Tenant, name), {
      metadata: { finalizers: ['example.com/other'] },
    });
    assert.deepEqual(replaced.metadata.finalizers, ['example.com/other', FINALIZER]);
  });

  test('a deleted Tenant is held by it, and lets it go', async () => {
    const name = `${PREFIX}-deleted`;
    await createTenant(client, name);
    await client.delete(objectPath(RESOURCES.Tenant, name));
    const held = await stored(name);
    assert.ok(held.metadata.deletionTimestamp, 'the finalizer holds the deleted Tenant');
    await client.jsonPatch(objectPath(RESOURCES.Tenant, name), [
      { op: 'test', path: '/metadata/finalizers/0', value: FINALIZER },
      { op: 'remove', path: '/metadata/finalizers/0' },
    ]);
    await waitFor('the deleted Tenant to go', async () => !(await getTenant(client, name)));
  });
});

describe('with the operator', () => {
  let operator: OperatorProcess;
  const WITH_POLICY = `${PREFIX}-op-a`;
  const WITHOUT_POLICY = `${PREFIX}-op-b`;

  before(async () => {
    operator = await OperatorProcess.start();
    await operator.waitUntilLeader();
  });

  after(async () => {
    // Whatever happened, the policy is back for the next test files.
    await installTenantFinalizerPolicy(client);
    for (const name of [WITH_POLICY, WITHOUT_POLICY])
      if (await getTenant(client, name)) await eraseTenantAndWait(client, name);
    await operator.stop();
  });

  test('the operator provisions a Tenant without writing to it: the finalizer was there', async () => {
    // Created by kubectl, so every write under the operator's field manager is the operator's.
    const created = kubectl(['create', '-f', '-'], JSON.stringify(tenantManifest(WITH_POLICY)));
    assert.equal(created.status, 0, created.stderr);
    const ready = await waitForPhase(client, WITH_POLICY, 'Ready');
    assert.deepEqual(ready.metadata.finalizers, [FINALIZER]);
    // The operator wrote only the status subresource.
    const writes = (ready.metadata.managedFields ?? []).filter(
      (entry) => entry.manager === FIELD_MANAGER,
    );
    assert.deepEqual(
      writes.map((entry) => entry.subresource),
      ['status'],
      JSON.stringify(ready.metadata.managedFields),
    );
  });

  test('without the policy the operator adds the finalizer itself', async () => {
    await client.delete(
      objectPath(RESOURCES.MutatingAdmissionPolicyBinding, TENANT_FINALIZER_POLICY),
    );
    // The API server drops the policy in the background: wait until it has.
    await waitFor('the policy to be out of force', async () => !(await probeGetsFinalizer(client)));
    const created = kubectl(
      ['create', '-o', 'json', '-f', '-'],
      JSON.stringify(tenantManifest(WITHOUT_POLICY)),
    );
    assert.equal(created.status, 0, created.stderr);
    assert.equal((JSON.parse(created.stdout) as TenantObject).metadata.finalizers, undefined);
    const ready = await waitForPhase(client, WITHOUT_POLICY, 'Ready');
    assert.deepEqual(ready.metadata.finalizers, [FINALIZER]);
    assert.deepEqual(finalizerOwners(ready), [`${FIELD_MANAGER}/Update`]);
    assert.equal(await installTenantFinalizerPolicy(client), 'enforced');
  });
});
