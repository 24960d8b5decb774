import { BACKUP_JOB_ROLE, BACKUP_JOB_STORE_SECRETS_ROLE } from '../backup/rbac.ts';
import {
  EVENTS_NAMESPACE,
  GROUP,
  TENANT_ADMIN_BASE_CLUSTER_ROLE,
  TENANT_ADMIN_CLUSTER_ROLE,
} from '../api/constants.ts';
import { CREDENTIALS_SECRET } from '../tenant/database.ts';
import { OWNER_BINDING_NAME } from '../tenant/rbac.ts';

// Everything the operator may do in the cluster, and nothing else: the chart's
// ClusterRole and Roles, and the test cluster's, are made from these lists
// (gen-crds writes them for the chart; `install-rbac` applies them). Each rule
// names the code that needs it. The test suite runs the operator with exactly
// these and no more, and the API server's audit log shows what it asked for.
//
// Three scopes, each as narrow as the API lets it be:
// - cluster-wide: the operator's own kinds, and what it keeps in tenant
//   namespaces (made on demand, so not known when the chart is installed);
// - its own namespace: the Lease, backup jobs, their ServiceAccounts and
//   CronJobs, the Secrets BackupStores and DatabaseServers name;
// - the Events namespace: Events about Tenants, which are cluster-scoped.
//
// Where RBAC allows it, a rule names the objects (resourceNames). It cannot
// for create, list and watch.

export interface PolicyRule {
  apiGroups: string[];
  resources: string[];
  verbs: string[];
  resourceNames?: string[];
}

/** What an informer needs: the operator reads its cache, not the API server. */
const WATCH = ['list', 'watch'];
/**
 * Objects the operator keeps exactly as it wants them: compared, then made
 * (POST), replaced whole (PUT) or deleted; never patched.
 */
const KEEP = ['get', 'list', 'watch', 'create', 'update', 'delete'];
const RBAC_GROUP = 'rbac.authorization.k8s.io';

export const CLUSTER_RULES: readonly PolicyRule[] = [
  // The Tenant: finalizer and annotations (patch), status, and deletion once
  // erased with --purged-tenants delete (src/tenant/reconcile.ts, purge.ts).
  { apiGroups: [GROUP], resources: ['tenants'], verbs: [...WATCH, 'patch', 'delete'] },
  { apiGroups: [GROUP], resources: ['tenants/status'], verbs: ['patch'] },
  // Placement reads servers and reports their capacity and reachability.
  { apiGroups: [GROUP], resources: ['databaseservers'], verbs: WATCH },
  { apiGroups: [GROUP], resources: ['databaseservers/status'], verbs: ['patch'] },
  { apiGroups: [GROUP], resources: ['backupstores'], verbs: WATCH },
  // Backup records: expiry deletes them, verification and leftovers write status.
  { apiGroups: [GROUP], resources: ['tenantbackups'], verbs: ['get', ...WATCH, 'delete'] },
  { apiGroups: [GROUP], resources: ['tenantbackups/status'], verbs: ['patch'] },
  // Each tenant's namespace: made, kept, and deleted by the purge.
  { apiGroups: [''], resources: ['namespaces'], verbs: KEEP },
  // What the operator keeps in every tenant namespace.
  { apiGroups: ['networking.k8s.io'], resources: ['networkpolicies'], verbs: KEEP },
  { apiGroups: [''], resources: ['resourcequotas', 'limitranges'], verbs: KEEP },
  // Watched everywhere (drift on tenant-admins); written only by name below.
  { apiGroups: [RBAC_GROUP], resources: ['rolebindings'], verbs: ['get', ...WATCH, 'create'] },
  {
    apiGroups: [RBAC_GROUP],
    resources: ['rolebindings'],
    resourceNames: [OWNER_BINDING_NAME],
    verbs: ['update', 'delete'],
  },
  // The owners' binding refers to the tenant-admin ClusterRole, whose rules
  // the operator does not hold itself: `bind` on that role alone.
  {
    apiGroups: [RBAC_GROUP],
    resources: ['clusterroles'],
    resourceNames: [TENANT_ADMIN_CLUSTER_ROLE, BACKUP_JOB_ROLE],
    verbs: ['bind'],
  },
  // The shared ClusterRoles (tenant-admin, its base rules, the backup job's),
  // applied by the leader with server-side apply: a PATCH that creates needs
  // `create` too, which RBAC cannot limit by name. `escalate` on these names
  // only: they grant what the operator itself may not do (pods/exec for
  // owners, say).
  { apiGroups: [RBAC_GROUP], resources: ['clusterroles'], verbs: ['create'] },
  {
    apiGroups: [RBAC_GROUP],
    resources: ['clusterroles'],
    resourceNames: [TENANT_ADMIN_CLUSTER_ROLE, TENANT_ADMIN_BASE_CLUSTER_ROLE, BACKUP_JOB_ROLE],
    verbs: ['get', 'update', 'patch', 'escalate'],
  },
  { apiGroups: [RBAC_GROUP], resources: ['clusterrolebindings'], verbs: ['create'] },
  {
    apiGroups: [RBAC_GROUP],
    resources: ['clusterrolebindings'],
    resourceNames: [BACKUP_JOB_ROLE],
    verbs: ['get', 'patch'],
  },
  // The database-credentials Secret in each tenant namespace: created where
  // it is missing, otherwise read and replaced by name, and watched by name
  // (list and watch with the field selector metadata.name, which RBAC
  // checks against resourceNames). No other Secret of a tenant can be read.
  { apiGroups: [''], resources: ['secrets'], verbs: ['create'] },
  {
    apiGroups: [''],
    resources: ['secrets'],
    resourceNames: [CREDENTIALS_SECRET],
    verbs: ['get', 'list', 'watch', 'update', 'delete'],
  },
];

