import { LABEL_MANAGED_BY, MANAGED_BY_VALUE } from '../api/constants.ts';
import {
  anyOf,
  carriesManagedLabel,
  isBreakGlass,
  isOneOfUsers,
  TOUCHES_MANAGED_OBJECT,
} from './cel.ts';
import { KUBE_CONTROLLER_USERS, type GuardIdentities } from './identities.ts';
import type { GuardPolicy, ResourceRule } from './policy.ts';

// What the operator made is changed only through the Tenant. Drift repair
// would put it back anyway, but between the edit and the repair a deleted
// default-deny or a widened quota is a real hole; refusing it up front
// closes that window.
//
// The label is checked on the old and the new object, so taking it off (to
// make an object ours no more) and putting it on (to pass a tenant's object
// off as ours) are refused alike.

const WRITES: ResourceRule['operations'] = ['CREATE', 'UPDATE', 'DELETE'];

const MANAGED = "' is managed by tenant-operator; change the Tenant instead'";
const IMPERSONATED = `' would carry the label ${LABEL_MANAGED_BY}=${MANAGED_BY_VALUE}, which only tenant-operator gives'`;

function mayChangeManaged(identities: GuardIdentities): string {
  return anyOf(
    isOneOfUsers([...identities.operatorUsers, ...KUBE_CONTROLLER_USERS]),
    isBreakGlass(identities),
  );
}

/**
 * Two refusals with their own words: changing what is ours, and giving an
 * object our label (which would make the operator's pruning and the guard
 * treat it as ours).
 */
function validations(identities: GuardIdentities, what: string) {
  const exempt = mayChangeManaged(identities);
  return [
    {
      expression: `${exempt} || !(${carriesManagedLabel('oldObject')})`,
      message: 'this object is managed by tenant-operator; change the Tenant instead',
      messageExpression: `${what} + ${MANAGED}`,
    },
    {
      expression: `${exempt} || (${carriesManagedLabel('oldObject')}) || !(${carriesManagedLabel('object')})`,
      message: `only tenant-operator labels objects ${LABEL_MANAGED_BY}=${MANAGED_BY_VALUE}`,
      messageExpression: `${what} + ${IMPERSONATED}`,
    },
  ];
}

/** Objects inside tenant namespaces (every kind: the operator's children may grow). */
export function managedObjectsPolicy(identities: GuardIdentities): GuardPolicy {
  return {
    name: 'managed-objects',
    description:
      'Objects labelled app.kubernetes.io/managed-by=tenant-operator in tenant namespaces change only through the operator.',
    rules: [
      {
        apiGroups: ['*'],
        apiVersions: ['*'],
        resources: ['*'],
        scope: 'Namespaced',
        operations: WRITES,
      },
    ],
    where: 'tenant-namespaces',
    matchConditions: [
      { name: 'touches-an-operator-managed-object', expression: TOUCHES_MANAGED_OBJECT },
    ],
    validations: validations(
      identities,
      "request.kind.kind + ' ' + request.namespace + '/' + request.name",
    ),
  };
}

/**
 * The tenant namespaces themselves. Their binding selects no namespaces:
 * for an update, a namespace selector would look at the new labels only, so
 * taking our label off a namespace would slip past it.
 */
export function managedNamespacesPolicy(identities: GuardIdentities): GuardPolicy {
  return {
    name: 'managed-namespaces',
    description: 'Tenant namespaces (and their labels) change only through the operator.',
    rules: [
      { apiGroups: [''], apiVersions: ['v1'], resources: ['namespaces'], operations: WRITES },
    ],
    where: 'everywhere',
    matchConditions: [{ name: 'touches-a-tenant-namespace', expression: TOUCHES_MANAGED_OBJECT }],
    // For a namespace, request.namespace is its own name: say it once.
    validations: validations(identities, "'namespace ' + request.name"),
  };
}
