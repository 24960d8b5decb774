import { API_VERSION } from '../api/constants.ts';

// The API resources the operator reads and writes, and how their URLs are built.

export interface ResourceType {
  apiVersion: string;
  kind: string;
  plural: string;
  namespaced: boolean;
}

function resource(
  apiVersion: string,
  kind: string,
  plural: string,
  namespaced: boolean,
): ResourceType {
  return { apiVersion, kind, plural, namespaced };
}

export const RESOURCES = {
  Tenant: resource(API_VERSION, 'Tenant', 'tenants', false),
  DatabaseServer: resource(API_VERSION, 'DatabaseServer', 'databaseservers', false),
  BackupStore: resource(API_VERSION, 'BackupStore', 'backupstores', false),
  TenantBackup: resource(API_VERSION, 'TenantBackup', 'tenantbackups', false),
  CronJob: resource('batch/v1', 'CronJob', 'cronjobs', true),
  Job: resource('batch/v1', 'Job', 'jobs', true),
  ServiceAccount: resource('v1', 'ServiceAccount', 'serviceaccounts', true),
  Secret: resource('v1', 'Secret', 'secrets', true),
  Namespace: resource('v1', 'Namespace', 'namespaces', false),
  NetworkPolicy: resource('networking.k8s.io/v1', 'NetworkPolicy', 'networkpolicies', true),
  RoleBinding: resource('rbac.authorization.k8s.io/v1', 'RoleBinding', 'rolebindings', true),
  Role: resource('rbac.authorization.k8s.io/v1', 'Role', 'roles', true),
  ClusterRole: resource('rbac.authorization.k8s.io/v1', 'ClusterRole', 'clusterroles', false),
  ClusterRoleBinding: resource(
    'rbac.authorization.k8s.io/v1',
    'ClusterRoleBinding',
    'clusterrolebindings',
    false,
  ),
  ResourceQuota: resource('v1', 'ResourceQuota', 'resourcequotas', true),
  LimitRange: resource('v1', 'LimitRange', 'limitranges', true),
  Lease: resource('coordination.k8s.io/v1', 'Lease', 'leases', true),
  Event: resource('v1', 'Event', 'events', true),
  ValidatingAdmissionPolicy: resource(
    'admissionregistration.k8s.io/v1',
    'ValidatingAdmissionPolicy',
    'validatingadmissionpolicies',
    false,
  ),
  ValidatingAdmissionPolicyBinding: resource(
    'admissionregistration.k8s.io/v1',
    'ValidatingAdmissionPolicyBinding',
    'validatingadmissionpolicybindings',
    false,
  ),
  MutatingAdmissionPolicy: resource(
    'admissionregistration.k8s.io/v1',
    'MutatingAdmissionPolicy',
    'mutatingadmissionpolicies',
    false,
  ),
  MutatingAdmissionPolicyBinding: resource(
    'admissionregistration.k8s.io/v1',
    'MutatingAdmissionPolicyBinding',
    'mutatingadmissionpolicybindings',
    false,
  ),
  CustomResourceDefinition: resource(
    'apiextensions.k8s.io/v1',
    'CustomResourceDefinition',
    'customresourcedefinitions',
    false,
  ),
} as const satisfies Record<string, ResourceType>;

export type ResourceKind = keyof typeof RESOURCES;

export function resourceFor(apiVersion: string, kind: string): ResourceType {
  const found = Object.values(RESOURCES).find(
    (r) => r.apiVersion === apiVersion && r.kind === kind,
  );
  if (!found) throw new Error(`unknown resource ${apiVersion} ${kind}`);
  return found;
}

function groupPrefix(apiVersion: string): string {
  return apiVersion.includes('/') ? `/apis/${apiVersion}` : `/api/${apiVersion}`;
}

/** Collection URL: across all namespaces when a namespaced type gets no namespace. */
export function collectionPath(type: ResourceType, namespace?: string): string {
  const ns = type.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
  return `${groupPrefix(type.apiVersion)}${ns}/${type.plural}`;
}

/** The resource a request path addresses: /api/v1/namespaces/ns/pods/x -> pods. */
export function resourceOfPath(path: string): string {
  const parts = path.split('?')[0]!.split('/').filter(Boolean);
  const rest = parts[0] === 'api' ? parts.slice(2) : parts.slice(3);
  if (rest[0] === 'namespaces' && rest.length > 2) return rest[2]!;
  return rest[0] ?? '';
}

export function objectPath(type: ResourceType, name: string, namespace?: string): string {
  if (type.namespaced && !namespace) throw new Error(`${type.kind} ${name} needs a namespace`);
  return `${collectionPath(type, namespace)}/${encodeURIComponent(name)}`;
}
