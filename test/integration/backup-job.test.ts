import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { KubeConfig } from '@kubernetes/client-node';
import pg from 'pg';
import { localServers, registerLocalDatabaseServers } from '../../hack/database-servers.ts';
import { buildBackupCronJob, buildBackupServiceAccount } from '../../src/backup/cronjob.ts';
import {
  buildBackupJobClusterRole,
  buildBackupJobClusterRoleBinding,
} from '../../src/backup/rbac.ts';
import type { TenantBackupObject } from '../../src/backup/records.ts';
import { ensureTenantBackupKeys } from '../../src/backup/vault-access.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { collectionPath, objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import type { KubeList, KubeObject } from '../../src/k8s/types.ts';
import type { StoredCredentials } from '../../src/tenant/database.ts';
import { VaultClient } from '../../src/vault/client.ts';
import { KubernetesAuth } from '../../src/vault/kubernetes-auth.ts';
import { KvV2 } from '../../src/vault/kv.ts';
import { VaultPolicies } from '../../src/vault/policy.ts';
import { Transit } from '../../src/vault/transit.ts';
import { adminClient, requireEnv, serviceAccountToken, waitForPhase } from '../support/cluster.ts';
import { TestEnvironment } from '../support/fixture.ts';
import { dropTenantDatabasesAsAdmin } from '../support/postgres.ts';

// The backup CronJob's command, run as a local process exactly as the pod
// would run it (there is no kubelet): its arguments and environment come
// from the CronJob object, its Kubernetes and Vault identities are tokens of
// the job's own ServiceAccount. Until the operator applies the backup
// objects itself, this file makes the tenant's backup keys and roles the way
// the operator will (ensureTenantBackupKeys) and applies the built objects.

const REPO = join(import.meta.dirname, '..', '..');
const NAMESPACE = 'tenant-system';
const STORE = 'bkjob-fs';
const MARKER = 'bkjob-row-3f9a';

let env: TestEnvironment;
let client: KubeClient;
let storeDir: string;
let work: string;
const cleanups: (() => Promise<void>)[] = [];

/** What a deleted tenant leaves until issue 8's purge exists: its database and Vault objects. */
async function removeLeftovers(name: string): Promise<void> {
  const root = VaultClient.fromEnv();
  await dropTenantDatabasesAsAdmin(localServers(), [name]);
  await new KvV2(root).deleteSecretAllVersions(`tenants/${name}/database`);
  await new VaultPolicies(root).deletePolicy(`tenant-${name}`);
  await new KubernetesAuth(root).deleteKubernetesRole(`tenant-${name}`);
  await new VaultPolicies(root).deletePolicy(`backup-${name}`);
  await new VaultPolicies(root).deletePolicy(`restore-${name}`);
  await new KubernetesAuth(root).deleteKubernetesRole(`backup-${name}`);
  await new Transit(root).deleteKey(`tenant-${name}`);
}

