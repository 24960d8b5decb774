import { LABEL_TENANT } from '../api/constants.ts';
import { toOperatorError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { collectionPath, objectPath, RESOURCES } from '../k8s/resources.ts';
import type { KubeList } from '../k8s/types.ts';
import { backupIdTime, listTenantBackups, type StoredBackup } from './catalog.ts';
import { tenantPrefix } from './layout.ts';
import { writeRecordStatus, type TenantBackupObject } from './records.ts';
import type { AbandonedWrite, BackupObjectStore } from './store.ts';

// What interrupted runs of one tenant's backups left behind, cleaned at the
// start of the next run: a backup without a manifest does not exist, so its
// objects go; writes never finished (S3 multipart uploads, temporary files)
// are aborted; and a TenantBackup record a killed run left `Running` is
// marked Failed, so that nobody waits on it.
//
// Only what is older than a grace period is touched: an on-demand run of the
// same tenant may be under way right now (the CronJob's Forbid policy does
// not cover a Job the operator starts for a TenantBackup), and its young
// objects and record look exactly like a crash's.
//
// Each step is idempotent and independent: a failure of one is reported and
// the others still run; whatever is left, the next run tries again.

/**
 * A backup Job is killed at its activeDeadlineSeconds (6 h, src/backup/cronjob.ts),
 * counted from the Job's start, which is before its backup id's time; so past
 * 6 h no run of it can still be writing. One hour more covers clocks of
 * different nodes that disagree.
 */
export const DEFAULT_LEFTOVER_GRACE_MS = 7 * 3600_000;

export const INTERRUPTED_MESSAGE_PREFIX = 'interrupted:';

export interface LeftoverScope {
  store: BackupObjectStore;
  /** The BackupStore's name, as records carry it in status.store. */
  storeName: string;
  tenant: string;
  tenantUid: string;
  graceMs: number;
  now: Date;
  /** A record this very run goes on to use (an on-demand TenantBackup): never marked. */
  exceptRecord?: string;
}

export interface LeftoverReport {
  /** Backups without a manifest whose objects were deleted. */
  removedBackups: { backupId: string; keys: string[] }[];
  /** Multipart uploads aborted, temporary files removed. */
  abandonedWrites: AbandonedWrite[];
  /** TenantBackup records of interrupted runs, now Failed. */
  failedRecords: { name: string; backupId: string }[];
  /** What could not be cleaned (messages carry no credentials); the next run tries again. */
  problems: string[];
}

/** An unfinished backup nobody can still be writing: old by its id, and idle as long. */
export function isAbandonedBackup(backup: StoredBackup, now: Date, graceMs: number): boolean {
  if (backup.complete) return false;
  const age = now.getTime() - backupIdTime(backup.backupId).getTime();
  const idle = now.getTime() - backup.lastModified.getTime();
  return age > graceMs && idle > graceMs;
}

/**
 * Records a killed run left Running: for this tenant and this store (another
 * store's manifests are not in this listing), for a backup that has no
 * manifest, and started longer ago than the grace period.
 */
export function interruptedRecords(
  records: readonly TenantBackupObject[],
  scope: Pick<LeftoverScope, 'tenant' | 'storeName' | 'now' | 'graceMs' | 'exceptRecord'>,
  completeBackupIds: ReadonlySet<string>,
): { record: TenantBackupObject; backupId: string }[] {
  return records.flatMap((record) => {
    const status = record.status;
    if (record.spec.tenant !== scope.tenant || record.metadata.name === scope.exceptRecord)
      return [];
    if (status?.phase !== 'Running' || status.backupId === undefined) return [];
    if (status.store !== scope.storeName || completeBackupIds.has(status.backupId)) return [];
    const started = startedAt(status.startedAt, status.backupId);
    if (started === undefined || scope.now.getTime() - started.getTime() <= scope.graceMs)
      return [];
    return [{ record, backupId: status.backupId }];
  });
}

/** When the run began; undefined when neither field can be read (such a record is left alone). */
function startedAt(startedAtField: string | undefined, backupId: string): Date | undefined {
  const fromField = startedAtField === undefined ? Number.NaN : Date.parse(startedAtField);
  if (!Number.isNaN(fromField)) return new Date(fromField);
  try {
    return backupIdTime(backupId);
  } catch {
    return undefined;
  }
}

export function interruptedMessage(backupId: string): string {
  return `${INTERRUPTED_MESSAGE_PREFIX} the run stopped (killed, crashed or past its deadline) before backup ${backupId} was complete; no manifest was written`;
}

async function tenantRecords(kube: KubeClient, tenant: string): Promise<TenantBackupObject[]> {
  const list = await kube.request<KubeList<TenantBackupObject>>(
    'GET',
    collectionPath(RESOURCES.TenantBackup),
    { query: { labelSelector: `${LABEL_TENANT}=${tenant}` } },
  );
  return list.items;
}

function problem(step: string, err: unknown): string {
  return `${step}: ${toOperatorError(err).message}`;
}

export async function cleanLeftovers(
  kube: KubeClient,
  scope: LeftoverScope,
): Promise<LeftoverReport> {
  const report: LeftoverReport = {
    removedBackups: [],
    abandonedWrites: [],
    failedRecords: [],
    problems: [],
  };
  const { store, tenant, tenantUid, now, graceMs } = scope;
  const prefix = tenantPrefix(tenant, tenantUid);

  // 1. Writes never finished. Before the listing: an aborted upload cannot turn into an object.
  if (store.removeAbandonedWrites) {
    try {
      report.abandonedWrites = await store.removeAbandonedWrites(
        prefix,
        new Date(now.getTime() - graceMs),
      );
    } catch (err: unknown) {
      report.problems.push(problem('removing unfinished writes', err));
    }
  }

  // 2. Backups without a manifest.
  let backups: StoredBackup[];
  try {
    backups = await listTenantBackups(store, tenant, tenantUid);
  } catch (err: unknown) {
    // Without the listing, no manifest can be told apart from a missing one: records stay too.
    report.problems.push(problem('listing the backups of the tenant', err));
    return report;
  }
  for (const backup of backups.filter((b) => isAbandonedBackup(b, now, graceMs))) {
    try {
      await store.delete(backup.keys);
      report.removedBackups.push({ backupId: backup.backupId, keys: backup.keys });
    } catch (err: unknown) {
      report.problems.push(problem(`deleting unfinished backup ${backup.backupId}`, err));
    }
  }

  // 3. Records their runs left Running.
  const complete = new Set(backups.filter((b) => b.complete).map((b) => b.backupId));
  let records: TenantBackupObject[];
  try {
    records = await tenantRecords(kube, tenant);
  } catch (err: unknown) {
    report.problems.push(problem('listing the TenantBackups of the tenant', err));
    return report;
  }
  for (const { record, backupId } of interruptedRecords(records, scope, complete)) {
    try {
      // With the resourceVersion read: a run that is alive after all and writes first wins.
      await writeRecordStatus(kube, record, {
        phase: 'Failed',
        completedAt: now.toISOString(),
        message: interruptedMessage(backupId),
      });
      report.failedRecords.push({ name: record.metadata.name, backupId });
    } catch (err: unknown) {
      report.problems.push(problem(`marking TenantBackup ${record.metadata.name} Failed`, err));
    }
  }
  return report;
}

/** True when there was anything to clean or anything went wrong. */
export function hasLeftovers(report: LeftoverReport): boolean {
  return (
    report.removedBackups.length +
      report.abandonedWrites.length +
      report.failedRecords.length +
      report.problems.length >
    0
  );
}

/**
 * Cleanup finds records by the tenant label; scheduled records are made with
 * it, but a TenantBackup a person applied may lack it. Added before the run
 * marks it Running, so that if this run is killed the next one finds it.
 */
export async function ensureTenantLabel(
  kube: KubeClient,
  record: TenantBackupObject,
): Promise<TenantBackupObject> {
  if (record.metadata.labels?.[LABEL_TENANT] === record.spec.tenant) return record;
  return kube.mergePatch<TenantBackupObject>(
    objectPath(RESOURCES.TenantBackup, record.metadata.name),
    {
      metadata: {
        resourceVersion: record.metadata.resourceVersion,
        labels: { [LABEL_TENANT]: record.spec.tenant },
      },
    },
  );
}
