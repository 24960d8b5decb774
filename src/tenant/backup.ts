import type { Logger } from 'pino';
import { durationToMs } from '../api/duration.ts';
import {
  backupCronJobName,
  backupSchedule,
  backupsActive,
  buildBackupCronJob,
  buildBackupServiceAccount,
  type BackupJobConfig,
} from '../backup/cronjob.ts';
import { dueForExpiry, expireBackups } from '../backup/expiry.ts';
import { backupHistory, type BackupHistory } from '../backup/history.ts';
import { buildOnDemandJob, onDemandJobName } from '../backup/on-demand-job.ts';
import { writeRecordStatus, type TenantBackupObject } from '../backup/records.ts';
import { expandSchedule, nextRun } from '../backup/schedule.ts';
import type { StoreAccess } from '../backup/store-access.ts';
import type { BackupVerifier } from '../backup/verifier.ts';
import {
  backupServiceAccountName,
  ensureTenantBackupKeys,
  rotateIfDue,
  transitKeyName,
  type BackupVaultObjects,
} from '../backup/vault-access.ts';
import { CONDITION, REASON } from '../controller/conditions.ts';
import type { EventRecorder } from '../controller/events.ts';
import type { Informer } from '../controller/informer.ts';
import { isConflict } from '../errors.ts';
import { failpoint } from '../failpoints.ts';
import { collectionPath, objectPath, RESOURCES } from '../k8s/resources.ts';
import type { KubeObject } from '../k8s/types.ts';
import { syncChild, type ChildSyncDeps } from './child-sync.ts';
import { backupOutcome, type BackupOutcome, type Schedule } from './backup-status.ts';
import type { DatabaseServerObject } from './database-servers.ts';
import { settledReads } from './database.ts';
import type { TenantObject, ValidTenant } from './model.ts';
import type { VaultReads } from '../vault/inventory.ts';

// The tenant's backups, as the operator runs them: its Transit key and
// Vault roles (ensureTenantBackupKeys), the key's rotation, the backup
// CronJob and its ServiceAccount in the operator's namespace, a Job for each
// on-demand TenantBackup, retention, and scheduled verification (handed to
// the BackupVerifier, which runs off the reconcile path). Status comes from
// the TenantBackup records, which the backup jobs write: a restarted
// operator, or one whose Tenant lost its status, derives the same answer.

export interface BackupDeps {
  vault: BackupVaultObjects;
  job: BackupJobConfig;
  cronJobs: Informer<KubeObject>;
  serviceAccounts: Informer<KubeObject>;
  records: Informer<TenantBackupObject>;
  servers: Informer<DatabaseServerObject>;
  stores: StoreAccess;
  verifier: BackupVerifier;
  events: EventRecorder;
  log: Logger;
  /** How a settled tenant's Vault objects are read (cached, checked by the inventory). */
  vaultReads?: VaultReads;
}

/** Longest wait before looking at a tenant again for its verification (a resync comes anyway). */
const MAX_VERIFY_REQUEUE_MS = 3600_000;

async function liveOf(
  sync: ChildSyncDeps,
  informer: Informer<KubeObject>,
  desired: KubeObject,
): Promise<KubeObject | undefined> {
  return (
    informer.get(desired.metadata.name, desired.metadata.namespace) ??
    (await sync.client.get<KubeObject>(
      objectPath(
        RESOURCES[desired.kind as 'CronJob' | 'ServiceAccount'],
        desired.metadata.name,
        desired.metadata.namespace,
      ),
    ))
  );
}

async function syncJobObject(
  sync: ChildSyncDeps,
  informer: Informer<KubeObject>,
  desired: KubeObject,
  planned: boolean,
): Promise<KubeObject> {
  const live = await liveOf(sync, informer, desired);
  const synced = await syncChild(sync, desired, live, planned);
  if (synced !== live) informer.upsert(synced);
  return synced;
}

