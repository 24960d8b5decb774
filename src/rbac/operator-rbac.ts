import type { KubeObject } from '../k8s/types.ts';
import {
  CLUSTER_RULES,
  EVENTS_NAMESPACE,
  EVENTS_NAMESPACE_RULES,
  OPERATOR_NAMESPACE_RULES,
} from './operator-permissions.ts';

// The operator's permissions as RBAC objects, bound to who runs it: a
// ClusterRole with its binding, a Role in the operator's namespace and one in
// the Events namespace. `install-rbac` applies these; the chart renders the
// same rules from the file gen-crds writes (charts/tenant-operator/files).

const RBAC = 'rbac.authorization.k8s.io/v1';
const RBAC_GROUP = 'rbac.authorization.k8s.io';

export type RbacSubject =
  | { kind: 'Group' | 'User'; apiGroup: typeof RBAC_GROUP; name: string }
  | { kind: 'ServiceAccount'; name: string; namespace: string };

export interface OperatorRbacTarget {
  /** Name of every role and binding (tenant-operator). */
  name: string;
  /** The operator's namespace. */
  namespace: string;
  subjects: RbacSubject[];
}

function labels(): Record<string, string> {
  // Not managed-by=tenant-operator: that label marks what the operator
  // itself makes, and these are made by whoever installs it.
  return { 'app.kubernetes.io/part-of': 'tenant-operator' };
}

function roleAndBinding(
  kind: 'ClusterRole' | 'Role',
  target: OperatorRbacTarget,
  rules: readonly object[],
  namespace?: string,
): KubeObject[] {
  const metadata = { name: target.name, ...(namespace ? { namespace } : {}), labels: labels() };
  return [
    { apiVersion: RBAC, kind, metadata, rules: [...rules] },
    {
      apiVersion: RBAC,
      kind: kind === 'ClusterRole' ? 'ClusterRoleBinding' : 'RoleBinding',
      metadata,
      roleRef: { apiGroup: RBAC_GROUP, kind, name: target.name },
      subjects: target.subjects,
    },
  ];
}

/** The objects to apply, a binding after its role. */
export function operatorRbacObjects(target: OperatorRbacTarget): KubeObject[] {
  return [
    ...roleAndBinding('ClusterRole', target, CLUSTER_RULES),
    ...roleAndBinding('Role', target, OPERATOR_NAMESPACE_RULES, target.namespace),
    ...roleAndBinding('Role', target, EVENTS_NAMESPACE_RULES, EVENTS_NAMESPACE),
  ];
}

/** What the chart reads: the rules of each scope, with no names in them. */
export function operatorRulesDocument(): Record<string, unknown> {
  return {
    cluster: CLUSTER_RULES,
    operatorNamespace: OPERATOR_NAMESPACE_RULES,
    eventsNamespace: { namespace: EVENTS_NAMESPACE, rules: EVENTS_NAMESPACE_RULES },
  };
}
