import { API_VERSION, NAMESPACE_PREFIX, managedLabels } from '../api/constants.ts';
import type { TenantSpec, TenantStatus } from '../api/tenant.ts';
import type { KubeObject, OwnerReference } from '../k8s/types.ts';

// A Tenant as read from the API (spec not yet validated), and the validated
// view that the builders of child objects work from.

export interface TenantObject extends KubeObject {
  spec?: unknown;
  status?: TenantStatus;
}

export interface ValidTenant {
  name: string;
  uid: string;
  spec: TenantSpec;
  namespace: string;
}

export function namespaceFor(tenantName: string): string {
  return `${NAMESPACE_PREFIX}${tenantName}`;
}

/** The Tenant as the controlling owner of what is made for it (only its name and uid are read). */
export function ownerReference(tenant: Pick<ValidTenant, 'name' | 'uid'>): OwnerReference {
  return {
    apiVersion: API_VERSION,
    kind: 'Tenant',
    name: tenant.name,
    uid: tenant.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** Metadata every child object carries: our labels and the Tenant as owner. */
export function childMetadata(tenant: ValidTenant, name: string, namespace?: string) {
  return {
    name,
    ...(namespace ? { namespace } : {}),
    labels: managedLabels(tenant.name),
    ownerReferences: [ownerReference(tenant)],
  };
}