export const OPERATOR_NAMESPACE_RULES: readonly PolicyRule[] = [
  // Leader election (src/controller/leader.ts); with --shards, a Lease per
  // shard and one per replica, listed to count the replicas alive and
  // deleted when a replica stops or died long ago (shard-set.ts,
  // membership.ts). A replica's Lease is named after its identity (the pod
  // name), which is not known when RBAC is installed, so these verbs cannot
  // name their objects; they are limited to the operator's own namespace.
  {
    apiGroups: ['coordination.k8s.io'],
    resources: ['leases'],
    verbs: ['create', 'get', 'list', 'update', 'delete'],
  },
  // Backup jobs: a ServiceAccount and a CronJob per tenant, and on-demand
  // Jobs (created once; the Job controller and its TTL do the rest).
  { apiGroups: [''], resources: ['serviceaccounts'], verbs: [...WATCH, 'get', 'create', 'delete'] },
  { apiGroups: ['batch'], resources: ['cronjobs'], verbs: KEEP },
  { apiGroups: ['batch'], resources: ['jobs'], verbs: ['create'] },
  // Credentials and CAs that BackupStores and DatabaseServers name.
  { apiGroups: [''], resources: ['secrets'], verbs: ['get'] },
  // The backup jobs' Role over exactly those Secrets, and its binding.
  { apiGroups: [RBAC_GROUP], resources: ['roles', 'rolebindings'], verbs: ['create'] },
  {
    apiGroups: [RBAC_GROUP],
    resources: ['roles', 'rolebindings'],
    resourceNames: [BACKUP_JOB_STORE_SECRETS_ROLE],
    verbs: ['get', 'update', 'patch'],
  },
];

export const EVENTS_NAMESPACE_RULES: readonly PolicyRule[] = [
  // Events about Tenants and backups, which are cluster-scoped (src/controller/events.ts).
  { apiGroups: [''], resources: ['events'], verbs: ['create'] },
];

export { EVENTS_NAMESPACE };
