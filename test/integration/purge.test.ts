import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { localServers, registerLocalDatabaseServers } from '../../hack/database-servers.ts';
import { backupCronJobName } from '../../src/backup/cronjob.ts';
import { tenantPrefix } from '../../src/backup/layout.ts';
import { certificateKey } from '../../src/erasure/certificate.ts';
import type { TenantBackupObject } from '../../src/backup/records.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { collectionPath, objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import type { KubeList, KubeObject } from '../../src/k8s/types.ts';
import { databaseIdentifiersFor } from '../../src/postgres/identifiers.ts';
import { PURGE_STEPS } from '../../src/tenant/purge.ts';
import { VaultClient } from '../../src/vault/client.ts';
import { KubernetesAuth } from '../../src/vault/kubernetes-auth.ts';
import { KvV2 } from '../../src/vault/kv.ts';
import { VaultPolicies } from '../../src/vault/policy.ts';
import { Transit } from '../../src/vault/transit.ts';
import {
  OPERATOR_NAMESPACE,
  REPO,
  requestOnDemandJob,
  runBackupCommandAsAdmin,
  runBackupPod,
} from '../support/backup-job.ts';
import {
  adminClient,
  breakGlassClient,
  getTenant,
  requireEnv,
  waitForPhase,
} from '../support/cluster.ts';
import { TestEnvironment } from '../support/fixture.ts';
import {
  configureVault,
  removeTenantLeftovers,
  tenantCredentials,
  tenantQuery,
} from '../support/tenant-data.ts';
import { OperatorProcess } from '../support/operator.ts';
import { adminRows } from '../support/postgres.ts';
import { waitFor } from '../support/wait.ts';

// The purge of a closed tenant, judged by every server it touched: nothing
// goes before its time; after it, the database and roles, the backups in
// the store and their records, the Vault secret, policies, roles and the
// Transit key, the CronJob and the namespace are all gone, and status tells
// each step. The operator is killed after every step, each time by a
// failpoint, and the next leader goes on from where the last one stopped.

const PREFIX = 'purge';
const STORE = 'purge-fs';

let env: TestEnvironment;
let client: KubeClient;
let storeDir: string;
let work: string;
const replacements: OperatorProcess[] = [];

function runCli(args: string[]) {
  return spawnSync(process.execPath, ['src/cli/main.ts', ...args], {
    cwd: REPO,
    env: {
      PATH: process.env.PATH,
      VAULT_ADDR: requireEnv('VAULT_ADDR'),
      VAULT_TOKEN: requireEnv('VAULT_TOKEN'),
    },
    encoding: 'utf8',
    timeout: 60_000,
  });
}

async function tenantEventsOf(uid: string): Promise<KubeObject[]> {
  const list = await client.request<KubeList<KubeObject>>(
    'GET',
    collectionPath(RESOURCES.Event, 'default'),
  );
  return list.items.filter((e) => (e.involvedObject as { uid?: string } | undefined)?.uid === uid);
}

function pgEu() {
  const server = localServers().find((s) => s.name === 'pg-eu');
  assert.ok(server);
  return server;
}

/** Closes the tenant and asks for its immediate erasure, confirmed by its name. */
async function closeAndEraseNow(name: string): Promise<void> {
  await client.mergePatch(objectPath(RESOURCES.Tenant, name), {
    metadata: { annotations: { 'tenancy.io/erase-now': name } },
    spec: { state: 'Closed' },
  });
}

/** An on-demand backup, its Job run as the pod would run it; answers the backup's id. */
async function backupNow(tenant: string, recordName: string): Promise<string> {
  const job = await requestOnDemandJob(client, tenant, recordName);
  const run = runBackupPod(job, work);
  assert.equal(run.status, 0, run.stderr);
  const backedUp = await client.get<TenantBackupObject>(
    objectPath(RESOURCES.TenantBackup, recordName),
  );
  const backupId = backedUp?.status?.backupId;
  assert.ok(backupId, `no backup id on ${recordName}`);
  return backupId;
}

