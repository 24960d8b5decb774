import { createHash } from 'node:crypto';
import { BACKUP_JOB_PREFIX, managedLabels } from '../api/constants.ts';
import type { TenantSpec } from '../api/tenant.ts';
import type { KubeObject } from '../k8s/types.ts';
import { ownerReference } from '../tenant/model.ts';
import { PROJECTED_TOKEN_FILE } from '../vault/identity.ts';
import { expandSchedule } from './schedule.ts';
import { backupAuthRoleName, backupServiceAccountName } from './vault-access.ts';

// A tenant's backup CronJob and the ServiceAccount its pods run as, both in
// the operator's namespace, never the tenant's: the job reads the store's
// credentials there, and the tenant's owners cannot touch either. Pure
// builders; the reconciler applies them.
//
// Store credentials are deliberately not in the CronJob (no env
// secretKeyRef): the job reads its BackupStore and that store's Secret when
// it runs. A secretKeyRef would copy the choice of store into the CronJob
// (a store change would rewrite every tenant's CronJob), and the Secret's
// name would have to be known when the CronJob is built.

/** The part of a Tenant the builders read; a ValidTenant is one. */
export interface BackupJobTenant {
  name: string;
  uid: string;
  spec: Pick<TenantSpec, 'state'> & {
    database: Pick<TenantSpec['database'], 'enabled'>;
    backup: Pick<TenantSpec['backup'], 'enabled' | 'schedule'>;
  };
}

export interface BackupJobConfig {
  /** The operator's namespace, where the CronJob, its pods and its ServiceAccount live. */
  namespace: string;
  /** The operator's own image: the job runs its CLI. */
  image: string;
  imagePullPolicy?: 'Always' | 'IfNotPresent' | 'Never';
  vaultAddr: string;
  /** Vault's Kubernetes auth mount; unset: the CLI's default (kubernetes). */
  vaultAuthMount?: string;
  /** Audience of the projected token Vault's role requires (vault). */
  vaultAudience?: string;
  resources?: ContainerResources;
  extraEnv?: EnvVar[];
}

export interface ContainerResources {
  requests: { cpu: string; memory: string };
  limits: { cpu: string; memory: string };
}

export type EnvVar =
  | { name: string; value: string }
  | { name: string; valueFrom: { fieldRef: { apiVersion?: string; fieldPath: string } } };

export const DEFAULT_BACKUP_RESOURCES: ContainerResources = {
  requests: { cpu: '100m', memory: '256Mi' },
  limits: { cpu: '1', memory: '512Mi' },
};

/** The image's non-root user (distroless "nonroot"). */
const RUN_AS = 65_532;
const TOKEN_DIR = PROJECTED_TOKEN_FILE.slice(0, PROJECTED_TOKEN_FILE.lastIndexOf('/'));
const TOKEN_FILE = PROJECTED_TOKEN_FILE.slice(PROJECTED_TOKEN_FILE.lastIndexOf('/') + 1);

/**
 * The CronJob controller appends 11 characters to a CronJob's name for each
 * Job, and Job names must stay within 63: so 52.
 */
export const MAX_CRONJOB_NAME_LENGTH = 52;

/**
 * `backup-<tenant>`; a name longer than 52 characters keeps its first part
 * and ends in 8 hex characters of the tenant name's sha256, so that two long
 * names that share a beginning still get two CronJobs.
 */
export function backupCronJobName(tenant: string): string {
  const name = `${BACKUP_JOB_PREFIX}${tenant}`;
  if (name.length <= MAX_CRONJOB_NAME_LENGTH) return name;
  const hash = createHash('sha256').update(tenant).digest('hex').slice(0, 8);
  const kept = name.slice(0, MAX_CRONJOB_NAME_LENGTH - hash.length - 1).replace(/-+$/, '');
  return `${kept}-${hash}`;
}

/** The tenant's backup schedule as the CronJob runs it (H replaced). */
export function backupSchedule(tenant: BackupJobTenant): string {
  return expandSchedule(tenant.spec.backup.schedule, tenant.name, 'backup');
}

/** Backups run only for an active tenant that has a database and has not turned them off. */
export function backupsActive(tenant: BackupJobTenant): boolean {
  return (
    tenant.spec.backup.enabled && tenant.spec.database.enabled && tenant.spec.state === 'Active'
  );
}

/** Our labels and the Tenant as owner: a deleted Tenant takes both objects with it. */
function metadata(tenant: BackupJobTenant, name: string, namespace: string) {
  return {
    name,
    namespace,
    labels: managedLabels(tenant.name),
    ownerReferences: [ownerReference(tenant)],
  };
}