/** The CronJob and ServiceAccount of a tenant that has no database any more. */
async function removeJobObjects(
  sync: ChildSyncDeps,
  deps: BackupDeps,
  valid: ValidTenant,
): Promise<void> {
  const namespace = deps.job.namespace;
  for (const [informer, kind, name] of [
    [deps.cronJobs, 'CronJob', backupCronJobName(valid.name)],
    [deps.serviceAccounts, 'ServiceAccount', backupServiceAccountName(valid.name)],
  ] as const) {
    const live = informer.get(name, namespace);
    if (!live) continue;
    await sync.client.request('DELETE', objectPath(RESOURCES[kind], name, namespace), {
      body: { preconditions: { uid: live.metadata.uid } },
    });
  }
}

function whyNotRunning(valid: ValidTenant): { reason: string; message: string } {
  if (valid.spec.state !== 'Active')
    return { reason: REASON.Suspended, message: `tenant is ${valid.spec.state}: no new backups` };
  return { reason: REASON.BackupsOff, message: 'spec.backup.enabled is false' };
}

/** Starts the Job of each on-demand TenantBackup not yet taken, or says why it cannot run. */
async function startOnDemand(
  sync: ChildSyncDeps,
  deps: BackupDeps,
  tenant: TenantObject,
  cronJob: KubeObject,
  history: BackupHistory,
  schedule: Schedule,
): Promise<void> {
  for (const record of history.awaitingRun) {
    if (!schedule.running) {
      await writeRecordStatus(sync.client, record, {
        phase: 'Failed',
        completedAt: new Date().toISOString(),
        message: `not run: ${schedule.message}`,
      });
      continue;
    }
    const job = buildOnDemandJob(cronJob, record);
    try {
      await sync.client.create(collectionPath(RESOURCES.Job, deps.job.namespace), job);
    } catch (err: unknown) {
      // Made by an earlier reconcile that stopped before recording it.
      if (!isConflict(err)) throw err;
    }
    failpoint('after-on-demand-job');
    const updated = await writeRecordStatus(sync.client, record, {
      phase: 'Pending',
      message: `Job ${deps.job.namespace}/${onDemandJobName(record.metadata.name)} started`,
    });
    deps.records.upsert(updated);
    await deps.events.record(
      tenant,
      'Normal',
      'BackupRequested',
      `on-demand backup ${record.metadata.name}: Job ${onDemandJobName(record.metadata.name)} started`,
    );
  }
}