before(async () => {
  configureVault();
  client = await adminClient();
  await registerLocalDatabaseServers(client);
  storeDir = mkdtempSync(join(tmpdir(), `${PREFIX}-store-`));
  work = mkdtempSync(join(tmpdir(), `${PREFIX}-`));
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
  // The test kills its operators: a fresh one deletes what the fixture made.
  for (const operator of replacements) await operator.stop();
  const cleaner = await OperatorProcess.start();
  await cleaner.waitUntilReady();
  await env[Symbol.asyncDispose]();
  await cleaner.stop();
  await client.delete(objectPath(RESOURCES.BackupStore, STORE));
  await removeTenantLeftovers(`${PREFIX}-a`);
  rmSync(storeDir, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

test('a closed tenant is erased when its time comes, never before, and a crash between any two steps is finished by the next leader', async () => {
  const name = await env.tenant('a', {
    region: 'eu-west',
    database: { enabled: true },
    retention: { afterClosure: '20s' },
  });
  const ready = await waitForPhase(client, name, 'Ready', 60_000);
  const uid = ready.metadata.uid as string;
  const ids = databaseIdentifiersFor(name);

  // A backup, so that the store and the records have something to erase.
  const backupId = await backupNow(name, `${name}-before-closure`);

  await client.mergePatch(objectPath(RESOURCES.Tenant, name), { spec: { state: 'Closed' } });
  const closed = await waitForPhase(client, name, 'Closed', 30_000);
  const purgeAfter = Date.parse(closed.status?.purgeAfter ?? '');
  assert.equal(purgeAfter - Date.parse(closed.status?.closedAt ?? ''), 20_000);
  assert.equal(
    await env.operator.metric('tenant_operator_purge_due_timestamp_seconds', `tenant="${name}"`),
    purgeAfter / 1000,
  );
  await env.operator.stop();

  // One operator per step, each killed by the failpoint right after its step.
  const root = VaultClient.fromEnv();
  const kv = new KvV2(root);
  for (const [index, step] of PURGE_STEPS.entries()) {
    const operator = await OperatorProcess.start({
      env: { TENANT_OPERATOR_FAILPOINTS: `purge-after-${step}` },
      extraArgs: ['--resync-period', '3'],
    });
    replacements.push(operator);
    // From the second on, the purge is due: the new leader goes on at once
    // and may be dead before its leadership could be seen.
    if (index === 0) {
      await operator.waitUntilLeader();
      // Not before its time: closed, due in 20 s, everything still there.
      assert.ok(Date.now() < purgeAfter, 'the test came too late to see the wait');
      await new Promise((resolve) => setTimeout(resolve, 2_000));
      assert.equal((await getTenant(client, name))?.status?.erasure, undefined);
      assert.equal(
        (await adminRows(pgEu(), `SELECT 1 FROM pg_database WHERE datname = $1`, [ids.database]))
          .length,
        1,
      );
      assert.ok(await kv.readSecret(`tenants/${name}/database`));
    }
    await waitFor(`the operator to die after step ${step}`, () => !operator.alive, {
      timeoutMs: 60_000,
    });
    assert.ok(Date.now() >= purgeAfter, 'the purge began before its time');
    const tenant = await getTenant(client, name);
    assert.deepEqual(
      tenant?.status?.erasure?.steps?.map((s) => s.name),
      PURGE_STEPS.slice(0, index + 1),
      `after the kill at ${step}`,
    );
    assert.equal(tenant?.status?.erasure?.completedAt, undefined);
    assert.equal(tenant?.status?.phase, 'Purging');
  }
  const last = await OperatorProcess.start({ extraArgs: ['--resync-period', '3'] });
  replacements.push(last);
  await last.waitUntilLeader();
  const purged = await waitForPhase(client, name, 'Purged', 60_000);
  assert.equal(await last.metric('tenant_operator_tenants_purged'), 1);
  assert.equal(await last.metric('tenant_operator_purges_overdue'), 0);
  const erasure = purged.status?.erasure;
  assert.ok(erasure?.completedAt);
  assert.deepEqual(
    erasure.steps?.map((s) => s.name),
    [...PURGE_STEPS],
  );
  const removed = Object.fromEntries(erasure.steps?.map((s) => [s.name, s.removed]) ?? []);
  assert.ok(
    removed.backups?.some((line) => line.includes(backupId)),
    JSON.stringify(removed),
  );
  assert.ok(removed.database?.some((line) => line.includes(ids.database)));
  assert.ok(removed.key?.some((line) => line.includes(`tenant-${name}`)));

  // Judged by each server.
  assert.deepEqual(
    await adminRows(pgEu(), `SELECT datname FROM pg_database WHERE datname = $1`, [ids.database]),
    [],
  );
  assert.deepEqual(
    await adminRows(pgEu(), `SELECT rolname FROM pg_roles WHERE rolname = ANY($1)`, [
      [ids.ownerRole, ...ids.loginRoles],
    ]),
    [],
  );
  assert.equal(await kv.readSecret(`tenants/${name}/database`), undefined);
  assert.equal(await kv.readMetadata(`tenants/${name}/database`), undefined);
  for (const policy of [`tenant-${name}`, `backup-${name}`, `restore-${name}`])
    assert.equal(await new VaultPolicies(root).readPolicy(policy), undefined, policy);
  for (const role of [`tenant-${name}`, `backup-${name}`])
    assert.equal(await new KubernetesAuth(root).readKubernetesRole(role), undefined, role);
  assert.equal(await new Transit(root).keyInfo(`tenant-${name}`), undefined);
  const left = readdirSync(storeDir, { recursive: true }).filter((f) =>
    String(f).startsWith(tenantPrefix(name, uid).replace(/\/$/, '')),
  );
  // Only the certificate's copy is left in the store, outside every tenant's prefix.
  assert.deepEqual(
    readdirSync(join(storeDir), { recursive: true, withFileTypes: true })
      .filter((f) => f.isFile())
      .map((f) => join(f.parentPath, f.name).slice(storeDir.length + 1)),
    [certificateKey(name, uid)],
    `left in the store: ${left.join(', ')}`,
  );

  // The certificate: in status, in the store, signed by Vault's key, verifiable.
  const certificate = erasure.certificate as Record<string, string>;
  const document = JSON.parse(certificate.document ?? '') as Record<string, unknown>;
  assert.equal(document.tenant, name);
  assert.equal(document.uid, uid);
  assert.equal(document.closedAt, closed.status?.closedAt);
  assert.equal(document.purgeAfter, closed.status?.purgeAfter);
  assert.equal(document.completedAt, erasure.completedAt);
  assert.deepEqual(document.steps, erasure.steps);
  assert.match(certificate.signature ?? '', /^vault:v\d+:/);
  const copyFile = join(storeDir, certificateKey(name, uid));
  const copy = JSON.parse(readFileSync(copyFile, 'utf8')) as Record<string, string>;
  assert.deepEqual(copy, { document: certificate.document, signature: certificate.signature });
  const verified = runCli(['certificate', 'verify', copyFile]);
  assert.equal(verified.status, 0, verified.stderr);
  assert.match(verified.stdout, new RegExp(`^valid: tenant ${name} \\(uid ${uid}\\)`));
  const forged = join(work, 'forged.json');
  // One step renamed: the Transit key was "kept".
  const forgedDocument = copy.document?.replace('"name":"key"', '"name":"kept"');
  assert.notEqual(forgedDocument, copy.document);
  writeFileSync(forged, JSON.stringify({ ...copy, document: forgedDocument }));
  const refused = runCli(['certificate', 'verify', forged]);
  assert.equal(refused.status, 1, refused.stdout);
  assert.match(refused.stderr, /does not match the document/);
  assert.ok(
    (await tenantEventsOf(purged.metadata.uid as string)).some(
      (e) => e.reason === 'ErasureCertified',
    ),
  );
  assert.equal(await client.get(objectPath(RESOURCES.Namespace, `tenant-${name}`)), undefined);
  assert.equal(
    await client.get(objectPath(RESOURCES.CronJob, backupCronJobName(name), OPERATOR_NAMESPACE)),
    undefined,
  );
  const records = await client.request<KubeList<TenantBackupObject>>(
    'GET',
    collectionPath(RESOURCES.TenantBackup),
  );
  assert.deepEqual(
    records.items.filter((r) => r.spec.tenant === name).map((r) => r.metadata.name),
    [],
  );

  // Re-opening an erased tenant is refused where it is written, and nothing comes back.
  await assert.rejects(
    client.mergePatch(objectPath(RESOURCES.Tenant, name), { spec: { state: 'Active' } }),
    /cannot be re-opened/,
  );
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  assert.equal(await client.get(objectPath(RESOURCES.Namespace, `tenant-${name}`)), undefined);
  assert.equal((await getTenant(client, name))?.status?.phase, 'Purged');
});

test('a legal hold keeps a due tenant; lifting it erases at once', async () => {
  const name = await env.tenant('held', { retention: { afterClosure: '2s', legalHold: true } });
  await waitForPhase(client, name, 'Ready', 60_000);
  await client.mergePatch(objectPath(RESOURCES.Tenant, name), { spec: { state: 'Closed' } });
  const closed = await waitForPhase(client, name, 'Closed', 30_000);
  const due = Date.parse(closed.status?.purgeAfter ?? '');
  const operator = replacements.at(-1) as OperatorProcess;
  await waitFor('the due time to pass', () => Date.now() > due + 4_000, { timeoutMs: 20_000 });
  const waiting = await getTenant(client, name);
  assert.equal(waiting?.status?.phase, 'Closed');
  assert.equal(waiting?.status?.erasure, undefined);
  assert.ok(await client.get(objectPath(RESOURCES.Namespace, `tenant-${name}`)));
  assert.equal(await operator.metric('tenant_operator_legal_holds'), 1);
  const hold = waiting?.status?.conditions?.find((c) => c.type === 'PurgeScheduled');
  assert.deepEqual([hold?.status, hold?.reason], ['False', 'LegalHold']);

  await client.mergePatch(objectPath(RESOURCES.Tenant, name), {
    spec: { retention: { legalHold: false } },
  });
  const purged = await waitForPhase(client, name, 'Purged', 30_000);
  assert.ok(purged.status?.erasure?.completedAt);
  assert.equal(await client.get(objectPath(RESOURCES.Namespace, `tenant-${name}`)), undefined);
  assert.equal(await operator.metric('tenant_operator_legal_holds'), 0);
});

test('an immediate erasure, confirmed by the tenant’s name, erases a closed tenant at once', async () => {
  const name = await env.tenant('gdpr', {});
  await waitForPhase(client, name, 'Ready', 60_000);
  const path = objectPath(RESOURCES.Tenant, name);
  // Asked for on an Active tenant: nothing happens (close it first).
  await client.mergePatch(path, { metadata: { annotations: { 'tenancy.io/erase-now': name } } });
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  assert.equal((await getTenant(client, name))?.status?.phase, 'Ready');

  await client.mergePatch(path, {
    metadata: { annotations: { 'tenancy.io/erase-now': 'someone-else' } },
    spec: { state: 'Closed' },
  });
  const closed = await waitForPhase(client, name, 'Closed', 30_000);
  assert.ok(Date.parse(closed.status?.purgeAfter ?? '') > Date.now() + 59 * 86_400_000);
  await new Promise((resolve) => setTimeout(resolve, 3_000));
  assert.equal(
    (await getTenant(client, name))?.status?.erasure,
    undefined,
    'a confirmation naming another tenant erased this one',
  );

  await client.mergePatch(path, { metadata: { annotations: { 'tenancy.io/erase-now': name } } });
  const purged = await waitForPhase(client, name, 'Purged', 30_000);
  assert.equal(purged.status?.erasure?.trigger, 'ErasureRequest');
  const document = JSON.parse(
    (purged.status?.erasure?.certificate as Record<string, string>).document ?? '',
  ) as Record<string, unknown>;
  assert.equal(document.trigger, 'ErasureRequest');
  assert.equal(await client.get(objectPath(RESOURCES.Namespace, `tenant-${name}`)), undefined);
});

test('a deleted tenant is erased at its time and released; a new Tenant of its name starts from nothing', async () => {
  const spec = {
    region: 'eu-west',
    database: { enabled: true },
    retention: { afterClosure: '15s' },
  };
  const name = await env.tenant('del', spec);
  const first = await waitForPhase(client, name, 'Ready', 60_000);
  const oldUid = first.metadata.uid as string;
  const oldCredentials = await tenantCredentials(name);
  await tenantQuery(oldCredentials, 'CREATE TABLE kept (v int); INSERT INTO kept VALUES (1)');
  const backupId = await backupNow(name, `${name}-before-deletion`);
  // A copy of the backup, as one might be left anywhere: unreadable later.
  const oldPrefix = tenantPrefix(name, oldUid);
  const copy = join(work, 'old-backup');
  cpSync(join(storeDir, oldPrefix), copy, { recursive: true });
  const manifest = JSON.parse(readFileSync(join(copy, backupId, 'manifest.json'), 'utf8')) as {
    encryption: { wrappedKey: string };
  };

  await client.delete(objectPath(RESOURCES.Tenant, name));
  const held = await waitFor('the deleted tenant to be Closed', async () => {
    const t = await getTenant(client, name);
    return t?.status?.phase === 'Closed' && t.status.purgeAfter ? t : undefined;
  });
  const deletedAt = held.metadata.deletionTimestamp as string;
  assert.equal(held.status?.closedAt, deletedAt);
  const purgeAfter = Date.parse(held.status?.purgeAfter ?? '');
  assert.equal(purgeAfter - Date.parse(deletedAt), 15_000);

  // Held until its time; let go once erased.
  await waitFor(
    'the deleted tenant to be erased and released',
    async () => {
      const t = await getTenant(client, name);
      if (t) assert.ok(t.status?.erasure === undefined || Date.now() >= purgeAfter, 'erased early');
      return t === undefined;
    },
    { timeoutMs: 90_000, intervalMs: 250 },
  );
  assert.ok(Date.now() >= purgeAfter, 'released before its time');
  const certificateFile = join(storeDir, certificateKey(name, oldUid));
  const certificate = JSON.parse(readFileSync(certificateFile, 'utf8')) as Record<string, string>;
  const document = JSON.parse(certificate.document ?? '') as Record<string, unknown>;
  assert.equal(document.closedAt, deletedAt);
  assert.equal(document.trigger, 'RetentionExpired');
  // Begun within seconds of the due time, never before it (times are whole seconds).
  const lateMs = Date.parse(document.startedAt as string) - purgeAfter;
  assert.ok(lateMs >= 0 && lateMs <= 5_000, `the erasure began ${lateMs} ms after its due time`);
  const verified = runCli(['certificate', 'verify', certificateFile]);
  assert.equal(verified.status, 0, verified.stderr);
  // Once the signing key is rotated, what its older version signed still verifies.
  await VaultClient.fromEnv().write('transit/keys/erasure-certificates/rotate', {});
  const afterRotation = runCli(['certificate', 'verify', certificateFile]);
  assert.equal(afterRotation.status, 0, afterRotation.stderr);
  assert.ok(
    (await tenantEventsOf(oldUid)).some((e) => e.reason === 'Released'),
    'no Released event',
  );

  // The same name again: a new database, new credentials, a new key.
  await env.tenant('del', spec);
  const second = await waitForPhase(client, name, 'Ready', 60_000);
  assert.notEqual(second.metadata.uid, oldUid);
  const newCredentials = await tenantCredentials(name);
  assert.notEqual(newCredentials.password, oldCredentials.password);
  assert.deepEqual(await tenantQuery(newCredentials, `SELECT to_regclass('kept') AS kept`), [
    { kept: null },
  ]);
  await waitFor(
    'the new backup key',
    async () => (await new Transit(VaultClient.fromEnv()).keyInfo(`tenant-${name}`)) !== undefined,
  );
  // The old backup, put back where it was: not listed, and the new key cannot open it.
  cpSync(copy, join(storeDir, oldPrefix), { recursive: true });
  const listed = runBackupCommandAsAdmin(['list', '--tenant', name, '--json']);
  assert.equal(listed.status, 0, listed.stderr);
  assert.deepEqual(JSON.parse(listed.stdout), []);
  await assert.rejects(
    new Transit(VaultClient.fromEnv()).decryptDataKey(
      `tenant-${name}`,
      manifest.encryption.wrappedKey,
    ),
  );
  rmSync(join(storeDir, 'tenants', name, oldUid), { recursive: true, force: true });
});

test('a purge that cannot finish says where and why, never reports done, and finishes once the store is back', async () => {
  // A store whose server is down: nothing listens on the discard port.
  const downStore = `${PREFIX}-down`;
  await client.apply({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: `${downStore}-credentials`, namespace: OPERATOR_NAMESPACE },
    stringData: { accessKeyId: 'down', secretAccessKey: 'down-down-down' },
  });
  await client.apply({
    apiVersion: 'tenancy.io/v1alpha1',
    kind: 'BackupStore',
    metadata: { name: downStore },
    spec: {
      region: 'nowhere',
      s3: {
        endpoint: 'http://127.0.0.1:9',
        bucket: 'gone',
        forcePathStyle: true,
        credentialsSecret: { name: `${downStore}-credentials` },
      },
    },
  });
  try {
    const name = await env.tenant('blocked', {});
    await waitForPhase(client, name, 'Ready', 60_000);
    await closeAndEraseNow(name);
    const blocked = await waitFor(
      'the purge to stop at the store',
      async () => {
        const t = await getTenant(client, name);
        const ready = t?.status?.conditions?.find((c) => c.type === 'Ready');
        return ready?.reason === 'PurgeBlocked' ? { t, ready } : undefined;
      },
      { timeoutMs: 60_000 },
    );
    assert.match(
      blocked.ready.message,
      /^erasure stopped at step backups: .*; retrying with backoff$/,
    );
    assert.equal(blocked.t?.status?.phase, 'Purging');
    assert.equal(blocked.t?.status?.erasure?.completedAt, undefined);
    assert.equal(blocked.t?.status?.erasure?.certificate, undefined);
    assert.deepEqual(
      blocked.t?.status?.erasure?.steps?.map((s) => s.name),
      ['access', 'database'],
    );
    // The Event is written after the status it tells of: wait for it, do not race it.
    await waitFor(
      'a PurgeBlocked Warning Event',
      async () =>
        (await tenantEventsOf(blocked.t?.metadata.uid as string)).some(
          (e) => e.reason === 'PurgeBlocked' && e.type === 'Warning',
        ),
      { timeoutMs: 15_000 },
    );

    // The store is taken out of service: the erasure goes on and completes.
    await client.delete(objectPath(RESOURCES.BackupStore, downStore));
    const purged = await waitForPhase(client, name, 'Purged', 120_000);
    assert.ok(purged.status?.erasure?.certificate);
  } finally {
    await client.delete(objectPath(RESOURCES.BackupStore, downStore));
    await client.delete(
      objectPath(RESOURCES.Secret, `${downStore}-credentials`, OPERATOR_NAMESPACE),
    );
  }
});

test('a namespace held by a finalizer keeps the erasure waiting, and status says what holds it', async () => {
  const name = await env.tenant('held-ns', {});
  await waitForPhase(client, name, 'Ready', 60_000);
  const namespace = `tenant-${name}`;
  // Made before the guard existed, or by break-glass: a finalizer nothing removes.
  const breakGlass = await breakGlassClient();
  const releaseHold = () =>
    breakGlass.mergePatch(`/api/v1/namespaces/${namespace}/configmaps/hold`, {
      metadata: { finalizers: null },
    });
  try {
    await breakGlass.create(`/api/v1/namespaces/${namespace}/configmaps`, {
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name: 'hold', namespace, finalizers: ['example.com/hold'] },
    });
    await closeAndEraseNow(name);
    const waiting = await waitFor(
      'status to name the finalizer that holds the namespace',
      async () => {
        const t = await getTenant(client, name);
        const ready = t?.status?.conditions?.find((c) => c.type === 'Ready');
        return ready?.message.includes('example.com/hold') ? { t, ready } : undefined;
      },
      { timeoutMs: 60_000 },
    );
    assert.equal(waiting.t?.status?.phase, 'Purging');
    assert.match(
      waiting.ready.message,
      /waiting: namespace tenant-purge-held-ns is being deleted; .*NamespaceFinalizersRemaining: .*example\.com\/hold/,
    );
    assert.equal(waiting.t?.status?.erasure?.certificate, undefined);
    await releaseHold();
    await waitForPhase(client, name, 'Purged', 60_000);
  } finally {
    await releaseHold().catch(() => undefined);
    await breakGlass.close();
  }
});

test('with --purged-tenants delete, an erased tenant is deleted; its certificate stays in the store', async () => {
  for (const operator of replacements) await operator.stop();
  const deleting = await OperatorProcess.start({
    extraArgs: ['--resync-period', '3', '--purged-tenants', 'delete'],
  });
  replacements.push(deleting);
  await deleting.waitUntilLeader();
  const name = await env.tenant('gone', { region: 'eu-west' });
  const ready = await waitForPhase(client, name, 'Ready', 60_000);
  await closeAndEraseNow(name);
  await waitFor('the erased tenant to be deleted', async () => !(await getTenant(client, name)), {
    timeoutMs: 60_000,
  });
  const copy = join(storeDir, certificateKey(name, ready.metadata.uid as string));
  const verified = runCli(['certificate', 'verify', copy]);
  assert.equal(verified.status, 0, verified.stderr);
});

test('a certificate copy past its legal period is removed by the next leader; current and unreadable ones stay', async () => {
  const dir = join(storeDir, 'certificates');
  const copy = (keepUntil: string) =>
    JSON.stringify({ document: JSON.stringify({ keepUntil }), signature: 'vault:v1:x' });
  writeFileSync(join(dir, 'expired-0000.json'), copy('2020-01-01T00:00:00Z'));
  writeFileSync(join(dir, 'current-0000.json'), copy('2100-01-01T00:00:00Z'));
  writeFileSync(join(dir, 'unreadable-0000.json'), 'not json');
  const before = readdirSync(dir);
  for (const operator of replacements) await operator.stop();
  const leader = await OperatorProcess.start({ extraArgs: ['--resync-period', '3'] });
  replacements.push(leader);
  await leader.waitUntilLeader();
  await waitFor(
    'the expired copy to be removed',
    () => !readdirSync(dir).includes('expired-0000.json'),
  );
  assert.deepEqual(readdirSync(dir).sort(), before.filter((f) => f !== 'expired-0000.json').sort());
  assert.ok(
    leader.output.some(
      (line) => line.includes('legal period has ended') && line.includes('expired-0000.json'),
    ),
  );
});
