import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import pg from 'pg';
import { localServers } from '../../hack/database-servers.ts';
import type { StoredCredentials } from '../../src/tenant/database.ts';
import { VaultClient } from '../../src/vault/client.ts';
import { KubernetesAuth } from '../../src/vault/kubernetes-auth.ts';
import { KvV2 } from '../../src/vault/kv.ts';
import { VaultPolicies } from '../../src/vault/policy.ts';
import { Transit } from '../../src/vault/transit.ts';
import { requireEnv } from './cluster.ts';
import { dropTenantDatabasesAsAdmin } from './postgres.ts';

// What a test needs of a tenant's data outside the API server: Vault set up
// as the project sets it up, the tenant's credentials as Vault keeps them, a
// connection as the tenant, and, before and after a file, the removal of
// whatever an earlier run of the same names left in PostgreSQL and Vault.

const REPO = join(import.meta.dirname, '..', '..');

/** hack/vault-config.sh against the test cluster's Vault (idempotent). */
export function configureVault(): void {
  const configured = spawnSync('bash', ['hack/vault-config.sh', requireEnv('TEST_CLUSTER_DIR')], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(configured.status, 0, `hack/vault-config.sh failed:\n${configured.stderr}`);
}

/** The tenant's database and roles, its secret, Vault policies, auth roles and Transit key: gone. */
export async function removeTenantLeftovers(name: string): Promise<void> {
  const root = VaultClient.fromEnv();
  await dropTenantDatabasesAsAdmin(localServers(), [name]);
  await new KvV2(root).deleteSecretAllVersions(`tenants/${name}/database`);
  for (const policy of [`tenant-${name}`, `backup-${name}`, `restore-${name}`])
    await new VaultPolicies(root).deletePolicy(policy);
  for (const role of [`tenant-${name}`, `backup-${name}`])
    await new KubernetesAuth(root).deleteKubernetesRole(role);
  await new Transit(root).deleteKey(`tenant-${name}`);
}

/** The tenant's credentials as Vault keeps them (read with the root token). */
export async function tenantCredentials(name: string): Promise<StoredCredentials> {
  const secret = await new KvV2(VaultClient.fromEnv()).readSecret(`tenants/${name}/database`);
  assert.ok(secret, `no credentials for ${name}`);
  return secret.data as unknown as StoredCredentials;
}

/** A client that logs in as the tenant, TLS verified (not connected yet). */
export function tenantConnection(c: StoredCredentials): pg.Client {
  return new pg.Client({
    host: c.host,
    port: Number(c.port),
    user: c.username,
    password: c.password,
    database: c.dbname,
    ssl: { ca: c.ca, rejectUnauthorized: true },
    connectionTimeoutMillis: 5_000,
  });
}

/** Runs one statement as the tenant, on a connection of its own. */
export async function tenantQuery(c: StoredCredentials, sql: string): Promise<pg.QueryResultRow[]> {
  const conn = tenantConnection(c);
  await conn.connect();
  try {
    return (await conn.query<pg.QueryResultRow>(sql)).rows;
  } finally {
    await conn.end();
  }
}
