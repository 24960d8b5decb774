import { backupIdTime, type StoredBackup } from './catalog.ts';

// Which backups retention removes. Older than the retention period goes,
// except the newest complete backup while the tenant is active: a tenant
// whose backups have been failing for longer than the retention period must
// not be left with none. Unfinished backups go once no run could still be
// writing them (the backup Job's deadline has passed).

export interface RetentionPlan {
  expired: StoredBackup[];
  unfinished: StoredBackup[];
  kept: StoredBackup[];
}

export interface RetentionPolicy {
  retentionMs: number;
  /** How long an unfinished backup may be a run still under way. */
  unfinishedGraceMs: number;
  tenantActive: boolean;
  now: Date;
}

export function planRetention(backups: StoredBackup[], policy: RetentionPolicy): RetentionPlan {
  const now = policy.now.getTime();
  const complete = backups.filter((b) => b.complete);
  const newestComplete = complete.reduce<StoredBackup | undefined>(
    (newest, b) => (newest === undefined || b.backupId > newest.backupId ? b : newest),
    undefined,
  );
  const plan: RetentionPlan = { expired: [], unfinished: [], kept: [] };
  for (const backup of backups) {
    const age = now - backupIdTime(backup.backupId).getTime();
    if (!backup.complete) {
      const idle = now - backup.lastModified.getTime();
      if (age > policy.unfinishedGraceMs && idle > policy.unfinishedGraceMs)
        plan.unfinished.push(backup);
      else plan.kept.push(backup);
    } else if (age > policy.retentionMs && !(policy.tenantActive && backup === newestComplete)) {
      plan.expired.push(backup);
    } else {
      plan.kept.push(backup);
    }
  }
  return plan;
}
