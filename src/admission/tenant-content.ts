import { isBreakGlass, isOperatorOrBreakGlass } from './cel.ts';
import type { GuardIdentities } from './identities.ts';
import type { GuardPolicy, ResourceRule } from './policy.ts';

// What owners make in their own namespace, bounded so it cannot reach past
// it. RBAC decides whether an owner may create a Service, a NetworkPolicy or
// a RoleBinding at all; these rules decide which ones.

const CREATE_OR_UPDATE: ResourceRule['operations'] = ['CREATE', 'UPDATE'];

function notExempt(expression: string) {
  return [{ name: 'not-exempt', expression: `!(${expression})` }];
}

/**
 * Services that would reach out of the namespace:
 * - spec.externalIPs lets a Service capture traffic meant for any address,
 *   cluster-wide (CVE-2020-8554);
 * - type ExternalName makes the cluster's DNS and any shared ingress
 *   controller or gateway forward to whatever name it says, another tenant's
 *   Service included, from a proxy the tenant's network policies do not
 *   cover. An app that needs an outside name can resolve it itself.
 */
export function tenantServicesPolicy(identities: GuardIdentities): GuardPolicy {
  return {
    name: 'tenant-services',
    description: 'Services in tenant namespaces have no externalIPs and are not ExternalName.',
    rules: [
      {
        apiGroups: [''],
        apiVersions: ['v1'],
        resources: ['services'],
        operations: CREATE_OR_UPDATE,
      },
    ],
    where: 'tenant-namespaces',
    matchConditions: notExempt(isBreakGlass(identities)),
    validations: [
      {
        expression: 'size(object.spec.?externalIPs.orValue([])) == 0',
        message: 'spec.externalIPs is not allowed in tenant namespaces (CVE-2020-8554)',
        messageExpression:
          "'Service ' + request.namespace + '/' + request.name + ': spec.externalIPs is not allowed in tenant namespaces: it would capture traffic for those addresses cluster-wide (CVE-2020-8554)'",
      },
      {
        expression: "object.spec.?type.orValue('ClusterIP') != 'ExternalName'",
        message: 'ExternalName Services are not allowed in tenant namespaces',
        messageExpression:
          "'Service ' + request.namespace + '/' + request.name + ': type ExternalName is not allowed in tenant namespaces: shared proxies would follow it to any name, other tenants included'",
      },
    ],
  };
}

/** Every peer of every rule of the NetworkPolicy in `object` satisfies `check(peer)`. */
function everyPeer(check: string): string {
  return [
    `object.spec.?ingress.orValue([]).all(rule, rule.?from.orValue([]).all(peer, ${check}))`,
    `object.spec.?egress.orValue([]).all(rule, rule.?to.orValue([]).all(peer, ${check}))`,
  ].join(' && ');
}

/** A rule without peers allows every source (or destination), in or out of the cluster. */
const EVERY_RULE_NAMES_PEERS = [
  'object.spec.?ingress.orValue([]).all(rule, size(rule.?from.orValue([])) > 0)',
  'object.spec.?egress.orValue([]).all(rule, size(rule.?to.orValue([])) > 0)',
].join(' && ');

const OWN_NAMESPACE_ONLY =
  "!has(peer.namespaceSelector) || (peer.namespaceSelector.?matchLabels.orValue({}) == {'kubernetes.io/metadata.name': request.namespace} && size(peer.namespaceSelector.?matchExpressions.orValue([])) == 0)";

/**
 * NetworkPolicies owners make: policies only ever add allowed traffic, so the
 * operator's default-deny stays in force and an owner's policy can only open
 * paths inside the namespace. Anything wider (an ipBlock, other namespaces)
 * is the Tenant's spec.network, kept by the operator.
 */
export function tenantNetworkPoliciesPolicy(identities: GuardIdentities): GuardPolicy {
  const where = "'NetworkPolicy ' + request.namespace + '/' + request.name";
  return {
    name: 'tenant-network-policies',
    description: 'NetworkPolicies made in tenant namespaces name peers inside the namespace only.',
    rules: [
      {
        apiGroups: ['networking.k8s.io'],
        apiVersions: ['v1'],
        resources: ['networkpolicies'],
        operations: CREATE_OR_UPDATE,
      },
    ],
    where: 'tenant-namespaces',
    matchConditions: notExempt(isOperatorOrBreakGlass(identities)),
    validations: [
      {
        expression: EVERY_RULE_NAMES_PEERS,
        message: 'every rule must name its peers (from, to)',
        messageExpression: `${where} + ': every ingress rule needs from and every egress rule needs to: a rule without peers allows everything, other tenants and the internet included'`,
      },
      {
        expression: everyPeer('!has(peer.ipBlock)'),
        message: 'ipBlock peers are not allowed in tenant namespaces',
        messageExpression: `${where} + ': ipBlock peers are not allowed in tenant namespaces; addresses outside the cluster are granted by the Tenant\\'s spec.network.allowEgressCIDRs'`,
      },
      {
        expression: everyPeer(OWN_NAMESPACE_ONLY),
        message: "a namespaceSelector may only select the policy's own namespace",
        messageExpression: `${where} + ': a namespaceSelector may only select this namespace, as matchLabels {kubernetes.io/metadata.name: ' + request.namespace + '}; other namespaces are granted by the Tenant\\'s spec.network'`,
      },
    ],
  };
}

