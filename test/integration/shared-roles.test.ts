import assert from 'node:assert/strict';
import { isDeepStrictEqual } from 'node:util';
import { after, before, test } from 'node:test';
import type { KubeClient } from '../../src/k8s/client.ts';
import { objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import { accessAllowed, breakGlassClient } from '../support/cluster.ts';
import { TestEnvironment } from '../support/fixture.ts';
import { waitFor } from '../support/wait.ts';

// The tenant-admin ClusterRoles are shared by every tenant: a rule slipped
// into the base role would widen every tenant's owners at once (here: lift
// their own quota). No watch follows them, so the resync puts them back.

let env: TestEnvironment;
let breakGlass: KubeClient;
const BASE = objectPath(RESOURCES.ClusterRole, 'tenancy.io:tenant-admin-base');

before(async () => {
  env = await TestEnvironment.start('roles', { resyncSeconds: 2 });
  breakGlass = await breakGlassClient();
  await env.tenantReady('a');
});

after(async () => {
  await breakGlass.close();
  await env[Symbol.asyncDispose]();
});

function ownerMay(verb: string, resource: string): Promise<boolean> {
  return accessAllowed(env.client, {
    user: 'alice',
    groups: [`${env.name('a')}-admins`, 'system:authenticated'],
    verb,
    resource,
    namespace: `tenant-${env.name('a')}`,
  });
}

test('a rule added to the shared base role is removed again, and owners lose it', async () => {
  const before = await env.client.get<KubeObject & { rules: unknown[] }>(BASE);
  assert.ok(before);
  assert.equal(await ownerMay('patch', 'resourcequotas'), false);
  const widened = await breakGlass.jsonPatch<KubeObject>(BASE, [
    {
      op: 'add',
      path: '/rules/-',
      value: { apiGroups: [''], resources: ['resourcequotas'], verbs: ['patch', 'update'] },
    },
  ]);
  // Put back by the next resync (2 s): a newer version holding the old rules.
  const restored = await waitFor(
    'the base role to be put back',
    async () => {
      const now = await env.client.get<KubeObject & { rules: unknown[] }>(BASE);
      return now &&
        now.metadata.resourceVersion !== widened.metadata.resourceVersion &&
        isDeepStrictEqual(now.rules, before.rules)
        ? now
        : undefined;
    },
    { timeoutMs: 15_000 },
  );
  assert.deepEqual(restored.rules, before.rules);
  assert.ok(
    (await env.operator.metric('tenant_operator_drift_repairs_total', 'kind="ClusterRole"')) >= 1,
  );
  // The aggregation controller follows, and the owners are back to what they had.
  await waitFor(
    'owners not to hold the rule',
    async () => !(await ownerMay('patch', 'resourcequotas')),
  );
});

test('a settled shared role is not written on resync', async () => {
  const before = await env.client.get<KubeObject>(BASE);
  const aggregate = await env.client.get<KubeObject>(
    objectPath(RESOURCES.ClusterRole, 'tenancy.io:tenant-admin'),
  );
  const reconciles = await env.operator.metric('tenant_operator_reconcile_duration_seconds_count');
  await waitFor(
    'two resyncs',
    async () =>
      (await env.operator.metric('tenant_operator_reconcile_duration_seconds_count')) >=
      reconciles + 2,
    { timeoutMs: 15_000 },
  );
  const after = await env.client.get<KubeObject>(BASE);
  const aggregateAfter = await env.client.get<KubeObject>(
    objectPath(RESOURCES.ClusterRole, 'tenancy.io:tenant-admin'),
  );
  assert.equal(after?.metadata.resourceVersion, before?.metadata.resourceVersion);
  assert.equal(aggregateAfter?.metadata.resourceVersion, aggregate?.metadata.resourceVersion);
});
