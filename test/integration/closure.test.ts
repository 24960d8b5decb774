import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { localServers, registerLocalDatabaseServers } from '../../hack/database-servers.ts';
import { ANNOTATION_CLOSED_AT } from '../../src/api/constants.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { collectionPath, objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import type { KubeList, KubeObject } from '../../src/k8s/types.ts';
import type { TenantObject } from '../../src/tenant/model.ts';
import { OWNER_BINDING_NAME } from '../../src/tenant/rbac.ts';
import { VaultClient } from '../../src/vault/client.ts';
import { KubernetesAuth } from '../../src/vault/kubernetes-auth.ts';
import { KvV2 } from '../../src/vault/kv.ts';
import { LAST_APPLIED } from '../../src/k8s/last-applied.ts';
import {
  adminClient,
  eraseTenantAndWait,
  getTenant,
  kubectl,
  serviceAccountToken,
  tenantManifest,
  waitForPhase,
} from '../support/cluster.ts';
import { TestEnvironment } from '../support/fixture.ts';
import {
  configureVault,
  removeTenantLeftovers,
  tenantConnection,
  tenantCredentials,
} from '../support/tenant-data.ts';
import { OperatorProcess } from '../support/operator.ts';
import { adminRows } from '../support/postgres.ts';
import { waitFor } from '../support/wait.ts';

// Closure, judged by the servers: every way in is cut at once (the tenant's
// Vault token stops reading, its open session ends, a new login fails), no
// data is deleted, and the retention clock survives a lost status and a
// restart. Re-opening before the purge gives everything back.

const PREFIX = 'close';
const CREDENTIALS = (name: string) => `tenants/${name}/database`;

let env: TestEnvironment;
let client: KubeClient;
/** The tenant applied with kubectl, not made by the fixture: erased here. */
let applied: string | undefined;
const replacements: OperatorProcess[] = [];

/** A Vault client logged in as the tenant's own workload (its default ServiceAccount). */
async function tenantVault(name: string): Promise<VaultClient> {
  const auth = new KubernetesAuth(VaultClient.fromEnv());
  const jwt = serviceAccountToken('default', `tenant-${name}`, 'vault');
  return auth.clientFor(await auth.loginWithKubernetes(`tenant-${name}`, jwt));
}

async function tenantEvents(tenant: TenantObject): Promise<KubeObject[]> {
  const list = await client.request<KubeList<KubeObject>>(
    'GET',
    collectionPath(RESOURCES.Event, 'default'),
  );
  return list.items.filter(
    (e) => (e.involvedObject as { uid?: string } | undefined)?.uid === tenant.metadata.uid,
  );
}

before(async () => {
  configureVault();
  client = await adminClient();
  await registerLocalDatabaseServers(client);
  await removeTenantLeftovers(`${PREFIX}-a`);
  env = await TestEnvironment.start(PREFIX, { extraArgs: ['--resync-period', '3'] });
});

after(async () => {
  if (applied) await eraseTenantAndWait(client, applied);
  await env[Symbol.asyncDispose]();
  for (const operator of replacements) await operator.stop();
  await removeTenantLeftovers(`${PREFIX}-a`);
});

