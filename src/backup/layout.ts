import { randomBytes } from 'node:crypto';

// Where a backup's objects live inside a store. Everything of a tenant is
// under tenants/<name>/<uid>/: the uid keeps a re-created Tenant of the same
// name away from the backups of the one before it (they are neither listed
// nor, once its Transit key is gone, decryptable).

export const DATA_OBJECT = 'data';
export const MANIFEST_OBJECT = 'manifest.json';

/** A backup id sorts by time: 20261123T020304Z-a1b2c3. */
export function newBackupId(at: Date = new Date()): string {
  const stamp = at
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
  return `${stamp}-${randomBytes(3).toString('hex')}`;
}

export const BACKUP_ID_PATTERN = /^\d{8}T\d{6}Z-[0-9a-f]{6}$/;

export function tenantPrefix(tenant: string, uid: string): string {
  return `tenants/${tenant}/${uid}/`;
}

export function backupPrefix(tenant: string, uid: string, backupId: string): string {
  return `${tenantPrefix(tenant, uid)}${backupId}/`;
}

export function dataKey(tenant: string, uid: string, backupId: string): string {
  return `${backupPrefix(tenant, uid, backupId)}${DATA_OBJECT}`;
}

export function manifestKey(tenant: string, uid: string, backupId: string): string {
  return `${backupPrefix(tenant, uid, backupId)}${MANIFEST_OBJECT}`;
}
