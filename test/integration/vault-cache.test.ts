import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { localServers, registerLocalDatabaseServers } from '../../hack/database-servers.ts';
import { VaultClient } from '../../src/vault/client.ts';
import { KubernetesAuth } from '../../src/vault/kubernetes-auth.ts';
import { VaultPolicies } from '../../src/vault/policy.ts';
import { adminClient, getTenant, requireEnv } from '../support/cluster.ts';
import { TestEnvironment } from '../support/fixture.ts';
import { adminRows } from '../support/postgres.ts';
import { configureVault, removeTenantLeftovers } from '../support/tenant-data.ts';
import { waitFor } from '../support/wait.ts';

// A settled tenant's resync reads its Vault objects from the operator's
// cache and its database in one query; drift is still repaired: a deleted
// policy or auth role at the next resync (the inventory lists them), an
// edited one once its cached answer is older than --vault-verify-period.
// Judged by Vault's own audit log and PostgreSQL's pg_stat_statements.

const PREFIX = 'vcache';
const RESYNC_SECONDS = 2;
const VERIFY_SECONDS = 20;
const AUDIT_DEVICE = 'vcache-test';

let env: TestEnvironment;
let auditDir: string;
let tenant: string;
const root = () => VaultClient.fromEnv();

/** Vault requests logged since `offset`, as [operation, path]. */
async function auditedSince(offset: number): Promise<string[][]> {
  const text = await readFile(join(auditDir, 'audit.log'));
  const requests: string[][] = [];
  for (const line of text.subarray(offset).toString('utf8').split('\n')) {
    if (line === '') continue;
    const entry = JSON.parse(line) as {
      type?: string;
      request?: { path?: string; operation?: string };
    };
    if (entry.type === 'request')
      requests.push([entry.request?.operation ?? '?', entry.request?.path ?? '?']);
  }
  return requests;
}

async function auditSize(): Promise<number> {
  return (await readFile(join(auditDir, 'audit.log'))).length;
}

async function reconciles(): Promise<number> {
  return (
    (await env.operator.metricOrZero('tenant_operator_reconcile_total', 'result="success"')) +
    (await env.operator.metricOrZero('tenant_operator_reconcile_total', 'result="requeue"'))
  );
}

before(async () => {
  configureVault();
  auditDir = await mkdtemp(join(tmpdir(), 'vcache-audit-'));
  await root().request('PUT', `sys/audit/${AUDIT_DEVICE}`, {
    type: 'file',
    options: { file_path: join(auditDir, 'audit.log'), log_raw: 'false' },
  });
  const client = await adminClient();
  await registerLocalDatabaseServers(client);
  await client.close();
  await removeTenantLeftovers(`${PREFIX}-a`);
  env = await TestEnvironment.start(PREFIX, {
    extraArgs: [
      '--resync-period',
      String(RESYNC_SECONDS),
      '--vault-verify-period',
      String(VERIFY_SECONDS),
    ],
  });
  tenant = (await env.tenantReady('a', { database: { enabled: true }, region: 'eu-west' })).metadata
    .name;
});

after(async () => {
  await env?.[Symbol.asyncDispose]();
  await root()
    .request('DELETE', `sys/audit/${AUDIT_DEVICE}`)
    .catch(() => undefined);
  await rm(auditDir, { recursive: true, force: true });
  await removeTenantLeftovers(`${PREFIX}-a`);
});

