// Who the admission guard lets change what the operator manages. Everyone
// else, cluster admins included, is refused: the operator's objects are
// changed through the Tenant, and an emergency goes through break-glass,
// which is a deliberate, audited step.

export interface GuardIdentities {
  /** User names the operator runs as (its ServiceAccount in a cluster). */
  operatorUsers: string[];
  /** Groups exempt from every rule of the guard (on-call break-glass). */
  breakGlassGroups: string[];
  /**
   * The operator's namespace, where backup jobs run as ServiceAccounts
   * backup-<tenant> (DEFAULT_OPERATOR_NAMESPACE when unset).
   */
  operatorNamespace?: string;
}

export const DEFAULT_OPERATOR_NAMESPACE = 'tenant-system';

export const DEFAULT_OPERATOR_USER = `system:serviceaccount:${DEFAULT_OPERATOR_NAMESPACE}:tenant-operator`;

export const DEFAULT_GUARD_IDENTITIES: GuardIdentities = {
  operatorUsers: [DEFAULT_OPERATOR_USER],
  breakGlassGroups: [],
};

/**
 * Kubernetes' own controllers that delete what the operator made when a
 * Tenant or its namespace goes: the garbage collector (children owned by the
 * Tenant) and the namespace controller (everything in a deleted namespace).
 * With --use-service-account-credentials each has its own ServiceAccount;
 * without it they all act as system:kube-controller-manager.
 */
export const KUBE_CONTROLLER_USERS = [
  'system:serviceaccount:kube-system:generic-garbage-collector',
  'system:serviceaccount:kube-system:namespace-controller',
  'system:kube-controller-manager',
];
