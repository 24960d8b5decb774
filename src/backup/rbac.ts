import { GROUP, LABEL_MANAGED_BY, MANAGED_BY_VALUE } from '../api/constants.ts';
import type { BackupStoreSpec } from '../api/backupstore.ts';
import type { KubeObject } from '../k8s/types.ts';

// What backup jobs may do in the cluster. They run as ServiceAccounts
// backup-<tenant> in the operator's namespace; rather than one binding per
// tenant, one binding covers the namespace's ServiceAccounts group. What RBAC
// cannot express, "only your own tenant's TenantBackups", the admission guard
// enforces (src/admission/tenant-backups.ts).

export const BACKUP_JOB_ROLE = `${GROUP}:backup-job`;
export const BACKUP_JOB_STORE_SECRETS_ROLE = `${GROUP}:backup-job-store-secrets`;

const RBAC = 'rbac.authorization.k8s.io/v1';

function labels(): Record<string, string> {
  return { [LABEL_MANAGED_BY]: MANAGED_BY_VALUE };
}

/** Every ServiceAccount of the operator's namespace: the backup jobs (and the operator). */
function serviceAccountsOf(namespace: string) {
  return [
    {
      kind: 'Group',
      apiGroup: 'rbac.authorization.k8s.io',
      name: `system:serviceaccounts:${namespace}`,
    },
  ];
}

/** Reads what a backup needs and records it in a TenantBackup; never deletes. */
export function buildBackupJobClusterRole(): KubeObject {
  return {
    apiVersion: RBAC,
    kind: 'ClusterRole',
    metadata: { name: BACKUP_JOB_ROLE, labels: labels() },
    rules: [
      {
        apiGroups: [GROUP],
        resources: ['tenants', 'databaseservers'],
        verbs: ['get'],
      },
      // Listed: the job picks the store of its tenant's region itself.
      { apiGroups: [GROUP], resources: ['backupstores'], verbs: ['get', 'list'] },
      {
        apiGroups: [GROUP],
        resources: ['tenantbackups'],
        verbs: ['create', 'get', 'list', 'patch'],
      },
      { apiGroups: [GROUP], resources: ['tenantbackups/status'], verbs: ['get', 'patch'] },
    ],
  };
}

export function buildBackupJobClusterRoleBinding(operatorNamespace: string): KubeObject {
  return {
    apiVersion: RBAC,
    kind: 'ClusterRoleBinding',
    metadata: { name: BACKUP_JOB_ROLE, labels: labels() },
    roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: BACKUP_JOB_ROLE },
    subjects: serviceAccountsOf(operatorNamespace),
  };
}

/** The Secrets a store names: its credentials and its CA. */
export function storeSecretNames(store: Pick<BackupStoreSpec, 's3'>): string[] {
  if (!store.s3) return [];
  return [store.s3.credentialsSecret.name, ...(store.s3.caSecret ? [store.s3.caSecret.name] : [])];
}

/**
 * A Role in the operator's namespace that reads exactly the Secrets the
 * BackupStores name, by resourceNames, and nothing else there (not the
 * operator's own Secrets). The operator rebuilds it when stores change.
 * Without any named Secret it has no rule at all: a rule with an empty
 * resourceNames list would allow every Secret.
 */
export function buildBackupJobSecretsRole(
  operatorNamespace: string,
  stores: Pick<BackupStoreSpec, 's3'>[],
): KubeObject {
  const names = [...new Set(stores.flatMap(storeSecretNames))].sort();
  return {
    apiVersion: RBAC,
    kind: 'Role',
    metadata: {
      name: BACKUP_JOB_STORE_SECRETS_ROLE,
      namespace: operatorNamespace,
      labels: labels(),
    },
    rules:
      names.length === 0
        ? []
        : [{ apiGroups: [''], resources: ['secrets'], resourceNames: names, verbs: ['get'] }],
  };
}

export function buildBackupJobSecretsRoleBinding(operatorNamespace: string): KubeObject {
  return {
    apiVersion: RBAC,
    kind: 'RoleBinding',
    metadata: {
      name: BACKUP_JOB_STORE_SECRETS_ROLE,
      namespace: operatorNamespace,
      labels: labels(),
    },
    roleRef: {
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'Role',
      name: BACKUP_JOB_STORE_SECRETS_ROLE,
    },
    subjects: serviceAccountsOf(operatorNamespace),
  };
}
