import type { Condition } from '../api/common.ts';
import { backupIdTime } from './catalog.ts';
import { BACKUP_ID_PATTERN } from './layout.ts';
import type { TenantBackupObject } from './records.ts';

// A tenant's backups as its TenantBackup records tell them: the latest good
// one, the failures since, the on-demand requests no run has picked up, and
// what verification last found. Pure: the reconciler reads the records from
// its cache and derives status, conditions and what to do next from this.

/** The condition a verification writes on the record of the backup it checked. */
export const VERIFIED_CONDITION = 'Verified';

export interface VerificationOutcome {
  record: TenantBackupObject;
  condition: Condition;
}

export interface BackupHistory {
  /** This tenant's records, oldest first. */
  records: TenantBackupObject[];
  latestSucceeded: TenantBackupObject | undefined;
  /** The newest run that ended, well or badly. */
  latestFinished: TenantBackupObject | undefined;
  /** Runs that failed after the latest success (all of them when none succeeded). */
  failuresSinceSuccess: number;
  /** On-demand records that no run has taken yet (no phase). */
  awaitingRun: TenantBackupObject[];
  /** The newest verification, by when it ran. */
  latestVerification: VerificationOutcome | undefined;
  /** The newest verification that passed. */
  latestVerified: VerificationOutcome | undefined;
}

export interface HistoryTenant {
  name: string;
  /** Records made before the Tenant (of an earlier Tenant of the same name) are not its. */
  creationTimestamp: string | undefined;
}

/**
 * Records sort by time: a backup id's own (when its run began), else the
 * record's creation (a run that failed before it had an id). Both as ISO
 * text, so the two kinds compare; the name breaks ties.
 */
function sortKey(record: TenantBackupObject): string {
  const id = record.status?.backupId;
  // An id that is not one (a record written by hand) sorts by creation, never throws.
  const time =
    id && BACKUP_ID_PATTERN.test(id)
      ? backupIdTime(id).toISOString()
      : (record.metadata.creationTimestamp ?? '');
  return `${time.replace(/\.\d+Z$/, 'Z')} ${record.metadata.name}`;
}

function verificationOf(record: TenantBackupObject): Condition | undefined {
  return record.status?.conditions?.find((c) => c.type === VERIFIED_CONDITION);
}

export function tenantRecords(
  records: Iterable<TenantBackupObject>,
  tenant: HistoryTenant,
): TenantBackupObject[] {
  const since = tenant.creationTimestamp ? Date.parse(tenant.creationTimestamp) : 0;
  return [...records]
    .filter(
      (r) =>
        r.spec?.tenant === tenant.name &&
        Date.parse(r.metadata.creationTimestamp ?? '') >= since &&
        !r.metadata.deletionTimestamp,
    )
    .sort((a, b) => sortKey(a).localeCompare(sortKey(b)));
}

export function backupHistory(
  records: Iterable<TenantBackupObject>,
  tenant: HistoryTenant,
): BackupHistory {
  const mine = tenantRecords(records, tenant);
  const finished = mine.filter(
    (r) => r.status?.phase === 'Succeeded' || r.status?.phase === 'Failed',
  );
  const succeeded = finished.filter((r) => r.status?.phase === 'Succeeded');
  const latestSucceeded = succeeded.at(-1);
  const failuresSinceSuccess = finished.filter(
    (r) =>
      r.status?.phase === 'Failed' &&
      (latestSucceeded === undefined || sortKey(r) > sortKey(latestSucceeded)),
  ).length;
  const verifications = mine
    .flatMap((record) => {
      const condition = verificationOf(record);
      return condition ? [{ record, condition }] : [];
    })
    .sort((a, b) => a.condition.lastTransitionTime.localeCompare(b.condition.lastTransitionTime));
  return {
    records: mine,
    latestSucceeded,
    latestFinished: finished.at(-1),
    failuresSinceSuccess,
    awaitingRun: mine.filter((r) => r.status?.phase === undefined),
    latestVerification: verifications.at(-1),
    latestVerified: verifications.filter((v) => v.condition.status === 'True').at(-1),
  };
}
