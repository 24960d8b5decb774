import { ERROR_CODES, OperatorError } from '../errors.ts';
import type { ServerConnection } from '../postgres/connection.ts';
import type { TableCount } from './manifest.ts';
import type { PgTarget } from './pg-tools.ts';
import { restoreBackup, type OpenedBackup } from './restore.ts';
import { createScratch, dropLeftoverScratch, dropScratch } from './scratch-database.ts';
import { countRowsIn } from './snapshot.ts';
import type { BackupObjectStore } from './store.ts';

// Proof that a backup restores: into a scratch database on the tenant's own
// server, then every table's row count (and the number of large objects)
// compared with what was counted in the dump's own snapshot, then dropped.
// The restore runs as the tenant's login role, so a backup that only a
// superuser could restore fails here, not on the day it is needed.

export interface VerificationResult {
  backupId: string;
  tables: number;
  rows: number;
  durationMs: number;
}

export interface VerifyTarget {
  admin: ServerConnection;
  tenantUid: string;
  ownerRole: string;
  /** The tenant's login: host, port, TLS, user and password; the database is replaced. */
  login: PgTarget;
}

export function compareCounts(recorded: TableCount[], restored: TableCount[]): string[] {
  const restoredByTable = new Map(restored.map((t) => [t.table, t.rows]));
  const problems: string[] = [];
  for (const { table, rows } of recorded) {
    const got = restoredByTable.get(table);
    if (got === undefined) problems.push(`table ${table} is missing`);
    else if (got !== rows)
      problems.push(`table ${table} has ${got} rows, the backup recorded ${rows}`);
    restoredByTable.delete(table);
  }
  for (const table of restoredByTable.keys()) problems.push(`table ${table} was not in the backup`);
  return problems;
}

export async function verifyBackup(
  store: BackupObjectStore,
  opened: OpenedBackup,
  target: VerifyTarget,
): Promise<VerificationResult> {
  const started = performance.now();
  await dropLeftoverScratch(target.admin, target.tenantUid);
  const scratch = await createScratch(target.admin, target.tenantUid, target.ownerRole);
  try {
    const scratchTarget = { ...target.login, database: scratch };
    await restoreBackup(store, opened, scratchTarget, { clean: false });
    const restored = await countRowsIn(scratchTarget);
    const problems = compareCounts(opened.manifest.tables, restored);
    if (problems.length > 0)
      throw new OperatorError(
        ERROR_CODES.BACKUP_INVALID,
        `backup ${opened.manifest.backupId} restored, but differs from what was backed up: ${problems.slice(0, 5).join('; ')}${problems.length > 5 ? `; and ${problems.length - 5} more` : ''}`,
      );
    return {
      backupId: opened.manifest.backupId,
      tables: restored.length,
      rows: restored.reduce((sum, t) => sum + t.rows, 0),
      durationMs: Math.round(performance.now() - started),
    };
  } finally {
    await dropScratch(target.admin, scratch);
  }
}
