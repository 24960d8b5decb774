import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { KubeClient } from '../../src/k8s/client.ts';
import { objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import {
  eraseTenantAndWait,
  getObject,
  getTenant,
  kubectl,
  waitForPhase,
} from '../support/cluster.ts';
import { TestEnvironment } from '../support/fixture.ts';
import { waitFor } from '../support/wait.ts';

// Active → Suspended → Closed (and back), then deletion.

let env: TestEnvironment;
let client: KubeClient;

before(async () => {
  env = await TestEnvironment.start('lifecycle');
  client = env.client;
  await env.tenantReady('life', { network: { allowEgressCIDRs: ['198.51.100.0/24'] } });
});

after(async () => {
  await env[Symbol.asyncDispose]();
});

async function setState(state: string): Promise<void> {
  await client.mergePatch(objectPath(RESOURCES.Tenant, 'lifecycle-life'), { spec: { state } });
}

async function policies(): Promise<string[]> {
  const list = await client.request<{ items: { metadata: { name: string } }[] }>(
    'GET',
    '/apis/networking.k8s.io/v1/namespaces/tenant-lifecycle-life/networkpolicies',
  );
  return list.items.map((p) => p.metadata.name).sort();
}

describe('lifecycle', () => {
  test('suspension denies all traffic but keeps the owners', async () => {
    await setState('Suspended');
    await waitForPhase(client, 'lifecycle-life', 'Suspended');
    await waitFor(
      'only default-deny left',
      async () => JSON.stringify(await policies()) === '["default-deny"]',
    );
    assert.ok(await getObject(client, 'RoleBinding', 'tenant-admins', 'tenant-lifecycle-life'));
  });

  test('closure cuts access at once and starts the retention clock', async () => {
    await setState('Closed');
    const tenant = await waitForPhase(client, 'lifecycle-life', 'Closed');
    await waitFor(
      'owner binding removed',
      async () =>
        !(await getObject(client, 'RoleBinding', 'tenant-admins', 'tenant-lifecycle-life')),
    );
    assert.deepEqual(await policies(), ['default-deny']);
    const closedAt = Date.parse(tenant.status?.closedAt ?? '');
    const purgeAfter = Date.parse(tenant.status?.purgeAfter ?? '');
    assert.ok(Math.abs(Date.now() - closedAt) < 60_000, `closedAt ${tenant.status?.closedAt}`);
    assert.equal(purgeAfter - closedAt, 60 * 86_400_000);
    // `kubectl get` answers "is it healthy, and when is it erased".
    const table = kubectl(['get', 'tenant', 'lifecycle-life']);
    assert.equal(table.status, 0, table.stderr);
    const [header, row] = table.stdout.split('\n');
    assert.match(header ?? '', /^NAME\s+STATE\s+PHASE\s+REGION\s+LAST BACKUP\s+PURGE AFTER\s+AGE$/);
    assert.match(
      row ?? '',
      new RegExp(
        `^lifecycle-life\\s+Closed\\s+Closed\\s+${tenant.status?.purgeAfter ?? 'missing'}\\s`,
      ),
    );
    // Data stays until the timer runs out.
    assert.ok(await getObject(client, 'Namespace', 'tenant-lifecycle-life'));
  });

  test('the retention clock does not move on later reconciles', async () => {
    const before = await getTenant(client, 'lifecycle-life');
    await client.mergePatch(objectPath(RESOURCES.Tenant, 'lifecycle-life'), {
      spec: { displayName: 'Life Inc' },
    });
    await waitFor('generation observed', async () => {
      const t = await getTenant(client, 'lifecycle-life');
      return t?.status?.observedGeneration === t?.metadata.generation;
    });
    const after = await getTenant(client, 'lifecycle-life');
    assert.equal(after?.status?.closedAt, before?.status?.closedAt);
    assert.equal(after?.status?.purgeAfter, before?.status?.purgeAfter);
  });

  test('re-opening before the purge restores access and network', async () => {
    await setState('Active');
    const tenant = await waitForPhase(client, 'lifecycle-life', 'Ready');
    assert.equal(tenant.status?.closedAt, undefined);
    assert.ok(await getObject(client, 'RoleBinding', 'tenant-admins', 'tenant-lifecycle-life'));
    // With Vault configured (its address is an IP here), apps may also reach it.
    assert.deepEqual(await policies(), [
      'allow-database-and-vault',
      'allow-dns',
      'allow-egress-cidrs',
      'allow-same-namespace',
      'default-deny',
    ]);
  });

  test('a deleted tenant is held, closed since its earlier closure, until its erasure lets it go', async () => {
    await setState('Closed');
    const closed = await waitForPhase(client, 'lifecycle-life', 'Closed');
    await client.delete(objectPath(RESOURCES.Tenant, 'lifecycle-life'));
    await env.operator.waitUntilIdle();
    const held = await getTenant(client, 'lifecycle-life');
    assert.ok(held?.metadata.deletionTimestamp);
    assert.equal(held.status?.phase, 'Closed');
    // Closed before it was deleted: the clock runs from the closure.
    assert.equal(held.status?.closedAt, closed.status?.closedAt);
    assert.equal(held.status?.purgeAfter, closed.status?.purgeAfter);
    assert.ok(await getObject(client, 'Namespace', 'tenant-lifecycle-life'));
    await eraseTenantAndWait(client, 'lifecycle-life');
    assert.equal(await getObject(client, 'Namespace', 'tenant-lifecycle-life'), undefined);
  });
});