/**
 * Whether a RoleBinding subject `s` stays inside the namespace: a
 * ServiceAccount of this namespace, a person or team, or this namespace's
 * service accounts as a group. Refused: system: groups such as
 * system:authenticated (everyone) or system:serviceaccounts (every pod), and
 * other namespaces' service accounts, in either spelling.
 */
const SUBJECT_INSIDE_NAMESPACE = [
  "s.kind == 'ServiceAccount' ? s.?namespace.orValue(request.namespace) == request.namespace",
  ": s.kind == 'User' ? (!s.name.startsWith('system:') || s.name.startsWith('system:serviceaccount:' + request.namespace + ':'))",
  ": (!s.name.startsWith('system:') || s.name == 'system:serviceaccounts:' + request.namespace)",
].join(' ');

export function tenantRoleBindingsPolicy(identities: GuardIdentities): GuardPolicy {
  return {
    name: 'tenant-role-bindings',
    description:
      "RoleBindings made in tenant namespaces bind no system: groups and no other namespace's service accounts.",
    rules: [
      {
        apiGroups: ['rbac.authorization.k8s.io'],
        apiVersions: ['v1'],
        resources: ['rolebindings'],
        operations: CREATE_OR_UPDATE,
      },
    ],
    where: 'tenant-namespaces',
    matchConditions: notExempt(isOperatorOrBreakGlass(identities)),
    validations: [
      {
        expression: `object.?subjects.orValue([]).all(s, ${SUBJECT_INSIDE_NAMESPACE})`,
        message:
          "RoleBindings in tenant namespaces may not bind system: groups or other namespaces' service accounts",
        messageExpression: `'RoleBinding ' + request.namespace + '/' + request.name + ' would grant access beyond the tenant to ' + object.subjects.filter(s, !(${SUBJECT_INSIDE_NAMESPACE})).map(s, s.kind + ' ' + (has(s.namespace) ? s.namespace + '/' : '') + s.name).join(', ') + ': system: groups and other namespaces\\' service accounts cannot be bound here'`,
      },
    ],
  };
}

/** Finalizers that Kubernetes' own controllers add and clear, so they never hold a namespace forever. */
const KUBERNETES_FINALIZER =
  "f in ['kubernetes', 'foregroundDeletion', 'orphan'] || f.startsWith('kubernetes.io/') || f.matches('^[a-z0-9.-]+[.]kubernetes[.]io/')";

/**
 * Finalizers in tenant namespaces: only those Kubernetes itself clears. A
 * finalizer that nothing ever removes holds its object, and so the
 * namespace, in Terminating forever, which would keep the tenant's erasure
 * from finishing: an owner could block the purge that closure promises.
 * Finalizers an object already had are kept (an update may leave them).
 */
export function tenantFinalizersPolicy(identities: GuardIdentities): GuardPolicy {
  return {
    name: 'tenant-finalizers',
    description:
      'Objects in tenant namespaces carry no finalizer that Kubernetes itself does not clear.',
    rules: [
      {
        apiGroups: ['*'],
        apiVersions: ['*'],
        resources: ['*'],
        operations: CREATE_OR_UPDATE,
        scope: 'Namespaced',
      },
    ],
    where: 'tenant-namespaces',
    matchConditions: [
      ...notExempt(isBreakGlass(identities)),
      { name: 'has-finalizers', expression: 'size(object.metadata.?finalizers.orValue([])) > 0' },
    ],
    validations: [
      {
        expression: `object.metadata.finalizers.all(f, ${KUBERNETES_FINALIZER} || (oldObject != null && f in oldObject.metadata.?finalizers.orValue([])))`,
        message:
          'finalizers other than those Kubernetes clears are not allowed in tenant namespaces',
        messageExpression: `request.resource.resource + ' ' + request.namespace + '/' + request.name + ': finalizer(s) ' + object.metadata.finalizers.filter(f, !(${KUBERNETES_FINALIZER}) && !(oldObject != null && f in oldObject.metadata.?finalizers.orValue([]))).join(', ') + ' not allowed in tenant namespaces: nothing would remove them, and the namespace could never be deleted when the tenant is erased'`,
      },
    ],
  };
}
