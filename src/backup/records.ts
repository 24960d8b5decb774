import type { Condition } from '../api/common.ts';
import { API_VERSION, managedLabels } from '../api/constants.ts';
import type { KubeClient } from '../k8s/client.ts';
import { collectionPath, objectPath, RESOURCES } from '../k8s/resources.ts';
import type { KubeObject } from '../k8s/types.ts';
import type { BackupManifest } from './manifest.ts';

// TenantBackup objects: the Kubernetes record of each backup. A scheduled
// run creates its own; an on-demand one (applied by a person) is picked up
// by the run the operator starts for it. Status is written with the
// resourceVersion it was read at, so two runs can never both own one record.

export type BackupPhase = 'Pending' | 'Running' | 'Succeeded' | 'Failed';

export interface TenantBackupStatus {
  phase?: BackupPhase;
  backupId?: string;
  store?: string;
  location?: string;
  startedAt?: string;
  completedAt?: string;
  bytes?: number;
  sha256?: string;
  keyVersion?: number;
  pgDumpVersion?: string;
  message?: string;
  /** Set by verification (history.ts VERIFIED_CONDITION). */
  conditions?: Condition[];
}

export interface TenantBackupObject extends KubeObject {
  spec: { tenant: string; store?: string; reason?: 'Scheduled' | 'OnDemand' };
  status?: TenantBackupStatus;
}

/** `acme-20261123t020304z-a1b2c3`: unique per backup, and a valid object name. */
export function recordName(tenant: string, backupId: string): string {
  return `${tenant}-${backupId.toLowerCase()}`;
}

export async function createScheduledRecord(
  kube: KubeClient,
  tenant: string,
  backupId: string,
  store: string,
): Promise<TenantBackupObject> {
  const record: TenantBackupObject = {
    apiVersion: API_VERSION,
    kind: 'TenantBackup',
    metadata: {
      name: recordName(tenant, backupId),
      labels: managedLabels(tenant),
    },
    spec: { tenant, store, reason: 'Scheduled' },
  };
  return kube.create(collectionPath(RESOURCES.TenantBackup), record);
}

export async function readRecord(
  kube: KubeClient,
  name: string,
): Promise<TenantBackupObject | undefined> {
  return kube.get<TenantBackupObject>(objectPath(RESOURCES.TenantBackup, name));
}

export async function writeRecordStatus(
  kube: KubeClient,
  record: TenantBackupObject,
  status: TenantBackupStatus,
): Promise<TenantBackupObject> {
  return kube.mergePatch<TenantBackupObject>(
    `${objectPath(RESOURCES.TenantBackup, record.metadata.name)}/status`,
    { metadata: { resourceVersion: record.metadata.resourceVersion }, status },
  );
}

export function succeededStatus(
  manifest: BackupManifest,
  store: string,
  location: string,
): TenantBackupStatus {
  return {
    phase: 'Succeeded',
    backupId: manifest.backupId,
    store,
    location,
    completedAt: new Date().toISOString(),
    bytes: manifest.data.bytes,
    sha256: manifest.data.sha256,
    keyVersion: manifest.encryption.keyVersion,
    pgDumpVersion: manifest.pgDumpVersion,
    message: `${manifest.tables.length} tables, ${manifest.data.plaintextBytes} bytes dumped`,
  };
}
