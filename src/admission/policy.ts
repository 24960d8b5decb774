import { LABEL_MANAGED_BY, MANAGED_BY_VALUE } from '../api/constants.ts';
import type { KubeObject } from '../k8s/types.ts';
import { TENANT_NAMESPACE_SELECTOR } from './cel.ts';

// The shape shared by every policy of the guard: a ValidatingAdmissionPolicy
// and its binding, which says where it applies. CEL runs inside the API
// server, so there is no webhook to deploy, and nothing to fail open when the
// operator is down.

export const POLICY_NAME_PREFIX = 'tenancy.io-';

const API_VERSION = 'admissionregistration.k8s.io/v1';

export type Operation = 'CREATE' | 'UPDATE' | 'DELETE';

export interface ResourceRule {
  apiGroups: string[];
  apiVersions: string[];
  /**
   * Plain resource names: subresources such as status are not matched, except
   * by a policy about who writes a status (tenant-backups).
   */
  resources: string[];
  operations: Operation[];
  scope?: 'Namespaced' | 'Cluster' | '*';
}

export interface Validation {
  expression: string;
  /** Said when the messageExpression cannot be evaluated. */
  message: string;
  messageExpression: string;
}

export interface GuardPolicy {
  /** Without the prefix, e.g. 'managed-objects'. */
  name: string;
  description: string;
  rules: ResourceRule[];
  /** Where the binding applies: only in tenant namespaces, or to any object. */
  where: 'tenant-namespaces' | 'everywhere';
  /** The policy is skipped unless all of these hold (cheap, evaluated first). */
  matchConditions: { name: string; expression: string }[];
  validations: Validation[];
}

function labels(): Record<string, string> {
  return { [LABEL_MANAGED_BY]: MANAGED_BY_VALUE };
}

export function admissionObjects(policy: GuardPolicy): KubeObject[] {
  const name = `${POLICY_NAME_PREFIX}${policy.name}`;
  return [
    {
      apiVersion: API_VERSION,
      kind: 'ValidatingAdmissionPolicy',
      metadata: {
        name,
        labels: labels(),
        annotations: { 'tenancy.io/description': policy.description },
      },
      spec: {
        // A policy that cannot be evaluated refuses: the guard never fails open.
        failurePolicy: 'Fail',
        matchConstraints: { resourceRules: policy.rules },
        matchConditions: policy.matchConditions,
        validations: policy.validations.map((validation) => ({
          ...validation,
          reason: 'Forbidden',
        })),
      },
    },
    {
      apiVersion: API_VERSION,
      kind: 'ValidatingAdmissionPolicyBinding',
      metadata: { name, labels: labels() },
      spec: {
        policyName: name,
        validationActions: ['Deny'],
        ...(policy.where === 'tenant-namespaces'
          ? { matchResources: { namespaceSelector: TENANT_NAMESPACE_SELECTOR } }
          : {}),
      },
    },
  ];
}
