import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import type pg from 'pg';
import { registerLocalDatabaseServers, type LocalServer } from '../../hack/database-servers.ts';
import { collectionPath, objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import type { StoredCredentials } from '../../src/tenant/database.ts';
import { VaultClient } from '../../src/vault/client.ts';
import { KubernetesAuth } from '../../src/vault/kubernetes-auth.ts';
import { KvV2 } from '../../src/vault/kv.ts';
import { VaultPolicies } from '../../src/vault/policy.ts';
import { eraseTenantAndWait, getTenant, kubectl, requireEnv } from '../support/cluster.ts';
import { TestEnvironment } from '../support/fixture.ts';
import { tenantConnection } from '../support/tenant-data.ts';
import { adminRows } from '../support/postgres.ts';
import { waitFor } from '../support/wait.ts';

// `kubectl delete tenant` is a closure: the finalizer holds the Tenant and
// its data until the erasure, and nobody may use it any more: a Vault token
// issued before, an open database session and a fresh login with the
// password all get nothing. Once erased, the Tenant is let go, and a
// namespace of the same name made later (the Vault role trusted service
// accounts by namespace *name*) gets nothing either.

let env: TestEnvironment;
let servers: LocalServer[];
const root = () => VaultClient.fromEnv();

before(async () => {
  env = await TestEnvironment.start('deletion');
  servers = await registerLocalDatabaseServers(env.client);
  await waitFor('the DatabaseServers to be reachable', async () => {
    for (const server of servers) {
      const live = await env.client.get<KubeObject & { status?: { reachable?: boolean } }>(
        objectPath(RESOURCES.DatabaseServer, server.name),
      );
      if (live?.status?.reachable !== true) return false;
    }
    return true;
  });
});

after(async () => {
  // The namespace made by hand in the test goes first: the fixture waits for
  // the tenants' namespaces to be gone.
  await env.client.delete(objectPath(RESOURCES.Namespace, `tenant-${env.name('a')}`));
  await env[Symbol.asyncDispose]();
});

function appConnection(c: StoredCredentials): pg.Client {
  const conn = tenantConnection(c);
  // The server ends this session on purpose; the client reports that as an error event.
  conn.on('error', () => undefined);
  return conn;
}

function serviceAccountToken(namespace: string): string {
  const token = kubectl(['create', 'token', 'default', '-n', namespace, '--audience', 'vault']);
  assert.equal(token.status, 0, token.stderr);
  return token.stdout.trim();
}

test('kubectl delete is a closure: the Tenant is held, access is cut at once, the data stays until its erasure', async () => {
  const name = await env.tenant('a', { region: 'eu-west', database: { enabled: true } });
  await waitFor(
    'tenant Ready',
    async () => (await getTenant(env.client, name))?.status?.phase === 'Ready',
    { timeoutMs: 60_000 },
  );
  const namespace = `tenant-${name}`;
  const credentials = (await new KvV2(root()).readSecret<StoredCredentials>(
    `tenants/${name}/database`,
  ))!.data;

  // Before: the app reads its credentials with its own Vault token and connects.
  const auth = new KubernetesAuth(new VaultClient({ address: requireEnv('VAULT_ADDR') }));
  const login = await auth.loginWithKubernetes(`tenant-${name}`, serviceAccountToken(namespace));
  const appVault = new KvV2(auth.clientFor(login));
  assert.equal(
    (await appVault.readSecret(`tenants/${name}/database`))?.data.dbname,
    credentials.dbname,
  );
  const session = appConnection(credentials);
  await session.connect();
  await session.query('select 1');

  const deleted = kubectl(['delete', 'tenant', name, '--wait=false']);
  assert.equal(deleted.status, 0, deleted.stderr);
  // Held by the finalizer, closed since its deletion, due in the default 60 days.
  const closed = await waitFor('the deleted tenant to be Closed', async () => {
    const t = await getTenant(env.client, name);
    return t?.status?.phase === 'Closed' && t.status.purgeAfter ? t : undefined;
  });
  const deletedAt = closed.metadata.deletionTimestamp as string;
  assert.ok(deletedAt);
  assert.equal(closed.status?.closedAt, deletedAt);
  assert.equal(closed.metadata.annotations?.['tenancy.io/closed-at'], deletedAt);
  assert.equal(
    Date.parse(closed.status?.purgeAfter ?? '') - Date.parse(deletedAt),
    60 * 86_400_000,
  );
  const scheduled = closed.status?.conditions?.find((c) => c.type === 'PurgeScheduled');
  assert.equal(scheduled?.status, 'True');
  assert.match(scheduled?.message ?? '', /then the deleted Tenant is released/);

  // The token issued before the deletion reads nothing.
  await waitFor('the Vault policy to be gone', async () => {
    return (await new VaultPolicies(root()).readPolicy(`tenant-${name}`)) === undefined;
  });
  await assert.rejects(appVault.readSecret(`tenants/${name}/database`), /403|permission denied/i);
  assert.equal(await new KubernetesAuth(root()).readKubernetesRole(`tenant-${name}`), undefined);
  // The open session is gone, and the password logs in no more.
  await assert.rejects(session.query('select 1'));
  const again = appConnection(credentials);
  await assert.rejects(again.connect(), /not permitted to log in|password authentication failed/);
  // The namespace stays until the erasure, closed: deny-all, no owners.
  const policies = await env.client.request<{ items: KubeObject[] }>(
    'GET',
    `/apis/networking.k8s.io/v1/namespaces/${namespace}/networkpolicies`,
  );
  assert.deepEqual(
    policies.items.map((p) => p.metadata.name),
    ['default-deny'],
  );
  assert.equal(
    await env.client.get(objectPath(RESOURCES.RoleBinding, 'tenant-admins', namespace)),
    undefined,
  );
  // The data is kept for the purge, and the Tenant with it.
  const rows = await adminRows(servers[0]!, 'SELECT 1 FROM pg_database WHERE datname = $1', [
    credentials.dbname,
  ]);
  assert.equal(rows.length, 1);
  await env.operator.waitUntilIdle();
  assert.equal((await getTenant(env.client, name))?.status?.phase, 'Closed');

  // The immediate erasure lets it go: everything is erased, then the Tenant.
  await eraseTenantAndWait(env.client, name);
  assert.deepEqual(
    await adminRows(servers[0]!, 'SELECT 1 FROM pg_database WHERE datname = $1', [
      credentials.dbname,
    ]),
    [],
  );
  assert.equal(await new KvV2(root()).readMetadata(`tenants/${name}/database`), undefined);

  // Someone who later owns a namespace of the same name gets no Vault login.
  await env.client.create(collectionPath(RESOURCES.Namespace), {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: namespace },
  });
  const token = await waitFor('a service account in the new namespace', () => {
    const result = kubectl(['create', 'token', 'default', '-n', namespace, '--audience', 'vault']);
    return result.status === 0 ? result.stdout.trim() : undefined;
  });
  await assert.rejects(
    auth.loginWithKubernetes(`tenant-${name}`, token),
    /role .* not found|invalid role name|400|403/i,
  );

  const events = await env.client.request<{ items: { reason: string; message: string }[] }>(
    'GET',
    '/api/v1/namespaces/default/events',
    { query: { fieldSelector: `involvedObject.kind=Tenant,involvedObject.name=${name}` } },
  );
  const cut = events.items.find((e) => e.reason === 'AccessCut');
  assert.ok(cut, JSON.stringify(events.items.map((e) => e.reason)));
  assert.match(cut.message, /Vault policy tenant-deletion-a; Vault Kubernetes auth role/);
  const released = events.items.find((e) => e.reason === 'Released');
  assert.ok(released, JSON.stringify(events.items.map((e) => e.reason)));
  for (const event of events.items)
    assert.equal(event.message.includes(credentials.password), false);
  // With no BackupStore to keep a copy in, the signed certificate is in the operator's log.
  assert.ok(
    env.operator.output.some(
      (line) => line.includes('"erasure certificate"') && line.includes(name),
    ),
    'the certificate was not logged',
  );
});