export function buildBackupServiceAccount(
  tenant: BackupJobTenant,
  config: Pick<BackupJobConfig, 'namespace'>,
): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: metadata(tenant, backupServiceAccountName(tenant.name), config.namespace),
    // Only the backup pod mounts its token (it says so itself).
    automountServiceAccountToken: false,
  };
}

function environment(tenant: BackupJobTenant, config: BackupJobConfig): EnvVar[] {
  return [
    { name: 'VAULT_ADDR', value: config.vaultAddr },
    { name: 'VAULT_AUTH_METHOD', value: 'kubernetes' },
    ...(config.vaultAuthMount === undefined
      ? []
      : [{ name: 'VAULT_AUTH_MOUNT', value: config.vaultAuthMount }]),
    { name: 'VAULT_AUTH_ROLE', value: backupAuthRoleName(tenant.name) },
    { name: 'VAULT_K8S_TOKEN_FILE', value: PROJECTED_TOKEN_FILE },
    {
      name: 'POD_NAMESPACE',
      valueFrom: { fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' } },
    },
    ...(config.extraEnv ?? []),
  ];
}

/**
 * Kubernetes' own default: Always for an image without a tag or tagged
 * latest, else IfNotPresent. Written out, like every default below, so that
 * the CronJob we build is exactly the one the API server keeps and a
 * restarted operator finds nothing to write.
 */
function defaultPullPolicy(image: string): 'Always' | 'IfNotPresent' {
  if (image.includes('@')) return 'IfNotPresent';
  const lastPart = image.slice(image.lastIndexOf('/') + 1);
  const tag = lastPart.includes(':') ? lastPart.slice(lastPart.indexOf(':') + 1) : 'latest';
  return tag === 'latest' ? 'Always' : 'IfNotPresent';
}

function podSpec(tenant: BackupJobTenant, config: BackupJobConfig) {
  return {
    serviceAccountName: backupServiceAccountName(tenant.name),
    // The job reads its Tenant and BackupStore and writes its TenantBackup.
    automountServiceAccountToken: true,
    // The deprecated alias the API server fills in from serviceAccountName.
    serviceAccount: backupServiceAccountName(tenant.name),
    restartPolicy: 'Never',
    terminationGracePeriodSeconds: 30,
    dnsPolicy: 'ClusterFirst',
    schedulerName: 'default-scheduler',
    securityContext: {
      runAsNonRoot: true,
      runAsUser: RUN_AS,
      runAsGroup: RUN_AS,
      // Makes the projected Vault token readable by the non-root user.
      fsGroup: RUN_AS,
      seccompProfile: { type: 'RuntimeDefault' },
    },
    containers: [
      {
        name: 'backup',
        image: config.image,
        imagePullPolicy: config.imagePullPolicy ?? defaultPullPolicy(config.image),
        terminationMessagePath: '/dev/termination-log',
        terminationMessagePolicy: 'File',
        command: ['tenant-operator', 'backup', 'run', '--tenant', tenant.name],
        env: environment(tenant, config),
        resources: config.resources ?? DEFAULT_BACKUP_RESOURCES,
        securityContext: {
          runAsNonRoot: true,
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
        },
        volumeMounts: [
          { name: 'vault-token', mountPath: TOKEN_DIR, readOnly: true },
          { name: 'tmp', mountPath: '/tmp' },
        ],
      },
    ],
    volumes: [
      {
        name: 'vault-token',
        projected: {
          // The API server's default, written out so the object we build is the one it keeps.
          defaultMode: 0o644,
          sources: [
            {
              serviceAccountToken: {
                audience: config.vaultAudience ?? 'vault',
                expirationSeconds: 3600,
                path: TOKEN_FILE,
              },
            },
          ],
        },
      },
      { name: 'tmp', emptyDir: {} },
    ],
  };
}

/**
 * The tenant's backup CronJob. Suspended (not deleted) while backups are off
 * or the tenant is not active, so turning them back on changes one field.
 */
export function buildBackupCronJob(tenant: BackupJobTenant, config: BackupJobConfig): KubeObject {
  const labels = managedLabels(tenant.name);
  return {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: metadata(tenant, backupCronJobName(tenant.name), config.namespace),
    spec: {
      schedule: backupSchedule(tenant),
      timeZone: 'Etc/UTC',
      concurrencyPolicy: 'Forbid',
      // A run missed by up to an hour (controller down, cluster busy) still happens.
      startingDeadlineSeconds: 3600,
      successfulJobsHistoryLimit: 3,
      failedJobsHistoryLimit: 3,
      suspend: !backupsActive(tenant),
      jobTemplate: {
        metadata: { labels },
        spec: {
          backoffLimit: 2,
          activeDeadlineSeconds: 6 * 3600,
          ttlSecondsAfterFinished: 86_400,
          template: {
            metadata: { labels },
            spec: podSpec(tenant, config),
          },
        },
      },
    },
  };
}
