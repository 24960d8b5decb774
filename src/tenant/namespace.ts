import { LABEL_TENANT_UID, managedLabels } from '../api/constants.ts';
import type { KubeObject } from '../k8s/types.ts';
import { ownerReference, type ValidTenant } from './model.ts';

// The tenant's namespace, with Pod Security Admission enforcing `restricted`:
// no privileged pods, host namespaces, hostPath volumes or root containers.
// It carries the Tenant's uid, so that a namespace of the same name that
// someone else made (or an earlier Tenant of the same name left behind) is
// told apart from ours and never taken over.
export function buildNamespace(tenant: ValidTenant): KubeObject {
  const podSecurity = {
    'pod-security.kubernetes.io/enforce': 'restricted',
    'pod-security.kubernetes.io/enforce-version': 'latest',
    'pod-security.kubernetes.io/audit': 'restricted',
    'pod-security.kubernetes.io/warn': 'restricted',
  };
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: tenant.namespace,
      labels: {
        ...managedLabels(tenant.name),
        [LABEL_TENANT_UID]: tenant.uid,
        ...podSecurity,
      },
      ...(tenant.spec.displayName
        ? { annotations: { 'tenancy.io/display-name': tenant.spec.displayName } }
        : {}),
      ownerReferences: [ownerReference(tenant)],
    },
  };
}

/**
 * Whether a namespace was created for the Tenant with this uid: it carries
 * our uid label, or (made by an operator version before the label) an owner
 * reference to this very Tenant. Names and the other labels prove nothing:
 * anyone who may create namespaces can copy them.
 */
export function isTenantNamespace(namespace: KubeObject, tenantUid: string): boolean {
  if (!tenantUid) return false;
  if (namespace.metadata.labels?.[LABEL_TENANT_UID] === tenantUid) return true;
  return (namespace.metadata.ownerReferences ?? []).some(
    (owner) => owner.kind === 'Tenant' && owner.uid === tenantUid,
  );
}