export async function reconcileBackup(
  deps: BackupDeps,
  sync: ChildSyncDeps,
  tenant: TenantObject,
  valid: ValidTenant,
  databaseReady: boolean,
  planned: boolean,
  now: Date,
): Promise<BackupOutcome | undefined> {
  const history = backupHistory(deps.records.byIndex(valid.name), {
    name: valid.name,
    creationTimestamp: tenant.metadata.creationTimestamp,
  });
  if (!valid.spec.database.enabled) {
    await removeJobObjects(sync, deps, valid);
    for (const record of history.awaitingRun)
      await writeRecordStatus(sync.client, record, {
        phase: 'Failed',
        completedAt: now.toISOString(),
        message: 'not run: the tenant has no database',
      });
    return backupOutcome({
      valid,
      history,
      schedule: {
        running: false,
        reason: REASON.NoDatabase,
        message: 'spec.database.enabled is false: nothing to back up',
      },
    });
  }
  // Keys, roles and the job need the database's credentials in Vault: until
  // the database is ready the backup status stays as it was.
  if (!databaseReady) return undefined;

  const keys = await ensureTenantBackupKeys(
    deps.vault,
    valid,
    // Keys ensured at the last reconcile: whatever it said after them.
    settledReads(deps, tenant, CONDITION.BackupScheduled, [
      REASON.NoBackupStore,
      REASON.Suspended,
      REASON.BackupsOff,
    ]),
  );
  if (keys.written.length > 0)
    deps.log.info({ tenant: valid.name, written: keys.written }, 'backup keys and roles written');
  const keyName = transitKeyName(valid.name);
  const rotation = await rotateIfDue(
    deps.vault.transit,
    keyName,
    durationToMs(valid.spec.backup.keyRotationInterval),
    now,
    keys.key,
  );

  // Made once the database is ready, so often after the tenant's generation
  // was first observed: their creation is still the plan, not drift.
  const expected = planned || tenant.status?.backup?.cronJob === undefined;
  await syncJobObject(
    sync,
    deps.serviceAccounts,
    buildBackupServiceAccount(valid, deps.job),
    expected,
  );
  // On-demand Jobs are made from the CronJob as we keep it: the cache holds
  // only its digest, and the live one says the same once synced.
  const cronJob = buildBackupCronJob(valid, deps.job);
  await syncJobObject(sync, deps.cronJobs, cronJob, expected);

  const store = deps.stores.choose(valid.spec.region);
  const active = backupsActive(valid);
  const expanded = backupSchedule(valid);
  let schedule: Schedule;
  if ('problem' in store) {
    schedule = {
      running: false,
      reason: REASON.NoBackupStore,
      message: store.problem,
      schedule: expanded,
    };
  } else if (!active) {
    schedule = { running: false, ...whyNotRunning(valid), store: store.name, schedule: expanded };
  } else {
    schedule = {
      running: true,
      store: store.name,
      schedule: expanded,
      nextRun: nextRun(expanded, now),
    };
  }

  await startOnDemand(sync, deps, tenant, cronJob, history, schedule);

  // The newest good backup is kept while the tenant exists (Suspended
  // included: losing it then is a restore that can never happen); a Closed
  // tenant's backups all stay until its purge erases every one of them.
  const tenantRef = { name: valid.name, uid: valid.uid, active: true };
  const retentionMs = durationToMs(valid.spec.backup.retention);
  let records = history.records;
  const closed = valid.spec.state === 'Closed';
  if (!closed && dueForExpiry(records, tenantRef, retentionMs, now).length > 0) {
    const expired = await expireBackups(
      { kube: sync.client, stores: deps.stores, transit: deps.vault.transit },
      tenantRef,
      records,
      retentionMs,
      now,
    );
    const gone = new Set(expired.removed);
    records = records.filter((r) => !gone.has(r.status?.backupId ?? ''));
    deps.log.info({ tenant: valid.name, removed: expired.removed }, 'expired backups removed');
    await deps.events.record(
      tenant,
      'Normal',
      REASON.BackupsExpired,
      `${expired.removed.length} backup(s) older than ${valid.spec.backup.retention} removed: ${expired.removed.join(', ')}` +
        (expired.minDecryptionVersion === undefined
          ? ''
          : `; key versions below ${expired.minDecryptionVersion} no longer decrypt`),
    );
  }
  const current =
    records === history.records
      ? history
      : backupHistory(records, {
          name: valid.name,
          creationTimestamp: tenant.metadata.creationTimestamp,
        });

  const verification = scheduleVerification(deps, tenant, valid, current, now);
  const outcome = backupOutcome({
    valid,
    history: current,
    schedule,
    cronJob: cronJob.metadata.name,
    keyVersion: rotation.version,
    keyRotatedAt: rotation.rotatedAt,
    ...(verification.next ? { nextVerification: verification.next } : {}),
  });
  return {
    ...outcome,
    ...(verification.requeueAfterMs === undefined
      ? {}
      : { requeueAfterMs: verification.requeueAfterMs }),
  };
}

/**
 * Hands the latest good backup to the verifier when the verify schedule says
 * it is time: the first scheduled time after the last verification (or,
 * before any, after the tenant was created).
 */
function scheduleVerification(
  deps: BackupDeps,
  tenant: TenantObject,
  valid: ValidTenant,
  history: BackupHistory,
  now: Date,
): { next?: Date; requeueAfterMs?: number } {
  const latest = history.latestSucceeded;
  if (!latest) return {};
  const expanded = expandSchedule(valid.spec.backup.verifySchedule, valid.name, 'verify');
  const since =
    history.latestVerification?.condition.lastTransitionTime ??
    tenant.metadata.creationTimestamp ??
    now.toISOString();
  const due = nextRun(expanded, new Date(since));
  if (due > now) {
    return {
      next: due,
      requeueAfterMs: Math.min(due.getTime() - now.getTime(), MAX_VERIFY_REQUEUE_MS),
    };
  }
  const serverName = tenant.status?.database?.server;
  const server = serverName ? deps.servers.get(serverName) : undefined;
  if (server && !deps.verifier.busy(valid.name))
    deps.verifier.request({ tenant: valid.name, tenantUid: valid.uid, server, record: latest });
  return { next: due };
}
