import {
  LABEL_AGGREGATE_TO_TENANT_ADMIN,
  LABEL_MANAGED_BY,
  MANAGED_BY_VALUE,
  TENANT_ADMIN_BASE_CLUSTER_ROLE,
  TENANT_ADMIN_CLUSTER_ROLE,
} from '../api/constants.ts';
import { ownerReachesAnotherTenant } from '../api/tenant.ts';
import type { KubeObject } from '../k8s/types.ts';
import { childMetadata, type ValidTenant } from './model.ts';

// What a tenant's owners may do inside their namespace. The tenant-admin
// ClusterRole is an aggregate, so a platform team can grant more (their own
// CRDs, say) with a labelled ClusterRole instead of editing ours.
//
// Owners are self-sufficient, as multi-tenancy benchmarks expect: they make
// their own Roles, RoleBindings and NetworkPolicies. That cannot weaken the
// isolation because
// - RBAC's escalation check lets nobody grant what they do not hold, and
//   owners get neither `bind` nor `escalate`;
// - the admission guard (src/admission) refuses any change to what the
//   operator made (default-deny, tenant-admins, the quota), RoleBindings to
//   system: groups or other namespaces' service accounts, and NetworkPolicy
//   peers outside the namespace.
// They only read ResourceQuotas and LimitRanges, and Endpoints and
// EndpointSlices: writing those would point a Service at any address, another
// tenant's pods included (CVE-2021-25740).

export const OWNER_BINDING_NAME = 'tenant-admins';

const ALL = ['get', 'list', 'watch', 'create', 'update', 'patch', 'delete', 'deletecollection'];
const READ = ['get', 'list', 'watch'];

const BASE_RULES = [
  {
    apiGroups: [''],
    resources: [
      'pods',
      'pods/log',
      'pods/exec',
      'pods/attach',
      'pods/portforward',
      'services',
      'configmaps',
      'secrets',
      'persistentvolumeclaims',
      'serviceaccounts',
      'replicationcontrollers',
    ],
    verbs: ALL,
  },
  { apiGroups: [''], resources: ['serviceaccounts/token'], verbs: ['create'] },
  {
    apiGroups: [''],
    resources: ['events', 'resourcequotas', 'limitranges', 'endpoints'],
    verbs: READ,
  },
  {
    apiGroups: ['apps'],
    resources: [
      'deployments',
      'statefulsets',
      'replicasets',
      'deployments/scale',
      'statefulsets/scale',
    ],
    verbs: ALL,
  },
  { apiGroups: ['batch'], resources: ['jobs', 'cronjobs'], verbs: ALL },
  { apiGroups: ['autoscaling'], resources: ['horizontalpodautoscalers'], verbs: ALL },
  { apiGroups: ['policy'], resources: ['poddisruptionbudgets'], verbs: ALL },
  { apiGroups: ['networking.k8s.io'], resources: ['ingresses', 'networkpolicies'], verbs: ALL },
  { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ALL },
  { apiGroups: ['discovery.k8s.io'], resources: ['endpointslices'], verbs: READ },
  { apiGroups: ['events.k8s.io'], resources: ['events'], verbs: READ },
  { apiGroups: ['rbac.authorization.k8s.io'], resources: ['roles', 'rolebindings'], verbs: ALL },
];

/** Cluster-wide objects shared by all tenants, applied once when the operator leads. */
export function buildSharedClusterRoles(): KubeObject[] {
  const labels = { [LABEL_MANAGED_BY]: MANAGED_BY_VALUE };
  return [
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: { name: TENANT_ADMIN_CLUSTER_ROLE, labels },
      aggregationRule: {
        clusterRoleSelectors: [{ matchLabels: { [LABEL_AGGREGATE_TO_TENANT_ADMIN]: 'true' } }],
      },
    },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'ClusterRole',
      metadata: {
        name: TENANT_ADMIN_BASE_CLUSTER_ROLE,
        labels: { ...labels, [LABEL_AGGREGATE_TO_TENANT_ADMIN]: 'true' },
      },
      rules: BASE_RULES,
    },
  ];
}

export function buildOwnerBinding(tenant: ValidTenant): KubeObject {
  return {
    apiVersion: 'rbac.authorization.k8s.io/v1',
    kind: 'RoleBinding',
    metadata: childMetadata(tenant, OWNER_BINDING_NAME, tenant.namespace),
    roleRef: {
      apiGroup: 'rbac.authorization.k8s.io',
      kind: 'ClusterRole',
      name: TENANT_ADMIN_CLUSTER_ROLE,
    },
    // The CRD refuses owners in another tenant's namespace; a Tenant stored
    // before that rule existed must not bind them either.
    subjects: tenant.spec.owners
      .filter((owner) => !ownerReachesAnotherTenant(owner, tenant.name))
      .map((owner) =>
        owner.kind === 'ServiceAccount'
          ? { kind: 'ServiceAccount', name: owner.name, namespace: owner.namespace }
          : { kind: owner.kind, apiGroup: 'rbac.authorization.k8s.io', name: owner.name },
      ),
  };
}
