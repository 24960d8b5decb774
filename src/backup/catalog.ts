import { BACKUP_ID_PATTERN, DATA_OBJECT, MANIFEST_OBJECT, tenantPrefix } from './layout.ts';
import type { BackupObjectStore } from './store.ts';

// What a store holds for one tenant, grouped by backup. A backup exists only
// with its manifest; objects under an id without one are an unfinished
// backup (a crash, a failed dump) and are removed by retention once no run
// could still be writing them.

export interface StoredBackup {
  backupId: string;
  complete: boolean;
  /** Every object key under this backup's prefix. */
  keys: string[];
  /** Newest modification of any of its objects. */
  lastModified: Date;
  bytes: number;
}

export async function listTenantBackups(
  store: BackupObjectStore,
  tenant: string,
  tenantUid: string,
): Promise<StoredBackup[]> {
  const prefix = tenantPrefix(tenant, tenantUid);
  const byId = new Map<string, StoredBackup>();
  for await (const object of store.list(prefix)) {
    const [backupId, name, ...rest] = object.key.slice(prefix.length).split('/');
    // Anything that is not ours (an unknown id or name) is left alone.
    if (!backupId || !BACKUP_ID_PATTERN.test(backupId) || rest.length > 0) continue;
    if (name !== DATA_OBJECT && name !== MANIFEST_OBJECT) continue;
    const entry = byId.get(backupId) ?? {
      backupId,
      complete: false,
      keys: [],
      lastModified: object.lastModified,
      bytes: 0,
    };
    entry.keys.push(object.key);
    entry.bytes += object.size;
    if (name === MANIFEST_OBJECT) entry.complete = true;
    if (object.lastModified > entry.lastModified) entry.lastModified = object.lastModified;
    byId.set(backupId, entry);
  }
  return [...byId.values()].sort((a, b) => a.backupId.localeCompare(b.backupId));
}

/** The time a backup id was made (ids start with their UTC timestamp). */
export function backupIdTime(backupId: string): Date {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z/.exec(backupId);
  if (!m) throw new Error(`not a backup id: ${backupId}`);
  return new Date(`${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z`);
}
