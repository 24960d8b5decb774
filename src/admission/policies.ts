import type { KubeObject } from '../k8s/types.ts';
import type { GuardIdentities } from './identities.ts';
import { managedNamespacesPolicy, managedObjectsPolicy } from './managed-objects.ts';
import { admissionObjects, type GuardPolicy } from './policy.ts';
import { tenantBackupsPolicy } from './tenant-backups.ts';
import {
  tenantFinalizersPolicy,
  tenantNetworkPoliciesPolicy,
  tenantRoleBindingsPolicy,
  tenantServicesPolicy,
} from './tenant-content.ts';

// The whole admission guard: every policy with its binding, for the given
// identities. Pure, so install-crds applies it and gen-crds writes it from
// the same code.

export function guardPolicies(identities: GuardIdentities): GuardPolicy[] {
  return [
    managedObjectsPolicy(identities),
    managedNamespacesPolicy(identities),
    tenantServicesPolicy(identities),
    tenantNetworkPoliciesPolicy(identities),
    tenantRoleBindingsPolicy(identities),
    tenantFinalizersPolicy(identities),
    tenantBackupsPolicy(identities),
  ];
}

/** Policies and bindings, in the order to apply them (a binding after its policy). */
export function buildAdmissionGuard(identities: GuardIdentities): KubeObject[] {
  return guardPolicies(identities).flatMap(admissionObjects);
}
