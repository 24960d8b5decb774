import type { KubeObject } from '../k8s/types.ts';
import type { ValidTenant } from './model.ts';
import { buildNamespace } from './namespace.ts';
import { egressBlocks, type ForbiddenRange } from './egress-blocks.ts';
import type { EgressTarget } from './egress.ts';
import { buildNetworkPolicies } from './network.ts';
import { buildLimitRange, buildResourceQuota } from './quota.ts';
import { buildOwnerBinding } from './rbac.ts';

// Everything a tenant should have in the cluster for its current state. Pure:
// the reconciler compares this with what exists and applies the difference.

export interface DesiredChildren {
  namespace: KubeObject;
  /** Objects inside the tenant namespace; anything of ours not listed here is removed. */
  namespaced: KubeObject[];
  /**
   * What in the spec was refused (one message per field, e.g. an egress
   * range inside the cluster); the rest is applied.
   */
  specProblems?: string[];
}

export interface NetworkContext {
  /** The tenant's database server and Vault, resolved to addresses. */
  platform: EgressTarget[];
  /** Ranges the tenant's own egress rules must never open. */
  forbidden: readonly ForbiddenRange[];
}

export function desiredChildren(tenant: ValidTenant, network: NetworkContext): DesiredChildren {
  const state = tenant.spec.state;
  const egress = egressBlocks(
    tenant.spec.network.allowEgressCIDRs,
    network.forbidden,
    'spec.network.allowEgressCIDRs',
  );
  const namespaced = [
    ...buildNetworkPolicies(tenant, state === 'Active', {
      platform: network.platform,
      egress: egress.blocks,
    }),
    buildResourceQuota(tenant),
    buildLimitRange(tenant),
  ];
  // Closing a tenant cuts its owners off at once; suspension keeps read/write
  // access to the (now network-isolated) namespace so they can inspect it.
  if (state !== 'Closed') namespaced.push(buildOwnerBinding(tenant));
  return {
    namespace: buildNamespace(tenant),
    namespaced,
    ...(egress.problems.length > 0 ? { specProblems: egress.problems } : {}),
  };
}
