import type { KubeObject } from '../k8s/types.ts';
import type { ValidTenant } from './model.ts';
import { buildNamespace } from './namespace.ts';
import { buildNetworkPolicies, type EgressTarget } from './network.ts';
import { buildLimitRange, buildResourceQuota } from './quota.ts';
import { buildOwnerBinding } from './rbac.ts';

// Everything a tenant should have in the cluster for its current state. Pure:
// the reconciler compares this with what exists and applies the difference.

export interface DesiredChildren {
  namespace: KubeObject;
  /** Objects inside the tenant namespace; anything of ours not listed here is removed. */
  namespaced: KubeObject[];
  /** What in the spec cannot be honoured (the CRD cannot see it): the tenant is then Failed/InvalidSpec. */
  specProblems?: string[];
}

export function desiredChildren(
  tenant: ValidTenant,
  platform: EgressTarget[] = [],
): DesiredChildren {
  const state = tenant.spec.state;
  const namespaced = [
    ...buildNetworkPolicies(tenant, state === 'Active', platform),
    buildResourceQuota(tenant),
    buildLimitRange(tenant),
  ];
  // Closing a tenant cuts its owners off at once; suspension keeps read/write
  // access to the (now network-isolated) namespace so they can inspect it.
  if (state !== 'Closed') namespaced.push(buildOwnerBinding(tenant));
  return { namespace: buildNamespace(tenant), namespaced };
}
