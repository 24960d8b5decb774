import { FINALIZER, GROUP, LABEL_MANAGED_BY, MANAGED_BY_VALUE, VERSION } from '../api/constants.ts';
import type { KubeObject } from '../k8s/types.ts';
import { celString } from './cel.ts';
import { POLICY_NAME_PREFIX } from './policy.ts';

// The Tenant's finalizer, put there by the API server itself: a
// MutatingAdmissionPolicy (admissionregistration.k8s.io/v1, Kubernetes 1.36)
// adds it when a Tenant is created, and puts it back if an update outside a
// deletion drops it. So a Tenant never exists without the finalizer that
// makes its deletion a closure, not even for the moment before the operator
// first sees it, and the operator spends no write of its own on it.
//
// The operator still adds the finalizer when it is missing (clusters without
// the policy, or the policy not installed): this is the fast path, not the
// only one.

const ADMISSION_API_VERSION = 'admissionregistration.k8s.io/v1';

export const TENANT_FINALIZER_POLICY = `${POLICY_NAME_PREFIX}tenant-finalizer`;

/** The finalizer is not among the object's finalizers. */
const LACKS_FINALIZER = `!(${celString(FINALIZER)} in object.metadata.?finalizers.orValue([]))`;

/**
 * Appends, never replaces: other controllers' finalizers stay. A JSON patch
 * "add" at "/-" needs the list to exist, hence the two forms.
 */
const ADD_FINALIZER = `has(object.metadata.finalizers) ? [JSONPatch{op: "add", path: "/metadata/finalizers/-", value: ${celString(FINALIZER)}}] : [JSONPatch{op: "add", path: "/metadata/finalizers", value: [${celString(FINALIZER)}]}]`;

export function tenantFinalizerPolicy(): KubeObject[] {
  const labels = { [LABEL_MANAGED_BY]: MANAGED_BY_VALUE };
  return [
    {
      apiVersion: ADMISSION_API_VERSION,
      kind: 'MutatingAdmissionPolicy',
      metadata: {
        name: TENANT_FINALIZER_POLICY,
        labels,
        annotations: {
          'tenancy.io/description':
            "A Tenant always carries the operator's finalizer, from its creation until its deletion.",
        },
      },
      spec: {
        // A Tenant that cannot get its finalizer is not created: one created
        // without it could be deleted before the operator sees it.
        failurePolicy: 'Fail',
        matchConstraints: {
          resourceRules: [
            {
              apiGroups: [GROUP],
              apiVersions: [VERSION],
              resources: ['tenants'],
              operations: ['CREATE', 'UPDATE'],
            },
          ],
        },
        matchConditions: [
          { name: 'lacks-finalizer', expression: LACKS_FINALIZER },
          // A deleted Tenant's finalizer is removed by the operator once the
          // tenant is erased (or by break-glass): that is when it may go.
          { name: 'not-deleted', expression: '!has(object.metadata.deletionTimestamp)' },
        ],
        reinvocationPolicy: 'Never',
        mutations: [{ patchType: 'JSONPatch', jsonPatch: { expression: ADD_FINALIZER } }],
      },
    },
    {
      apiVersion: ADMISSION_API_VERSION,
      kind: 'MutatingAdmissionPolicyBinding',
      metadata: { name: TENANT_FINALIZER_POLICY, labels },
      spec: { policyName: TENANT_FINALIZER_POLICY },
    },
  ];
}