/** A kubeconfig that is the ServiceAccount: the pod's in-cluster credentials. */
function kubeconfigOf(serviceAccount: string): string {
  const admin = new KubeConfig();
  admin.loadFromFile(requireEnv('KUBECONFIG'));
  const cluster = admin.getCurrentCluster();
  assert.ok(cluster);
  const ca =
    cluster.caData ??
    (cluster.caFile ? readFileSync(cluster.caFile).toString('base64') : undefined);
  assert.ok(ca, 'no cluster CA');
  const file = join(work, `${serviceAccount}.kubeconfig`);
  writeFileSync(
    file,
    JSON.stringify({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [
        { name: 'c', cluster: { server: cluster.server, 'certificate-authority-data': ca } },
      ],
      users: [{ name: 'u', user: { token: serviceAccountToken(serviceAccount, NAMESPACE) } }],
      contexts: [{ name: 'x', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'x',
    }),
    { mode: 0o600 },
  );
  return file;
}

async function apply(object: KubeObject): Promise<void> {
  await client.apply(object);
}

interface Container {
  command: string[];
  env: { name: string; value?: string; valueFrom?: unknown }[];
}

/** Runs the CronJob's container command as a local process with the pod's environment. */
function runJob(cronJob: KubeObject, tenant: string) {
  const spec = cronJob.spec as {
    jobTemplate: {
      spec: { template: { spec: { containers: Container[]; serviceAccountName: string } } };
    };
  };
  const pod = spec.jobTemplate.spec.template.spec;
  const container = pod.containers[0];
  assert.ok(container);
  assert.deepEqual(container.command, ['tenant-operator', 'backup', 'run', '--tenant', tenant]);
  const tokenFile = join(work, 'vault-token');
  writeFileSync(tokenFile, serviceAccountToken(pod.serviceAccountName, NAMESPACE, 'vault'), {
    mode: 0o600,
  });
  const podEnv: Record<string, string> = {};
  for (const variable of container.env) {
    if (variable.value !== undefined) podEnv[variable.name] = variable.value;
    else if (variable.name === 'POD_NAMESPACE') podEnv[variable.name] = NAMESPACE;
    else assert.fail(`unexpected env ${variable.name}`);
  }
  // The one path that differs: the projected token's mount.
  podEnv.VAULT_K8S_TOKEN_FILE = tokenFile;
  const result = spawnSync(process.execPath, ['src/cli/main.ts', ...container.command.slice(1)], {
    cwd: REPO,
    env: { PATH: process.env.PATH, KUBECONFIG: kubeconfigOf(pod.serviceAccountName), ...podEnv },
    encoding: 'utf8',
    timeout: 120_000,
  });
  return result;
}

/** The operator-side commands (verify, restore), run with the operator's rights. */
function runAsOperator(args: string[]) {
  return spawnSync(process.execPath, ['src/cli/main.ts', 'backup', ...args], {
    cwd: REPO,
    env: {
      PATH: process.env.PATH,
      KUBECONFIG: requireEnv('KUBECONFIG'),
      VAULT_ADDR: requireEnv('VAULT_ADDR'),
      VAULT_TOKEN: requireEnv('VAULT_TOKEN'),
      POD_NAMESPACE: NAMESPACE,
    },
    encoding: 'utf8',
    timeout: 120_000,
  });
}

async function tenantCredentials(name: string): Promise<StoredCredentials> {
  const secret = await new KvV2(VaultClient.fromEnv()).readSecret(`tenants/${name}/database`);
  assert.ok(secret);
  return secret.data as unknown as StoredCredentials;
}

async function query(
  c: StoredCredentials,
  sql: string,
  database = c.dbname,
): Promise<pg.QueryResultRow[]> {
  const conn = new pg.Client({
    host: c.host,
    port: Number(c.port),
    user: c.username,
    password: c.password,
    database,
    ssl: { ca: c.ca, rejectUnauthorized: true },
  });
  await conn.connect();
  try {
    return (await conn.query<pg.QueryResultRow>(sql)).rows;
  } finally {
    await conn.end();
  }
}

before(async () => {
  const configured = spawnSync('bash', ['hack/vault-config.sh', requireEnv('TEST_CLUSTER_DIR')], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(configured.status, 0, configured.stderr);
  client = await adminClient();
  await registerLocalDatabaseServers(client);
  work = mkdtempSync(join(tmpdir(), 'bkjob-'));
  storeDir = mkdtempSync(join(tmpdir(), 'bkjob-store-'));
  await removeLeftovers('bkjob-a');
  env = await TestEnvironment.start('bkjob');
  for (const object of [buildBackupJobClusterRole(), buildBackupJobClusterRoleBinding(NAMESPACE)]) {
    await apply(object);
    const type =
      object.kind === 'ClusterRole' ? RESOURCES.ClusterRole : RESOURCES.ClusterRoleBinding;
    cleanups.push(() => client.delete(objectPath(type, object.metadata.name)));
  }
  await apply({
    apiVersion: 'tenancy.io/v1alpha1',
    kind: 'BackupStore',
    metadata: { name: STORE },
    spec: { region: 'eu-west', default: true, filesystem: { path: storeDir } },
  });
  cleanups.push(() => client.delete(objectPath(RESOURCES.BackupStore, STORE)));
});

after(async () => {
  const records = await client.request<KubeList<TenantBackupObject>>(
    'GET',
    collectionPath(RESOURCES.TenantBackup),
  );
  for (const record of records.items.filter((r) => r.spec.tenant.startsWith('bkjob-')))
    await client.delete(objectPath(RESOURCES.TenantBackup, record.metadata.name));
  for (const cleanup of cleanups.reverse()) await cleanup();
  await env[Symbol.asyncDispose]();
  await removeLeftovers('bkjob-a');
  rmSync(work, { recursive: true, force: true });
  rmSync(storeDir, { recursive: true, force: true });
});

test("the CronJob's command backs up, and the backup verifies and restores identical data", async () => {
  const name = await env.tenant('a', { region: 'eu-west', database: { enabled: true } });
  const tenant = await waitForPhase(client, name, 'Ready', 60_000);
  const uid = tenant.metadata.uid as string;
  const creds = await tenantCredentials(name);
  await query(creds, `CREATE TABLE items (id serial PRIMARY KEY, label text)`);
  await query(
    creds,
    `INSERT INTO items (label) SELECT '${MARKER}-' || g FROM generate_series(1, 500) g`,
  );

  // What the operator will do for a tenant with backups (not wired yet).
  const root = VaultClient.fromEnv();
  await ensureTenantBackupKeys(
    {
      transit: new Transit(root),
      policies: new VaultPolicies(root),
      kubernetesAuth: new KubernetesAuth(root),
      kv: new KvV2(root),
      operatorNamespace: NAMESPACE,
    },
    { name, uid },
  );
  const jobTenant = {
    name,
    uid,
    spec: {
      state: 'Active' as const,
      database: { enabled: true },
      backup: { enabled: true, schedule: 'H 2 * * *' },
    },
  };
  const serviceAccount = buildBackupServiceAccount(jobTenant, { namespace: NAMESPACE });
  await apply(serviceAccount);
  cleanups.push(() =>
    client.delete(objectPath(RESOURCES.ServiceAccount, serviceAccount.metadata.name, NAMESPACE)),
  );
  const cronJob = buildBackupCronJob(jobTenant, {
    namespace: NAMESPACE,
    image: 'tenant-operator:test',
    vaultAddr: requireEnv('VAULT_ADDR'),
  });
  // The object itself is accepted by the real API server as it is.
  await client.apply(cronJob, { dryRun: true });

  const run = runJob(cronJob, name);
  assert.equal(run.status, 0, `backup run failed:\n${run.stderr}\n${run.stdout}`);
  const records = (
    await client.request<KubeList<TenantBackupObject>>(
      'GET',
      collectionPath(RESOURCES.TenantBackup),
    )
  ).items.filter((r) => r.spec.tenant === name);
  assert.equal(records.length, 1);
  const status = records[0]?.status;
  assert.equal(status?.phase, 'Succeeded', JSON.stringify(status));
  assert.equal(status.store, STORE);
  assert.match(status.sha256 ?? '', /^[0-9a-f]{64}$/);
  assert.ok((status.bytes ?? 0) > 0);
  assert.ok((status.keyVersion ?? 0) >= 1);

  // Nothing readable in the store: no row, no password.
  const files = readdirSync(storeDir, { recursive: true, withFileTypes: true }).filter((f) =>
    f.isFile(),
  );
  assert.equal(files.length, 2, files.map((f) => f.name).join(', '));
  for (const file of files) {
    const bytes = readFileSync(join(file.parentPath, file.name));
    assert.ok(!bytes.includes(MARKER), `${file.name} holds a row in plaintext`);
    assert.ok(!bytes.includes(creds.password), `${file.name} holds the password`);
  }
  for (const text of [run.stdout, run.stderr, JSON.stringify(records)])
    assert.ok(!text.includes(creds.password), 'the password leaked into output or the record');

  const verified = runAsOperator(['verify', '--tenant', name]);
  assert.equal(verified.status, 0, verified.stderr);
  assert.match(verified.stdout, new RegExp(`"verified":true.*"backupId":"${status.backupId}"`));

  await query(creds, `DELETE FROM items WHERE id > 100`);
  const restored = runAsOperator(['restore', '--tenant', name, '--clean']);
  assert.equal(restored.status, 0, restored.stderr);
  const rows = await query(creds, `SELECT count(*)::int AS n, min(label) AS first FROM items`);
  assert.deepEqual(rows, [{ n: 500, first: `${MARKER}-1` }]);
});
