import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { KubeClient } from '../../src/k8s/client.ts';
import { objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import {
  adminClient,
  createTenant,
  deleteTenantAndWait,
  getObject,
  getTenant,
  kubectl,
  waitForPhase,
} from '../support/cluster.ts';
import { OperatorProcess } from '../support/operator.ts';
import { waitFor } from '../support/wait.ts';

// Drift repair and the steady state: what someone changes is put back within
// seconds, and a resync of settled tenants writes nothing at all.

let client: KubeClient;
let operator: OperatorProcess;

before(async () => {
  client = await adminClient();
  operator = await OperatorProcess.start({ resyncSeconds: 2 });
  await operator.waitUntilLeader();
  await createTenant(client, 'drift');
  await createTenant(client, 'steady');
  await waitForPhase(client, 'drift', 'Ready');
  await waitForPhase(client, 'steady', 'Ready');
});

after(async () => {
  await deleteTenantAndWait(client, 'drift');
  await deleteTenantAndWait(client, 'steady');
  await operator.stop();
  await client.close();
});

describe('drift', () => {
  test('a deleted NetworkPolicy comes back within seconds', async () => {
    const before = await getObject(client, 'NetworkPolicy', 'default-deny', 'tenant-drift');
    assert.ok(before?.metadata.uid);
    await client.delete(objectPath(RESOURCES.NetworkPolicy, 'default-deny', 'tenant-drift'));
    const restored = await waitFor(
      'default-deny to be recreated',
      async () => {
        const now = await getObject(client, 'NetworkPolicy', 'default-deny', 'tenant-drift');
        return now && now.metadata.uid !== before.metadata.uid ? now : undefined;
      },
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    assert.deepEqual((restored.spec as { policyTypes: string[] }).policyTypes, [
      'Ingress',
      'Egress',
    ]);
  });

  test('an edited quota and a deleted owner binding are restored', async () => {
    const patch = kubectl([
      '-n',
      'tenant-drift',
      'patch',
      'resourcequota',
      'tenant-quota',
      '--type=merge',
      '-p',
      '{"spec":{"hard":{"pods":"999"}}}',
    ]);
    assert.equal(patch.status, 0, patch.stderr);
    await client.delete(objectPath(RESOURCES.RoleBinding, 'tenant-admins', 'tenant-drift'));
    await waitFor(
      'quota and binding to be restored',
      async () => {
        const quota = await getObject(client, 'ResourceQuota', 'tenant-quota', 'tenant-drift');
        const binding = await getObject(client, 'RoleBinding', 'tenant-admins', 'tenant-drift');
        return (
          (quota?.spec as { hard: Record<string, string> }).hard.pods === '50' &&
          binding !== undefined
        );
      },
      { timeoutMs: 10_000, intervalMs: 100 },
    );
    assert.ok(
      (await operator.metric('tenant_operator_drift_repairs_total', 'kind="ResourceQuota"')) >= 1,
    );
  });

  test('a label removed from the namespace is put back', async () => {
    const result = kubectl([
      'label',
      'namespace',
      'tenant-drift',
      'pod-security.kubernetes.io/enforce=privileged',
      '--overwrite',
    ]);
    assert.equal(result.status, 0, result.stderr);
    await waitFor(
      'Pod Security label to be restored',
      async () =>
        (await getObject(client, 'Namespace', 'tenant-drift'))?.metadata.labels?.[
          'pod-security.kubernetes.io/enforce'
        ] === 'restricted',
      { timeoutMs: 10_000, intervalMs: 100 },
    );
  });
});

describe('steady state', () => {
  test('resyncs of unchanged tenants perform zero writes', async () => {
    await operator.waitUntilIdle();
    const writesBefore = await operator.writes();
    const reconcilesBefore = await operator.metric(
      'tenant_operator_reconcile_duration_seconds_count',
    );
    // The resync period is 2 s: wait for at least two full resyncs of both tenants.
    await waitFor(
      'two resyncs',
      async () =>
        (await operator.metric('tenant_operator_reconcile_duration_seconds_count')) >=
        reconcilesBefore + 4,
      { timeoutMs: 15_000 },
    );
    assert.equal(await operator.writes(), writesBefore);
    const tenant = await getTenant(client, 'steady');
    assert.equal(tenant?.status?.phase, 'Ready');
  });
});