describe('closure', () => {
  let name: string;
  let closedAt: string;
  const setState = (state: string) =>
    client.mergePatch(objectPath(RESOURCES.Tenant, name), { spec: { state } });

  test('cuts every way in at once, and deletes nothing', async () => {
    name = await env.tenant('a', { region: 'eu-west', database: { enabled: true } });
    await waitForPhase(client, name, 'Ready', 60_000);
    const creds = await tenantCredentials(name);
    // Before the closure: a token that reads, and a session that is open.
    const token = await tenantVault(name);
    assert.equal(
      (await new KvV2(token).readSecret(CREDENTIALS(name)))?.data.password,
      creds.password,
    );
    const session = tenantConnection(creds);
    await session.connect();
    const sessionEnded = new Promise<Error>((resolve) => session.on('error', resolve));
    await session.query('SELECT 1');

    await setState('Closed');
    const closed = await waitForPhase(client, name, 'Closed', 60_000);
    closedAt = closed.status?.closedAt as string;
    assert.ok(closedAt);
    assert.equal(closed.metadata.annotations?.[ANNOTATION_CLOSED_AT], closedAt);
    assert.equal(
      Date.parse(closed.status?.purgeAfter ?? '') - Date.parse(closedAt),
      60 * 86_400_000,
    );

    // The token issued before the closure reads nothing any more.
    await assert.rejects(new KvV2(token).readSecret(CREDENTIALS(name)), /403|permission denied/i);
    // No new login to Vault either.
    await assert.rejects(tenantVault(name), /role|invalid|denied|400|403/i);
    // The open session was ended, and a new login fails.
    const ended = await Promise.race([
      sessionEnded,
      session.query('SELECT 1').then(
        () => undefined,
        (err: unknown) => err as Error,
      ),
    ]);
    assert.ok(ended, 'the session still answers');
    await session.end().catch(() => undefined);
    const fresh = tenantConnection(creds);
    await assert.rejects(fresh.connect(), /not permitted to log in|password authentication/);
    await fresh.end().catch(() => undefined);

    // The owners' binding is gone; the namespace denies all traffic.
    const binding = await client.get(
      objectPath(RESOURCES.RoleBinding, OWNER_BINDING_NAME, `tenant-${name}`),
    );
    assert.equal(binding, undefined, 'the owners are still bound');
    assert.equal(
      closed.status?.conditions?.find((c) => c.type === 'NetworkIsolated')?.reason,
      'AllTrafficDenied',
    );
    assert.ok(
      (await tenantEvents(closed)).some(
        (e) =>
          e.reason === 'AccessCut' && String(e.message).includes(`Vault policy tenant-${name}`),
      ),
      'no AccessCut Event naming the Vault policy',
    );

    // Nothing is deleted before the purge: the database, the secret, the namespace.
    const euServer = localServers().find((s) => s.name === 'pg-eu');
    assert.ok(euServer);
    const databases = await adminRows(
      euServer,
      `SELECT datname FROM pg_database WHERE datname = $1`,
      [creds.dbname],
    );
    assert.equal(databases.length, 1, 'the database is gone');
    assert.equal((await tenantCredentials(name)).password, creds.password);
    assert.ok(await client.get(objectPath(RESOURCES.Namespace, `tenant-${name}`)));
  });

  test('the clock survives a lost status and a restart', async () => {
    // Status lost (a cluster restored without status): rebuilt, not restarted.
    const statusPath = `${objectPath(RESOURCES.Tenant, name)}/status`;
    await client.mergePatch(statusPath, { status: { closedAt: null, purgeAfter: null } });
    const rebuilt = await waitFor('closedAt rebuilt', async () => {
      const t = await getTenant(client, name);
      return t?.status?.closedAt ? t : undefined;
    });
    assert.equal(rebuilt.status?.closedAt, closedAt);

    await env.operator.stop();
    const restarted = await OperatorProcess.start({ extraArgs: ['--resync-period', '3'] });
    replacements.push(restarted);
    await restarted.waitUntilLeader();
    await restarted.waitUntilIdle();
    const after = await getTenant(client, name);
    assert.equal(after?.status?.closedAt, closedAt);
    assert.equal(after?.metadata.annotations?.[ANNOTATION_CLOSED_AT], closedAt);
    assert.equal(after?.status?.phase, 'Closed');
  });

  test('re-opening before the purge gives access back and stops the clock', async () => {
    await setState('Active');
    const reopened = await waitForPhase(client, name, 'Ready', 60_000);
    assert.equal(reopened.status?.closedAt, undefined);
    assert.equal(reopened.status?.purgeAfter, undefined);
    assert.equal(reopened.metadata.annotations?.[ANNOTATION_CLOSED_AT], undefined);
    const creds = await tenantCredentials(name);
    const token = await tenantVault(name);
    assert.equal(
      (await new KvV2(token).readSecret(CREDENTIALS(name)))?.data.password,
      creds.password,
    );
    const session = tenantConnection(creds);
    await session.connect();
    await session.query('SELECT 1');
    await session.end();
  });

  test("a Tenant applied with kubectl keeps kubectl's annotation through closure and re-opening", async () => {
    // The Tenant cache leaves kubectl's last-applied annotation out
    // (last-applied.ts); the closure time is still added beside it, and
    // removed, on the server, without touching it.
    const name = env.name('kubectl');
    applied = name;
    const apply = (state: string) => {
      const result = kubectl(['apply', '-f', '-'], JSON.stringify(tenantManifest(name, { state })));
      assert.equal(result.status, 0, result.stderr);
    };
    const lastApplied = async () =>
      JSON.parse(
        (await getTenant(client, name))?.metadata.annotations?.[LAST_APPLIED] ?? 'null',
      ) as { spec: { state: string } } | null;
    apply('Active');
    await waitForPhase(client, name, 'Ready', 60_000);
    apply('Closed');
    const closed = await waitFor('closed, with its closure time annotated', async () => {
      const t = await getTenant(client, name);
      return t?.status?.phase === 'Closed' && t.metadata.annotations?.[ANNOTATION_CLOSED_AT]
        ? t
        : undefined;
    });
    assert.equal(closed.metadata.annotations?.[ANNOTATION_CLOSED_AT], closed.status?.closedAt);
    assert.equal((await lastApplied())?.spec.state, 'Closed');
    apply('Active');
    const reopened = await waitForPhase(client, name, 'Ready', 60_000);
    assert.equal(reopened.metadata.annotations?.[ANNOTATION_CLOSED_AT], undefined);
    assert.equal((await lastApplied())?.spec.state, 'Active');
  });
});
