import { isoSeconds } from '../iso-time.ts';
import type { TenantStatus } from '../api/tenant.ts';
import { backupIdTime } from '../backup/catalog.ts';
import { BACKUP_ID_PATTERN } from '../backup/layout.ts';
import type { BackupHistory } from '../backup/history.ts';
import { CONDITION, REASON, type ConditionInput } from '../controller/conditions.ts';
import type { TenantBackupFacts } from '../metrics/registry.ts';
import type { TenantObject, ValidTenant } from './model.ts';

// What a tenant's status says about its backups, from its records and what
// the backup step found. Pure: every rule is tested without a cluster.

export type BackupStatusFields = Pick<TenantStatus, 'lastBackup' | 'lastVerifiedBackup' | 'backup'>;

export interface BackupOutcome {
  conditions: ConditionInput[];
  fields: BackupStatusFields;
  requeueAfterMs?: number;
}

/** The three backup conditions, so status keeps them when the step does not run. */
export const BACKUP_CONDITIONS: readonly string[] = [
  CONDITION.BackupScheduled,
  CONDITION.LastBackupSucceeded,
  CONDITION.BackupVerified,
];

export type Schedule =
  | { running: true; store: string; schedule: string; nextRun: Date }
  | { running: false; reason: string; message: string; store?: string; schedule?: string };

export interface BackupFacts {
  valid: ValidTenant;
  history: BackupHistory;
  schedule: Schedule;
  cronJob?: string;
  keyVersion?: number;
  keyRotatedAt?: Date;
  nextVerification?: Date;
}

function seconds(from: string | undefined, to: string | undefined): number | undefined {
  if (!from || !to) return undefined;
  const ms = Date.parse(to) - Date.parse(from);
  return Number.isFinite(ms) && ms >= 0 ? Math.round(ms / 100) / 10 : undefined;
}

function scheduledCondition(schedule: Schedule): ConditionInput {
  return schedule.running
    ? {
        type: CONDITION.BackupScheduled,
        status: 'True',
        reason: REASON.BackupScheduled,
        message: `backups run at "${schedule.schedule}" (UTC) into BackupStore ${schedule.store}`,
      }
    : {
        type: CONDITION.BackupScheduled,
        status: 'False',
        reason: schedule.reason,
        message: schedule.message,
      };
}

function lastBackupCondition(history: BackupHistory): ConditionInput {
  const last = history.latestFinished;
  if (!last)
    return {
      type: CONDITION.LastBackupSucceeded,
      status: 'Unknown',
      reason: REASON.NoBackupYet,
      message: 'no backup has finished yet',
    };
  const status = last.status ?? {};
  if (status.phase === 'Succeeded')
    return {
      type: CONDITION.LastBackupSucceeded,
      status: 'True',
      reason: REASON.BackupSucceeded,
      message: `backup ${status.backupId ?? ''} (${status.bytes ?? 0} bytes) stored in ${status.store ?? ''}`,
    };
  return {
    type: CONDITION.LastBackupSucceeded,
    status: 'False',
    reason: REASON.BackupFailed,
    // The record's name makes each failure's message its own (one Warning each).
    message: `TenantBackup ${last.metadata.name} failed: ${status.message ?? 'no reason given'}`,
  };
}

function verifiedCondition(history: BackupHistory): ConditionInput {
  const latest = history.latestVerification;
  if (!latest)
    return {
      type: CONDITION.BackupVerified,
      status: 'Unknown',
      reason: REASON.NotYetVerified,
      message: 'no backup has been restored and checked yet',
    };
  const id = latest.record.status?.backupId ?? latest.record.metadata.name;
  return latest.condition.status === 'True'
    ? {
        type: CONDITION.BackupVerified,
        status: 'True',
        reason: REASON.Verified,
        message: `backup ${id} ${latest.condition.message}`,
      }
    : {
        type: CONDITION.BackupVerified,
        status: 'False',
        reason: REASON.VerificationFailed,
        message: `backup ${id} at ${latest.condition.lastTransitionTime}: ${latest.condition.message}`,
      };
}

export function backupOutcome(facts: BackupFacts): Omit<BackupOutcome, 'requeueAfterMs'> {
  const { history, schedule } = facts;
  const succeeded = history.latestSucceeded?.status;
  const verified = history.latestVerified;
  const fields: BackupStatusFields = {};
  if (succeeded?.backupId) {
    const duration = seconds(succeeded.startedAt, succeeded.completedAt);
    fields.lastBackup = {
      id: succeeded.backupId,
      // The id's time is when the run began, just before its snapshot: the point the data is from.
      time: BACKUP_ID_PATTERN.test(succeeded.backupId)
        ? isoSeconds(backupIdTime(succeeded.backupId))
        : (succeeded.completedAt ?? ''),
      ...(succeeded.bytes === undefined ? {} : { bytes: succeeded.bytes }),
      ...(succeeded.sha256 === undefined ? {} : { sha256: succeeded.sha256 }),
      ...(succeeded.keyVersion === undefined ? {} : { keyVersion: succeeded.keyVersion }),
      ...(succeeded.store === undefined ? {} : { store: succeeded.store }),
      ...(duration === undefined ? {} : { durationSeconds: duration }),
    };
  }
  if (verified)
    fields.lastVerifiedBackup = {
      id: verified.record.status?.backupId ?? verified.record.metadata.name,
      time: verified.condition.lastTransitionTime,
    };
  const { store, schedule: expanded } = schedule;
  fields.backup = {
    ...(facts.cronJob ? { cronJob: facts.cronJob } : {}),
    ...(expanded ? { schedule: expanded } : {}),
    ...(schedule.running ? { nextRun: isoSeconds(schedule.nextRun) } : {}),
    ...(facts.keyVersion === undefined ? {} : { transitKeyVersion: facts.keyVersion }),
    ...(facts.keyRotatedAt ? { keyRotatedAt: isoSeconds(facts.keyRotatedAt) } : {}),
    ...(store ? { store } : {}),
    failuresSinceSuccess: history.failuresSinceSuccess,
    ...(facts.nextVerification ? { nextVerification: isoSeconds(facts.nextVerification) } : {}),
  };
  return {
    conditions: [
      scheduledCondition(schedule),
      lastBackupCondition(history),
      verifiedCondition(history),
    ],
    fields,
  };
}

/** The metrics' view of a tenant's backups (undefined: it has none to report). */
export function backupFactsOf(tenant: TenantObject): TenantBackupFacts | undefined {
  const status = tenant.status;
  if (!status?.backup && !status?.lastBackup) return undefined;
  const verifiedCondition = status.conditions?.find((c) => c.type === CONDITION.BackupVerified);
  const seconds = (time: string | undefined) =>
    time === undefined ? undefined : Date.parse(time) / 1000;
  return {
    tenant: tenant.metadata.name,
    lastSuccess: seconds(status.lastBackup?.time),
    lastBytes: status.lastBackup?.bytes,
    lastDurationSeconds: status.lastBackup?.durationSeconds,
    failuresSinceSuccess: status.backup?.failuresSinceSuccess,
    lastVerified: seconds(status.lastVerifiedBackup?.time),
    verified:
      verifiedCondition?.status === 'True'
        ? 1
        : verifiedCondition?.status === 'False'
          ? 0
          : undefined,
  };
}