describe('cached Vault reads and one-query database checks', () => {
  test("a settled tenant's resyncs read none of its own Vault objects, only the shared listings", async () => {
    // Settled: its last reconcile found the database ready, and the one
    // after that filled the cache.
    const settledFrom = await reconciles();
    await waitFor('two resyncs after Ready', async () => (await reconciles()) >= settledFrom + 2);
    const start = await auditSize();
    const before = await reconciles();
    await new Promise((resolve) => setTimeout(resolve, 4 * RESYNC_SECONDS * 1000));
    const resyncs = (await reconciles()) - before;
    const requests = await auditedSince(start);
    assert.ok(resyncs >= 3, `only ${resyncs} reconciles in the window`);
    const own = requests.filter(([, path]) => path?.includes(tenant));
    assert.deepEqual(own, [], `reads of ${tenant}'s own objects over ${resyncs} resyncs`);
    // The inventory lists at most every 20 s here (min(30 s, verify period)):
    // look at every request since the operator started.
    const listings = (await auditedSince(0)).filter(([operation]) => operation === 'list');
    assert.ok(listings.length > 0, 'the inventory listed policies, roles and keys');
    assert.ok(
      listings.every(([, path]) =>
        /^(sys\/policies\/acl|auth\/kubernetes\/role|transit\/keys|secret\/metadata\/tenants)\/?$/.test(
          path ?? '',
        ),
      ),
      JSON.stringify(listings),
    );
  });

  test("a settled tenant's resyncs read nothing from the API server: not even its credentials Secret", async () => {
    // Judged by the API server's audit log (hack/cluster.sh logs the
    // operator's every request). The Secret's absence is known from the
    // watch on Secrets of that name, not asked for at each reconcile.
    const auditLog = join(requireEnv('TEST_CLUSTER_DIR'), 'logs', 'audit.log');
    const start = (await readFile(auditLog)).length;
    const before = await reconciles();
    await new Promise((resolve) => setTimeout(resolve, 4 * RESYNC_SECONDS * 1000));
    const resyncs = (await reconciles()) - before;
    const lines = (await readFile(auditLog)).subarray(start).toString('utf8').split('\n');
    const reads = lines.flatMap((line) => {
      if (line === '') return [];
      const entry = JSON.parse(line) as {
        verb?: string;
        user?: { username?: string };
        objectRef?: { resource?: string; namespace?: string; name?: string };
      };
      return entry.user?.username === 'tenant-operator' &&
        entry.verb === 'get' &&
        entry.objectRef?.namespace === `tenant-${tenant}`
        ? [`${entry.objectRef.resource}/${entry.objectRef.name}`]
        : [];
    });
    assert.ok(resyncs >= 3, `only ${resyncs} reconciles in the window`);
    assert.deepEqual(reads, [], `reads in ${tenant}'s namespace over ${resyncs} resyncs`);
  });

  test('each resync of the settled tenant costs one SQL statement on its server', async () => {
    const server = localServers().find((s) => s.region === 'eu-west');
    assert.ok(server, 'a local server in eu-west');
    await adminRows(server, 'CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    // The operator and this test both log in as the server's admin: the
    // test's own statements (they name pg_stat_statements) are left out, and
    // so is the DatabaseServer status check's ping (on the servers' own
    // resync, not the tenant's).
    const operatorCalls = async () => {
      const [row] = await adminRows<{ calls: string }>(
        server,
        `SELECT coalesce(sum(s.calls), 0)::text AS calls FROM pg_stat_statements s
         JOIN pg_roles r ON r.oid = s.userid
         WHERE r.rolname = $1 AND s.query NOT ILIKE '%pg_stat_statements%'
           AND s.query <> 'SHOW server_version'`,
        [server.adminUser],
      );
      return Number(row?.calls);
    };
    const beforeCalls = await operatorCalls();
    const before = await reconciles();
    await new Promise((resolve) => setTimeout(resolve, 4 * RESYNC_SECONDS * 1000));
    const resyncs = (await reconciles()) - before;
    const calls = (await operatorCalls()) - beforeCalls;
    assert.ok(resyncs >= 3, `only ${resyncs} reconciles in the window`);
    // One footprint query per resync (give or take one at the window's edges).
    assert.ok(calls >= resyncs - 1, `${calls} statements for ${resyncs} resyncs: none counted?`);
    assert.ok(calls <= resyncs + 1, `${calls} statements for ${resyncs} resyncs`);
  });

  test('a deleted policy and auth role are back at the next resync, long before the verify period', async () => {
    const name = `tenant-${tenant}`;
    const policies = new VaultPolicies(root());
    const auth = new KubernetesAuth(root());
    const policy = await policies.readPolicy(name);
    assert.ok(policy);
    await policies.deletePolicy(name);
    await auth.deleteKubernetesRole(name);
    const deletedAt = Date.now();
    await waitFor(
      'policy and role restored',
      async () => {
        return (
          (await policies.readPolicy(name)) === policy &&
          (await auth.readKubernetesRole(name)) !== undefined
        );
      },
      { timeoutMs: VERIFY_SECONDS * 1000 },
    );
    // The inventory is at most 20 s old here (its age is min(30 s, verify period)).
    assert.ok(Date.now() - deletedAt < VERIFY_SECONDS * 1000);
  });

  test('an edited policy is left while its cached answer lasts, then put back', async () => {
    const name = `tenant-${tenant}`;
    const policies = new VaultPolicies(root());
    const wanted = await policies.readPolicy(name);
    assert.ok(wanted);
    // The answer cached afresh (the last test's repair dropped it).
    const from = await reconciles();
    await waitFor('two resyncs', async () => (await reconciles()) >= from + 2);
    const widened = `${wanted}\npath "secret/data/*" {\n  capabilities = ["read"]\n}\n`;
    await policies.putPolicy(name, widened);
    const editedAt = Date.now();
    const seen = await reconciles();
    await waitFor('two resyncs after the edit', async () => (await reconciles()) >= seen + 2);
    assert.equal(await policies.readPolicy(name), widened, 'read from Vault at every resync?');
    await waitFor('the edit undone', async () => (await policies.readPolicy(name)) === wanted, {
      timeoutMs: (VERIFY_SECONDS + 3 * RESYNC_SECONDS) * 1000,
    });
    const tookMs = Date.now() - editedAt;
    assert.ok(tookMs <= (VERIFY_SECONDS + 2 * RESYNC_SECONDS) * 1000, `${tookMs} ms`);
  });

  test('Vault stopped: a settled tenant, answered from the cache, still reports VaultUnavailable', async () => {
    const pid = Number(
      (await readFile(join(requireEnv('TEST_CLUSTER_DIR'), 'pids', 'vault'), 'utf8')).trim(),
    );
    assert.ok(pid > 1, 'no Vault pid');
    const ready = async () =>
      (await getTenant(env.client, tenant))?.status?.conditions?.find((c) => c.type === 'Ready');
    assert.equal((await ready())?.status, 'True');
    process.kill(pid, 'SIGSTOP');
    try {
      // The inventory is listed again within 20 s here; its 10 s timeout fails the resync.
      await waitFor(
        'Ready False, VaultUnavailable',
        async () => {
          const condition = await ready();
          return condition?.status === 'False' && condition.reason === 'VaultUnavailable';
        },
        { timeoutMs: 45_000 },
      );
    } finally {
      process.kill(pid, 'SIGCONT');
    }
    await waitFor('Ready again', async () => (await ready())?.status === 'True', {
      timeoutMs: 45_000,
    });
  });
});
