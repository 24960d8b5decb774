import { managedLabels } from '../api/constants.ts';
import type { KubeObject } from '../k8s/types.ts';
import { ownerReference, type ValidTenant } from './model.ts';

// The tenant's namespace, with Pod Security Admission enforcing `restricted`:
// no privileged pods, host namespaces, hostPath volumes or root containers.
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
      labels: { ...managedLabels(tenant.name), ...podSecurity },
      ...(tenant.spec.displayName
        ? { annotations: { 'tenancy.io/display-name': tenant.spec.displayName } }
        : {}),
      ownerReferences: [ownerReference(tenant)],
    },
  };
}
