import { isNotFound } from '../errors.ts';
import { failpoint } from '../failpoints.ts';
import type { KubeClient } from '../k8s/client.ts';
import { objectPath, RESOURCES } from '../k8s/resources.ts';
import type { Transit } from '../vault/transit.ts';
import type { StoredBackup } from './catalog.ts';
import { BACKUP_ID_PATTERN, dataKey, manifestKey } from './layout.ts';
import type { TenantBackupObject } from './records.ts';
import { planRetention } from './retention.ts';
import type { StoreAccess } from './store-access.ts';
import { raiseMinDecryptionVersion, transitKeyName } from './vault-access.ts';

// Retention, applied by the operator from the tenant's TenantBackup records
// (no listing of the store: the records say what exists and where). For
// each backup past spec.backup.retention: its manifest goes first (from
// that moment the backup no longer exists, see catalog.ts), then its data,
// then its record. A crash in between leaves a record whose objects are
// partly gone; the next pass deletes again (missing keys count as deleted).
// Then the Transit key's min_decryption_version rises to the oldest version
// a kept backup needs, so copies of expired backups stay unreadable.

/** A failed run's leftovers are removed once no run could still be writing them (the Job deadline). */
export const FAILED_RUN_GRACE_MS = 6 * 3600_000;

export interface ExpiryTenant {
  name: string;
  uid: string;
  /** While active, the newest good backup is kept whatever its age. */
  active: boolean;
}

export interface ExpiryDeps {
  kube: KubeClient;
  stores: StoreAccess;
  transit: Transit;
}

export interface ExpiryResult {
  removed: string[];
  /** The key version below which nothing decrypts any more, when it was checked. */
  minDecryptionVersion?: number;
}

interface Candidate extends StoredBackup {
  record: TenantBackupObject;
}

function candidates(records: TenantBackupObject[], tenant: ExpiryTenant): Candidate[] {
  return records.flatMap((record) => {
    const status = record.status;
    const id = status?.backupId;
    // Only ids of ours name objects: anything else is never a key to delete.
    if (!id || !BACKUP_ID_PATTERN.test(id)) return [];
    if (status.phase !== 'Succeeded' && status.phase !== 'Failed') return [];
    return [
      {
        record,
        backupId: id,
        complete: status.phase === 'Succeeded',
        keys: [manifestKey(tenant.name, tenant.uid, id), dataKey(tenant.name, tenant.uid, id)],
        lastModified: new Date(status.completedAt ?? record.metadata.creationTimestamp ?? 0),
        bytes: status.bytes ?? 0,
      },
    ];
  });
}

/** What retention would remove now; nothing to do costs nothing. */
export function dueForExpiry(
  records: TenantBackupObject[],
  tenant: ExpiryTenant,
  retentionMs: number,
  now: Date,
): Candidate[] {
  const plan = planRetention(candidates(records, tenant), {
    retentionMs,
    unfinishedGraceMs: Math.max(retentionMs, FAILED_RUN_GRACE_MS),
    tenantActive: tenant.active,
    now,
  });
  return [...plan.expired, ...plan.unfinished] as Candidate[];
}

export async function expireBackups(
  deps: ExpiryDeps,
  tenant: ExpiryTenant,
  records: TenantBackupObject[],
  retentionMs: number,
  now: Date,
): Promise<ExpiryResult> {
  const due = dueForExpiry(records, tenant, retentionMs, now);
  const removed: string[] = [];
  for (const backup of due) {
    const storeName = backup.record.status?.store;
    if (storeName) {
      const store = await deps.stores.get(storeName);
      // Manifest first, on its own: from then on the backup does not exist.
      const [manifest, ...rest] = backup.keys;
      if (manifest) await store.delete([manifest]);
      failpoint('after-expiry-manifest');
      await store.delete(rest);
    }
    await deps.kube
      .request('DELETE', objectPath(RESOURCES.TenantBackup, backup.record.metadata.name), {
        body: { preconditions: { uid: backup.record.metadata.uid } },
      })
      .catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
    removed.push(backup.backupId);
  }
  if (removed.length === 0) return { removed };
  const gone = new Set(removed);
  const keptVersions = records
    .filter((r) => r.status?.phase === 'Succeeded' && !gone.has(r.status.backupId ?? ''))
    .map((r) => r.status?.keyVersion)
    .filter((v): v is number => typeof v === 'number');
  if (keptVersions.length === 0) return { removed };
  const minDecryptionVersion = await raiseMinDecryptionVersion(
    deps.transit,
    transitKeyName(tenant.name),
    Math.min(...keptVersions),
  );
  return { removed, minDecryptionVersion };
}
