import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import pg from 'pg';
import { registerLocalDatabaseServers, type LocalServer } from '../../hack/database-servers.ts';
import { collectionPath, objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import type { StoredCredentials } from '../../src/tenant/database.ts';
import { VaultClient } from '../../src/vault/client.ts';
import { KubernetesAuth } from '../../src/vault/kubernetes-auth.ts';
import { KvV2 } from '../../src/vault/kv.ts';
import { VaultPolicies } from '../../src/vault/policy.ts';
import { deleteTenantAndWait, kubectl, requireEnv } from '../support/cluster.ts';
import { TestEnvironment } from '../support/fixture.ts';
import { adminRows, dropTenantDatabasesAsAdmin } from '../support/postgres.ts';
import { waitFor } from '../support/wait.ts';

// Deleting a Tenant keeps its data until the purge, but nobody may use it
// any more: a Vault token issued before, an open database session, a fresh
// login with the password, and a namespace of the same name made later (the
// Vault role trusted service accounts by namespace *name*) all get nothing.

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
  // What the purge (a later issue) will remove, removed as the admins would.
  const name = env.name('a');
  await dropTenantDatabasesAsAdmin(servers, [name]);
  await new KvV2(root()).deleteSecretAllVersions(`tenants/${name}/database`);
});

function appConnection(c: StoredCredentials): pg.Client {
  const conn = new pg.Client({
    host: c.host,
    port: Number(c.port),
    user: c.username,
    password: c.password,
    database: c.dbname,
    ssl: { ca: c.ca, rejectUnauthorized: true },
    connectionTimeoutMillis: 5_000,
  });
  // The server ends this session on purpose; the client reports that as an error event.
  conn.on('error', () => undefined);
  return conn;
}

function serviceAccountToken(namespace: string): string {
  const token = kubectl(['create', 'token', 'default', '-n', namespace, '--audience', 'vault']);
  assert.equal(token.status, 0, token.stderr);
  return token.stdout.trim();
}

test('a deleted tenant keeps its data but loses every way in', async () => {
  const name = await env.tenant('a', { region: 'eu-west', database: { enabled: true } });
  await waitFor(
    'tenant Ready',
    async () => {
      const t = await env.client.get<KubeObject & { status?: { phase?: string } }>(
        objectPath(RESOURCES.Tenant, name),
      );
      return t?.status?.phase === 'Ready';
    },
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

  await deleteTenantAndWait(env.client, name);

  // The token issued before the deletion reads nothing.
  await assert.rejects(appVault.readSecret(`tenants/${name}/database`), /403|permission denied/i);
  assert.equal(await new VaultPolicies(root()).readPolicy(`tenant-${name}`), undefined);
  assert.equal(await new KubernetesAuth(root()).readKubernetesRole(`tenant-${name}`), undefined);
  // The open session is gone, and the password logs in no more.
  await assert.rejects(session.query('select 1'));
  const again = appConnection(credentials);
  await assert.rejects(again.connect(), /not permitted to log in|password authentication failed/);
  // The data is kept for the purge.
  const rows = await adminRows(servers[0]!, 'SELECT 1 FROM pg_database WHERE datname = $1', [
    credentials.dbname,
  ]);
  assert.equal(rows.length, 1);

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
  assert.equal(cut.message.includes(credentials.password), false);
});
