// Every name the operator writes into the cluster derives from here, so a
// rename happens in one place and selectors can never disagree with labels.

export const GROUP = 'tenancy.io';
export const VERSION = 'v1alpha1';
export const API_VERSION = `${GROUP}/${VERSION}`;

export const FIELD_MANAGER = 'tenant-operator';
export const FINALIZER = `${GROUP}/finalizer`;

export const LABEL_MANAGED_BY = 'app.kubernetes.io/managed-by';
export const MANAGED_BY_VALUE = 'tenant-operator';
export const LABEL_TENANT = `${GROUP}/tenant`;
/**
 * On a tenant's namespace: the uid of the Tenant it was created for. A
 * namespace named `tenant-<name>` without it (or with another Tenant's uid)
 * is not ours and is never adopted, changed or deleted.
 */
export const LABEL_TENANT_UID = `${GROUP}/tenant-uid`;
/**
 * On a closed Tenant, set by the operator: when it was closed. Kept in the
 * object's metadata so that the retention clock survives a lost status (a
 * cluster restored without status, a Tenant re-applied from Git): status is
 * rebuilt from it, never restarted.
 */
export const ANNOTATION_CLOSED_AT = `${GROUP}/closed-at`;
/**
 * An explicit, immediate erasure (a GDPR erasure request): set on a Closed
 * Tenant with the tenant's own name as the value, as confirmation. The purge
 * then starts at once instead of at purgeAfter (a legal hold still wins),
 * and the certificate says it was requested.
 */
export const ANNOTATION_ERASE_NOW = `${GROUP}/erase-now`;
/** On an on-demand backup Job: the TenantBackup it fills in. */
export const LABEL_TENANT_BACKUP = `${GROUP}/tenant-backup`;
/** ClusterRoles carrying this label are folded into tenant-admin by aggregation. */
export const LABEL_AGGREGATE_TO_TENANT_ADMIN = `${GROUP}/aggregate-to-tenant-admin`;

/** Namespace of a tenant is this prefix plus the Tenant's name. */
export const NAMESPACE_PREFIX = 'tenant-';
/** A namespace is a DNS label (63 characters), so the Tenant name gets what the prefix leaves. */
export const MAX_TENANT_NAME_LENGTH = 63 - NAMESPACE_PREFIX.length;
/**
 * Names whose derived objects are the operator's own: `system` would give a
 * tenant the namespace tenant-system, where the operator runs; `operator`
 * would map to the Vault policy and role tenant-operator, its own identity.
 */
export const RESERVED_TENANT_NAMES = ['system', 'operator'] as const;

export const TENANT_ADMIN_CLUSTER_ROLE = 'tenancy.io:tenant-admin';
export const TENANT_ADMIN_BASE_CLUSTER_ROLE = 'tenancy.io:tenant-admin-base';

/** Events about cluster-scoped objects live in the default namespace, as kubectl expects. */
export const EVENTS_NAMESPACE = 'default';

export function managedLabels(tenant: string): Record<string, string> {
  return { [LABEL_MANAGED_BY]: MANAGED_BY_VALUE, [LABEL_TENANT]: tenant };
}

/** Label selector matching every child object of every tenant. */
export const MANAGED_SELECTOR = `${LABEL_MANAGED_BY}=${MANAGED_BY_VALUE},${LABEL_TENANT}`;

/**
 * A tenant's backup CronJob and ServiceAccount, in the operator's namespace,
 * are this prefix plus the Tenant's name (the CronJob's hashed when too long;
 * the ServiceAccount's never, so the admission guard can map it back).
 */
export const BACKUP_JOB_PREFIX = 'backup-';
