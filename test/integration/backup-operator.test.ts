import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { registerLocalDatabaseServers } from '../../hack/database-servers.ts';
import { backupIdTime } from '../../src/backup/catalog.ts';
import {
  backupCronJobName,
  buildBackupCronJob,
  buildBackupServiceAccount,
} from '../../src/backup/cronjob.ts';
import { VERIFIED_CONDITION } from '../../src/backup/history.ts';
import { dataKey, manifestKey } from '../../src/backup/layout.ts';
import { onDemandJobName } from '../../src/backup/on-demand-job.ts';
import type { TenantBackupObject } from '../../src/backup/records.ts';
import { expandSchedule } from '../../src/backup/schedule.ts';
import { backupServiceAccountName, transitKeyName } from '../../src/backup/vault-access.ts';
import { DEFAULT_BACKUP_IMAGE } from '../../src/cli/options.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { ownedFieldsEqual } from '../../src/k8s/owned-fields.ts';
import { collectionPath, objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import type { KubeList, KubeObject } from '../../src/k8s/types.ts';
import type { TenantObject } from '../../src/tenant/model.ts';
import { VaultClient } from '../../src/vault/client.ts';
import { VaultPolicies } from '../../src/vault/policy.ts';
import { Transit } from '../../src/vault/transit.ts';
import { OPERATOR_NAMESPACE, requestOnDemandJob, runBackupPod } from '../support/backup-job.ts';
import { adminClient, getTenant, kubectl, requireEnv, waitForPhase } from '../support/cluster.ts';
import { TestEnvironment } from '../support/fixture.ts';
import {
  configureVault,
  removeTenantLeftovers,
  tenantCredentials,
  tenantQuery,
} from '../support/tenant-data.ts';
import { OperatorProcess } from '../support/operator.ts';
import { waitFor } from '../support/wait.ts';

// The operator running a tenant's backups, judged from the servers: the
// CronJob and ServiceAccount it keeps in its own namespace, the Transit key
// and roles in Vault, the Job it starts for an on-demand TenantBackup (run
// here as a local process: there is no kubelet), the records, the objects
// in the store, the Tenant's status, Events and metrics; verification in the
// operator; rotation and retention; and a resync that writes nothing.

const PREFIX = 'bkop';
const STORE = 'bkop-fs';
const TENANT_BACKUPS = collectionPath(RESOURCES.TenantBackup);

let env: TestEnvironment;
/** Operators started after the fixture's own, stopped after it. */
const replacements: OperatorProcess[] = [];
let client: KubeClient;
let storeDir: string;
let work: string;

async function tenantRecords(tenant: string): Promise<TenantBackupObject[]> {
  const list = await client.request<KubeList<TenantBackupObject>>('GET', TENANT_BACKUPS);
  return list.items.filter((r) => r.spec.tenant === tenant);
}

function condition(tenant: TenantObject | undefined, type: string) {
  return tenant?.status?.conditions?.find((c) => c.type === type);
}

async function tenantWhere(
  name: string,
  what: string,
  accept: (t: TenantObject) => boolean,
  timeoutMs = 60_000,
): Promise<TenantObject> {
  let last: TenantObject | undefined;
  try {
    return await waitFor(
      what,
      async () => {
        last = await getTenant(client, name);
        return last && accept(last) ? last : undefined;
      },
      { timeoutMs, intervalMs: 250 },
    );
  } catch (err: unknown) {
    throw new Error(`${(err as Error).message}; status: ${JSON.stringify(last?.status)}`);
  }
}

/** Events about this Tenant object (by uid: an earlier run's Tenant of the same name had others). */
async function tenantEvents(name: string): Promise<KubeObject[]> {
  const tenant = await getTenant(client, name);
  assert.ok(tenant?.metadata.uid, `Tenant ${name} is gone`);
  const list = await client.request<KubeList<KubeObject>>(
    'GET',
    collectionPath(RESOURCES.Event, 'default'),
  );
  return list.items.filter(
    (e) => (e.involvedObject as { uid?: string } | undefined)?.uid === tenant.metadata.uid,
  );
}

/** Applies an on-demand TenantBackup, waits for the operator's Job and runs it. */
async function onDemandBackup(tenant: string, suffix: string): Promise<TenantBackupObject> {
  const name = `${tenant}-${suffix}`;
  const job = await requestOnDemandJob(client, tenant, name);
  const run = runBackupPod(job, work);
  assert.equal(run.status, 0, `the on-demand job failed:\n${run.stderr}\n${run.stdout}`);
  const record = await client.get<TenantBackupObject>(objectPath(RESOURCES.TenantBackup, name));
  assert.equal(record?.status?.phase, 'Succeeded', JSON.stringify(record?.status));
  return record;
}

before(async () => {
  configureVault();
  client = await adminClient();
  await registerLocalDatabaseServers(client);
  work = mkdtempSync(join(tmpdir(), `${PREFIX}-`));
  storeDir = mkdtempSync(join(tmpdir(), `${PREFIX}-store-`));
  await removeTenantLeftovers(`${PREFIX}-a`);
  await client.apply({
    apiVersion: 'tenancy.io/v1alpha1',
    kind: 'BackupStore',
    metadata: { name: STORE },
    spec: { region: 'eu-west', default: true, filesystem: { path: storeDir } },
  });
  env = await TestEnvironment.start(PREFIX, { extraArgs: ['--resync-period', '3'] });
});

after(async () => {
  for (const record of (await client.request<KubeList<TenantBackupObject>>('GET', TENANT_BACKUPS))
    .items)
    if (record.spec.tenant.startsWith(`${PREFIX}-`))
      await client.delete(objectPath(RESOURCES.TenantBackup, record.metadata.name));
  await env[Symbol.asyncDispose]();
  for (const operator of replacements) await operator.stop();
  await client.delete(objectPath(RESOURCES.BackupStore, STORE));
  await removeTenantLeftovers(`${PREFIX}-a`);
  rmSync(work, { recursive: true, force: true });
  rmSync(storeDir, { recursive: true, force: true });
});

describe('the operator runs a tenant’s backups', () => {
  let name: string;
  let uid: string;

  test('a tenant with a database gets its keys, roles, CronJob and ServiceAccount; its owners get none of them', async () => {
    name = await env.tenant('a', {
      region: 'eu-west',
      database: { enabled: true },
      // Due at once after creation: the first good backup is verified within a minute.
      backup: { verifySchedule: '* * * * *' },
    });
    const ready = await waitForPhase(client, name, 'Ready', 60_000);
    uid = ready.metadata.uid as string;
    const tenant = await tenantWhere(
      name,
      'backups scheduled',
      (t) => condition(t, 'BackupScheduled')?.status === 'True',
    );
    const expanded = expandSchedule('H 2 * * *', name, 'backup');
    assert.equal(tenant.status?.backup?.cronJob, backupCronJobName(name));
    assert.equal(tenant.status?.backup?.schedule, expanded);
    assert.equal(tenant.status?.backup?.store, STORE);
    assert.equal(tenant.status?.backup?.transitKeyVersion, 1);
    assert.ok(Date.parse(tenant.status?.backup?.nextRun ?? '') > Date.now());
    assert.equal(condition(tenant, 'LastBackupSucceeded')?.status, 'Unknown');
    assert.equal(condition(tenant, 'BackupVerified')?.status, 'Unknown');

    const jobTenant = {
      name,
      uid,
      spec: {
        state: 'Active' as const,
        database: { enabled: true },
        backup: { enabled: true, schedule: 'H 2 * * *' },
      },
    };
    const cronJob = await client.get<KubeObject>(
      objectPath(RESOURCES.CronJob, backupCronJobName(name), OPERATOR_NAMESPACE),
    );
    assert.ok(cronJob, 'no CronJob');
    const built = buildBackupCronJob(jobTenant, {
      namespace: OPERATOR_NAMESPACE,
      image: DEFAULT_BACKUP_IMAGE,
      vaultAddr: requireEnv('VAULT_ADDR'),
      vaultAudience: 'vault',
    });
    // Exactly as built, defaults included: a restart finds nothing to write.
    assert.ok(ownedFieldsEqual(built, cronJob), JSON.stringify(cronJob.spec));
    const account = await client.get<KubeObject>(
      objectPath(RESOURCES.ServiceAccount, backupServiceAccountName(name), OPERATOR_NAMESPACE),
    );
    assert.ok(account);
    assert.ok(
      ownedFieldsEqual(
        buildBackupServiceAccount(jobTenant, { namespace: OPERATOR_NAMESPACE }),
        account,
      ),
    );

    const key = await new Transit(VaultClient.fromEnv()).keyInfo(transitKeyName(name));
    assert.equal(key?.type, 'aes256-gcm96');
    assert.equal(key.exportable, false);
    assert.equal(key.deletionAllowed, false);

    // The tenant's owners reach none of it: not the job, its identity, nor the records.
    const owner = ['--as', 'mallory', '--as-group', `${name}-admins`];
    for (const args of [
      ['get', 'cronjob', backupCronJobName(name)],
      [
        'patch',
        'cronjob',
        backupCronJobName(name),
        '--type=merge',
        '-p',
        '{"spec":{"suspend":true}}',
      ],
      ['create', 'token', backupServiceAccountName(name), '--audience', 'vault'],
      ['create', 'job', 'steal', '--image', 'busybox', '--', 'true'],
    ]) {
      // Flags first: after `--` everything is the container's command.
      const result = kubectl(['-n', OPERATOR_NAMESPACE, ...owner, ...args]);
      assert.notEqual(result.status, 0, `an owner could: kubectl ${args.join(' ')}`);
      assert.match(result.stderr, /forbidden/i);
    }
    const record = kubectl(
      ['create', '-f', '-', ...owner],
      JSON.stringify({
        apiVersion: 'tenancy.io/v1alpha1',
        kind: 'TenantBackup',
        metadata: { name: `${name}-by-owner` },
        spec: { tenant: name },
      }),
    );
    assert.notEqual(record.status, 0, 'an owner created a TenantBackup');
  });

  test('an on-demand TenantBackup gets a Job; its run fills the record and the status, and the operator verifies it', async () => {
    const creds = await tenantCredentials(name);
    await tenantQuery(creds, `CREATE TABLE items (id serial PRIMARY KEY, label text)`);
    await tenantQuery(
      creds,
      `INSERT INTO items (label) SELECT 'row-' || g FROM generate_series(1, 300) g`,
    );

    const recordName = `${name}-first`;
    const jobName = onDemandJobName(recordName);
    const record = await onDemandBackup(name, 'first');
    const job = await client.get<KubeObject>(
      objectPath(RESOURCES.Job, jobName, OPERATOR_NAMESPACE),
    );
    assert.ok(job);
    const container = (job.spec as { template: { spec: { containers: { command: string[] }[] } } })
      .template.spec.containers[0];
    assert.deepEqual(container?.command, [
      'tenant-operator',
      'backup',
      'run',
      '--tenant',
      name,
      '--record',
      recordName,
    ]);
    assert.deepEqual(
      job.metadata.ownerReferences?.map((o) => [o.kind, o.name, o.uid]),
      [['TenantBackup', recordName, record.metadata.uid]],
    );
    const id = record.status?.backupId as string;
    assert.ok(existsSync(join(storeDir, manifestKey(name, uid, id))));

    const stored = await tenantWhere(name, 'lastBackup', (t) => t.status?.lastBackup?.id === id);
    assert.equal(condition(stored, 'LastBackupSucceeded')?.status, 'True');
    assert.equal(stored.status?.lastBackup?.sha256, record.status?.sha256);
    assert.equal(stored.status?.lastBackup?.store, STORE);
    assert.equal(stored.status?.backup?.failuresSinceSuccess, 0);

    // Verification, by the operator itself, recorded on the record and in status.
    const verified = await tenantWhere(
      name,
      'the backup verified',
      (t) => t.status?.lastVerifiedBackup?.id === id,
      150_000,
    );
    assert.equal(condition(verified, 'BackupVerified')?.status, 'True');
    assert.match(condition(verified, 'BackupVerified')?.message ?? '', /300 rows|rows match/);
    const onRecord = (
      await client.get<TenantBackupObject>(objectPath(RESOURCES.TenantBackup, recordName))
    )?.status?.conditions?.find((c) => c.type === VERIFIED_CONDITION);
    assert.equal(onRecord?.status, 'True');

    const reasons = (await tenantEvents(name)).map((e) => e.reason);
    for (const reason of ['BackupRequested', 'BackupSucceeded', 'Verified'])
      assert.ok(reasons.includes(reason), `no ${reason} Event: ${reasons.join(', ')}`);

    const labels = `tenant="${name}"`;
    const op = env.operator;
    assert.equal(
      await op.metric('tenant_operator_backup_last_success_timestamp_seconds', labels),
      backupIdTime(id).getTime() / 1000,
    );
    assert.equal(
      await op.metric('tenant_operator_backup_last_bytes', labels),
      record.status?.bytes,
    );
    assert.equal(await op.metric('tenant_operator_backup_failures', labels), 0);
    assert.equal(await op.metric('tenant_operator_backup_verified', labels), 1);
    assert.ok(
      (await op.metric('tenant_operator_backup_verifications_total', 'result="passed"')) >= 1,
    );

    // No password anywhere the API server holds or the operator said.
    const everything = JSON.stringify([
      job,
      await tenantRecords(name),
      await getTenant(client, name),
      await tenantEvents(name),
    ]);
    assert.ok(!everything.includes(creds.password), 'the password is in an API object');
    assert.ok(!op.output.join('\n').includes(creds.password), 'the password is in the log');
  });

  test('a failed run turns LastBackupSucceeded False with the reason, once', async () => {
    // A store of another region: the run refuses it (data stays in the tenant's region).
    await client.apply({
      apiVersion: 'tenancy.io/v1alpha1',
      kind: 'BackupStore',
      metadata: { name: `${PREFIX}-us` },
      spec: { region: 'us-east', filesystem: { path: storeDir } },
    });
    try {
      const recordName = `${name}-wrong-region`;
      const job = await requestOnDemandJob(client, name, recordName, { store: `${PREFIX}-us` });
      const run = runBackupPod(job, work);
      assert.notEqual(run.status, 0);
      const failed = await tenantWhere(
        name,
        'the failure in status',
        (t) => condition(t, 'LastBackupSucceeded')?.status === 'False',
      );
      assert.match(condition(failed, 'LastBackupSucceeded')?.message ?? '', /region/);
      assert.equal(failed.status?.backup?.failuresSinceSuccess, 1);
      assert.equal(
        await env.operator.metric('tenant_operator_backup_failures', `tenant="${name}"`),
        1,
      );
      await waitFor('a BackupFailed Warning', async () =>
        (await tenantEvents(name)).some((e) => e.reason === 'BackupFailed' && e.type === 'Warning'),
      );
      // Told once, not at every resync (3 s) after.
      await new Promise((resolve) => setTimeout(resolve, 7_000));
      const warnings = (await tenantEvents(name)).filter((e) => e.reason === 'BackupFailed');
      assert.deepEqual(
        warnings.map((e) => [e.type, (e as { count?: number }).count ?? 1]),
        [['Warning', 1]],
      );
    } finally {
      await client.delete(objectPath(RESOURCES.BackupStore, `${PREFIX}-us`));
    }
  });

  test('the key rotates on its interval; retention removes old backups and raises the minimum key version', async () => {
    const path = objectPath(RESOURCES.Tenant, name);
    await client.mergePatch(path, { spec: { backup: { keyRotationInterval: '1s' } } });
    await tenantWhere(
      name,
      'a rotated key',
      (t) => (t.status?.backup?.transitKeyVersion ?? 0) >= 2,
    );
    await client.mergePatch(path, { spec: { backup: { keyRotationInterval: '90d' } } });
    // A reconcile that began under the 1 s interval may still rotate once
    // more: the key is stable only once none of those is left.
    await tenantWhere(
      name,
      'the 90d interval observed',
      (t) => t.status?.observedGeneration === t.metadata.generation,
    );
    await env.operator.waitUntilIdle();
    const transit = new Transit(VaultClient.fromEnv());
    await waitFor('the rotation to settle', async () => {
      const t = await getTenant(client, name);
      const key = await transit.keyInfo(transitKeyName(name));
      return t?.status?.observedGeneration === t?.metadata.generation &&
        t?.status?.backup?.transitKeyVersion === key?.latestVersion
        ? true
        : undefined;
    });
    const latestVersion = (await transit.keyInfo(transitKeyName(name)))?.latestVersion ?? 0;
    assert.ok(
      (await tenantEvents(name)).some((e) => e.reason === 'BackupKeyRotated'),
      'no BackupKeyRotated Event',
    );

    const [first] = (await tenantRecords(name)).filter((r) => r.status?.phase === 'Succeeded');
    assert.equal(first?.status?.keyVersion, 1);
    const second = await onDemandBackup(name, 'second');
    assert.equal(second.status?.keyVersion, latestVersion, 'a new backup uses the newest key');

    // Everything but the newest good backup is now past retention.
    await client.mergePatch(path, { spec: { backup: { retention: '1s' } } });
    const firstId = first.status?.backupId as string;
    await waitFor(
      'the first backup to expire',
      async () =>
        (await client.get(objectPath(RESOURCES.TenantBackup, first.metadata.name))) === undefined,
      { timeoutMs: 30_000 },
    );
    assert.ok(!existsSync(join(storeDir, manifestKey(name, uid, firstId))), 'manifest left');
    assert.ok(!existsSync(join(storeDir, dataKey(name, uid, firstId))), 'data left');
    const secondId = second.status?.backupId as string;
    assert.ok(existsSync(join(storeDir, manifestKey(name, uid, secondId))), 'the newest went');
    assert.ok(
      (await client.get(objectPath(RESOURCES.TenantBackup, second.metadata.name))) !== undefined,
    );
    const key = await transit.keyInfo(transitKeyName(name));
    assert.equal(key?.minDecryptionVersion, latestVersion, 'old key versions still decrypt');
    assert.ok((await tenantEvents(name)).some((e) => e.reason === 'BackupsExpired'));
  });

  test('a settled tenant with backups writes nothing on resync', async () => {
    // A weekly verification from now on: nothing is due during the window.
    await client.mergePatch(objectPath(RESOURCES.Tenant, name), {
      spec: { backup: { verifySchedule: 'H H * * 0', retention: '35d' } },
    });
    await tenantWhere(
      name,
      'the spec observed',
      (t) => t.status?.observedGeneration === t.metadata.generation,
    );
    await env.operator.waitUntilIdle();
    const snapshot = async () => {
      const objects = [
        await getTenant(client, name),
        await client.get<KubeObject>(
          objectPath(RESOURCES.CronJob, backupCronJobName(name), OPERATOR_NAMESPACE),
        ),
        await client.get<KubeObject>(
          objectPath(RESOURCES.ServiceAccount, backupServiceAccountName(name), OPERATOR_NAMESPACE),
        ),
        ...(await tenantRecords(name)),
      ];
      const key = await new Transit(VaultClient.fromEnv()).keyInfo(transitKeyName(name));
      const policy = await new VaultPolicies(VaultClient.fromEnv()).readPolicy(`backup-${name}`);
      return JSON.stringify({
        versions: objects.map(
          (o) => `${o?.kind}/${o?.metadata.name}@${o?.metadata.resourceVersion}`,
        ),
        key: [key?.latestVersion, key?.minDecryptionVersion],
        policy,
      });
    };
    const before = await snapshot();
    // Three resync periods (3 s each).
    await new Promise((resolve) => setTimeout(resolve, 10_000));
    assert.equal(await snapshot(), before);

    // A restarted operator (another replica taking over) writes nothing either:
    // the CronJob it builds is the one the API server keeps, defaults and all.
    await env.operator.stop();
    const restarted = await OperatorProcess.start({ extraArgs: ['--resync-period', '3'] });
    replacements.push(restarted);
    await restarted.waitUntilLeader();
    await restarted.waitUntilIdle();
    await new Promise((resolve) => setTimeout(resolve, 7_000));
    assert.equal(await snapshot(), before, 'the restarted operator wrote');
    assert.equal(await restarted.writes(), 0, 'the restarted operator counted writes');
  });

  test('a suspended tenant’s CronJob is suspended and on-demand backups are refused', async () => {
    const path = objectPath(RESOURCES.Tenant, name);
    await client.mergePatch(path, { spec: { state: 'Suspended' } });
    try {
      await tenantWhere(name, 'backups off', (t) => {
        const scheduled = condition(t, 'BackupScheduled');
        return scheduled?.status === 'False' && scheduled.reason === 'Suspended';
      });
      const cronJob = await client.get<KubeObject>(
        objectPath(RESOURCES.CronJob, backupCronJobName(name), OPERATOR_NAMESPACE),
      );
      assert.equal((cronJob?.spec as { suspend?: boolean }).suspend, true);
      const recordName = `${name}-while-suspended`;
      await client.create(TENANT_BACKUPS, {
        apiVersion: 'tenancy.io/v1alpha1',
        kind: 'TenantBackup',
        metadata: { name: recordName },
        spec: { tenant: name },
      });
      const refused = await waitFor('the request refused', async () => {
        const r = await client.get<TenantBackupObject>(
          objectPath(RESOURCES.TenantBackup, recordName),
        );
        return r?.status?.phase === 'Failed' ? r : undefined;
      });
      assert.match(refused.status?.message ?? '', /Suspended/);
      assert.equal(
        await client.get(
          objectPath(RESOURCES.Job, onDemandJobName(recordName), OPERATOR_NAMESPACE),
        ),
        undefined,
      );
    } finally {
      await client.mergePatch(path, { spec: { state: 'Active' } });
    }
    await tenantWhere(
      name,
      'backups on again',
      (t) => condition(t, 'BackupScheduled')?.status === 'True',
    );
  });

  test('an operator killed after starting a Job, or after expiring a manifest, is finished by the next', async () => {
    const path = objectPath(RESOURCES.Tenant, name);
    await env.operator.stop();
    for (const operator of replacements) await operator.stop();

    // 1. Killed between creating the on-demand Job and recording it.
    const first = await OperatorProcess.start({
      env: { TENANT_OPERATOR_FAILPOINTS: 'after-on-demand-job' },
      extraArgs: ['--resync-period', '3'],
    });
    replacements.push(first);
    await first.waitUntilLeader();
    const recordName = `${name}-third`;
    await client.create(TENANT_BACKUPS, {
      apiVersion: 'tenancy.io/v1alpha1',
      kind: 'TenantBackup',
      metadata: { name: recordName },
      spec: { tenant: name },
    });
    await waitFor('the failpoint to kill the operator', () => !first.alive, { timeoutMs: 30_000 });
    const jobPath = objectPath(RESOURCES.Job, onDemandJobName(recordName), OPERATOR_NAMESPACE);
    const job = await client.get<KubeObject>(jobPath);
    assert.ok(job, 'the Job was not created before the kill');
    const unrecorded = await client.get<TenantBackupObject>(
      objectPath(RESOURCES.TenantBackup, recordName),
    );
    assert.equal(unrecorded?.status?.phase, undefined, 'the record was written before the kill');

    // 2. The next leader records the Job it finds (one Job, not two) and is
    //    killed after deleting an expired backup's manifest.
    const second = await OperatorProcess.start({
      env: { TENANT_OPERATOR_FAILPOINTS: 'after-expiry-manifest' },
      extraArgs: ['--resync-period', '3'],
    });
    replacements.push(second);
    await second.waitUntilLeader();
    const pending = await waitFor('the record to be Pending', async () => {
      const r = await client.get<TenantBackupObject>(
        objectPath(RESOURCES.TenantBackup, recordName),
      );
      return r?.status?.phase === 'Pending' ? r : undefined;
    });
    assert.match(pending.status?.message ?? '', new RegExp(onDemandJobName(recordName)));
    assert.equal((await client.get<KubeObject>(jobPath))?.metadata.uid, job.metadata.uid);
    const run = runBackupPod(job, work);
    assert.equal(run.status, 0, run.stderr);
    const [older] = (await tenantRecords(name)).filter(
      (r) => r.status?.phase === 'Succeeded' && r.metadata.name !== recordName,
    );
    assert.ok(older, 'no older good backup to expire');
    const olderId = older.status?.backupId as string;
    await client.mergePatch(path, { spec: { backup: { retention: '1s' } } });
    await waitFor('the failpoint to kill the operator', () => !second.alive, { timeoutMs: 30_000 });
    assert.ok(!existsSync(join(storeDir, manifestKey(name, uid, olderId))), 'manifest still there');
    assert.ok(existsSync(join(storeDir, dataKey(name, uid, olderId))), 'data went with the kill');
    assert.ok(await client.get(objectPath(RESOURCES.TenantBackup, older.metadata.name)));

    // 3. A plain leader finishes: the data and the record go, the newest stays.
    const third = await OperatorProcess.start({ extraArgs: ['--resync-period', '3'] });
    replacements.push(third);
    await third.waitUntilLeader();
    await waitFor(
      'the expired record to go',
      async () =>
        (await client.get(objectPath(RESOURCES.TenantBackup, older.metadata.name))) === undefined,
      { timeoutMs: 30_000 },
    );
    assert.ok(!existsSync(join(storeDir, dataKey(name, uid, olderId))), 'data left behind');
    const newest = await client.get<TenantBackupObject>(
      objectPath(RESOURCES.TenantBackup, recordName),
    );
    assert.equal(newest?.status?.phase, 'Succeeded');
    assert.ok(existsSync(join(storeDir, manifestKey(name, uid, newest.status?.backupId ?? ''))));
    await client.mergePatch(path, { spec: { backup: { retention: '35d' } } });
  });
});
