import type { KubeObject } from '../k8s/types.ts';
import type { IpBlock } from './egress-blocks.ts';
import type { EgressTarget } from './egress.ts';
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

function policy(tenant: ValidTenant, name: string, spec: Record<string, unknown>): KubeObject {
  return {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: childMetadata(tenant, name, tenant.namespace),
    spec: { podSelector: {}, ...spec },
  };
}

export interface NetworkOpenings {
  /** The tenant's database server and Vault, each on its port. */
  platform: EgressTarget[];
  /** spec.network.allowEgressCIDRs with the metadata and cluster ranges cut out (see egress-blocks.ts). */
  egress: IpBlock[];
}

export function buildNetworkPolicies(
  tenant: ValidTenant,
  open: boolean,
  openings: NetworkOpenings,
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
  const { platform, egress } = openings;
  if (platform.length > 0) {
    policies.push(
      policy(tenant, POLICY_PLATFORM, {
        policyTypes: ['Egress'],
        egress: platform.map(({ blocks, port }) => ({
          to: blocks.map((ipBlock) => ({ ipBlock })),
          ports: [{ protocol: 'TCP', port }],
        })),
      }),
    );
  }
  const { allowIngressFromNamespaces } = tenant.spec.network;
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
  if (egress.length > 0) {
    policies.push(
      policy(tenant, POLICY_EGRESS_CIDRS, {
        policyTypes: ['Egress'],
        egress: [{ to: egress.map((ipBlock) => ({ ipBlock })) }],
      }),
    );
  }
  return policies;
}
