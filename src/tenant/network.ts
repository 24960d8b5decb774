import type { KubeObject } from '../k8s/types.ts';
import { childMetadata, type ValidTenant } from './model.ts';

// NetworkPolicies of a tenant. Policies are additive allow-lists, so the
// baseline is one policy that selects every pod for both directions and allows
// nothing; each further policy opens one narrow path. A closed or suspended
// tenant keeps only the baseline: nothing in, nothing out.

export const POLICY_DEFAULT_DENY = 'default-deny';
export const POLICY_SAME_NAMESPACE = 'allow-same-namespace';
export const POLICY_DNS = 'allow-dns';
export const POLICY_INGRESS_NAMESPACES = 'allow-ingress-from-namespaces';
export const POLICY_EGRESS_CIDRS = 'allow-egress-cidrs';
export const POLICY_PLATFORM = 'allow-database-and-vault';

/** A service outside the namespace the tenant's apps must reach (its database, Vault). */
export interface EgressTarget {
  /** An IP address; NetworkPolicies cannot name hosts. */
  ip: string;
  port: number;
}

function policy(tenant: ValidTenant, name: string, spec: Record<string, unknown>): KubeObject {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: childMetadata(tenant, name, tenant.namespace),
    spec: { podSelector: {}, ...spec },
  };
}

export function buildNetworkPolicies(
  tenant: ValidTenant,
  open: boolean,
  platform: EgressTarget[] = [],
): KubeObject[] {
  const policies = [policy(tenant, POLICY_DEFAULT_DENY, { policyTypes: ['Ingress', 'Egress'] })];
  if (!open) return policies;

  const ownNamespace = {
    namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': tenant.namespace } },
    podSelector: {},
  };
  policies.push(
    policy(tenant, POLICY_SAME_NAMESPACE, {
      policyTypes: ['Ingress', 'Egress'],
      ingress: [{ from: [ownNamespace] }],
      egress: [{ to: [ownNamespace] }],
    }),
    policy(tenant, POLICY_DNS, {
      policyTypes: ['Egress'],
      egress: [
        {
          to: [
            {
              namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': 'kube-system' } },
              podSelector: { matchLabels: { 'k8s-app': 'kube-dns' } },
            },
          ],
          ports: [
            { protocol: 'UDP', port: 53 },
            { protocol: 'TCP', port: 53 },
          ],
        },
      ],
    }),
  );
  if (platform.length > 0) {
    policies.push(
      policy(tenant, POLICY_PLATFORM, {
        policyTypes: ['Egress'],
        egress: platform.map(({ ip, port }) => ({
          to: [{ ipBlock: { cidr: ip.includes(':') ? `${ip}/128` : `${ip}/32` } }],
          ports: [{ protocol: 'TCP', port }],
        })),
      }),
    );
  }
  const { allowIngressFromNamespaces, allowEgressCIDRs } = tenant.spec.network;
  if (allowIngressFromNamespaces.length > 0) {
    policies.push(
      policy(tenant, POLICY_INGRESS_NAMESPACES, {
        policyTypes: ['Ingress'],
        ingress: [
          { from: allowIngressFromNamespaces.map((namespaceSelector) => ({ namespaceSelector })) },
        ],
      }),
    );
  }
  if (allowEgressCIDRs.length > 0) {
    policies.push(
      policy(tenant, POLICY_EGRESS_CIDRS, {
        policyTypes: ['Egress'],
        egress: [{ to: allowEgressCIDRs.map((cidr) => ({ ipBlock: { cidr } })) }],
      }),
    );
  }
  return policies;
}
