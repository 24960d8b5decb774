import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { registerLocalDatabaseServers } from '../../hack/database-servers.ts';
import {
  backupCronJobName,
  buildBackupCronJob,
  buildBackupServiceAccount,
} from '../../src/backup/cronjob.ts';
import type { TenantBackupObject } from '../../src/backup/records.ts';
import { backupServiceAccountName } from '../../src/backup/vault-access.ts';
import { DEFAULT_BACKUP_IMAGE } from '../../src/cli/options.ts';
import { ownedFieldsEqual } from '../../src/k8s/owned-fields.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { collectionPath, objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import type { KubeList, KubeObject } from '../../src/k8s/types.ts';
import { runBackupCommandAsAdmin, runBackupPod } from '../support/backup-job.ts';
import { adminClient, requireEnv, waitForPhase } from '../support/cluster.ts';
import { TestEnvironment } from '../support/fixture.ts';
import {
  configureVault,
  removeTenantLeftovers,
  tenantCredentials,
  tenantQuery,
} from '../support/tenant-data.ts';
import { waitFor } from '../support/wait.ts';

// The backup CronJob's command, run as a local process exactly as the pod
// would run it (there is no kubelet): its arguments and environment come
// from the CronJob object, its Kubernetes and Vault identities are tokens of
// the job's own ServiceAccount. The CronJob, its ServiceAccount, the keys
// and roles are the operator's, made for a tenant with a database.

const NAMESPACE = 'tenant-system';
const STORE = 'bkjob-fs';
const MARKER = 'bkjob-row-3f9a';

let env: TestEnvironment;
let client: KubeClient;
let storeDir: string;
let work: string;
const cleanups: (() => Promise<void>)[] = [];

before(async () => {
  configureVault();
  client = await adminClient();
  await registerLocalDatabaseServers(client);
  work = mkdtempSync(join(tmpdir(), 'bkjob-'));
  storeDir = mkdtempSync(join(tmpdir(), 'bkjob-store-'));
  await removeTenantLeftovers('bkjob-a');
  env = await TestEnvironment.start('bkjob');
  await client.apply({
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
  await removeTenantLeftovers('bkjob-a');
  rmSync(work, { recursive: true, force: true });
  rmSync(storeDir, { recursive: true, force: true });
});

test("the CronJob's command backs up, and the backup verifies and restores identical data", async () => {
  const name = await env.tenant('a', { region: 'eu-west', database: { enabled: true } });
  const tenant = await waitForPhase(client, name, 'Ready', 60_000);
  const uid = tenant.metadata.uid as string;
  const creds = await tenantCredentials(name);
  await tenantQuery(creds, `CREATE TABLE items (id serial PRIMARY KEY, label text)`);
  await tenantQuery(
    creds,
    `INSERT INTO items (label) SELECT '${MARKER}-' || g FROM generate_series(1, 500) g`,
  );

  // The operator's own CronJob, exactly as built for this tenant.
  const cronJob = await waitFor(
    "the operator's backup CronJob",
    () => client.get<KubeObject>(objectPath(RESOURCES.CronJob, backupCronJobName(name), NAMESPACE)),
    { timeoutMs: 30_000 },
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
  const expected = buildBackupCronJob(jobTenant, {
    namespace: NAMESPACE,
    image: DEFAULT_BACKUP_IMAGE,
    vaultAddr: requireEnv('VAULT_ADDR'),
    vaultAudience: 'vault',
  });
  assert.ok(
    ownedFieldsEqual(expected, cronJob),
    `the CronJob differs from what is built:\n${JSON.stringify(cronJob.spec)}`,
  );
  const serviceAccount = await client.get<KubeObject>(
    objectPath(RESOURCES.ServiceAccount, backupServiceAccountName(name), NAMESPACE),
  );
  assert.ok(serviceAccount, 'no backup ServiceAccount');
  assert.ok(
    ownedFieldsEqual(
      buildBackupServiceAccount(jobTenant, { namespace: NAMESPACE }),
      serviceAccount,
    ),
  );

  const run = runBackupPod(cronJob, work);
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

  const verified = runBackupCommandAsAdmin(['verify', '--tenant', name]);
  assert.equal(verified.status, 0, verified.stderr);
  assert.match(verified.stdout, new RegExp(`"verified":true.*"backupId":"${status.backupId}"`));

  await tenantQuery(creds, `DELETE FROM items WHERE id > 100`);
  const restored = runBackupCommandAsAdmin(['restore', '--tenant', name, '--clean']);
  assert.equal(restored.status, 0, restored.stderr);
  const rows = await tenantQuery(
    creds,
    `SELECT count(*)::int AS n, min(label) AS first FROM items`,
  );
  assert.deepEqual(rows, [{ n: 500, first: `${MARKER}-1` }]);
});
