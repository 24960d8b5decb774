import { LABEL_MANAGED_BY, LABEL_TENANT, MANAGED_BY_VALUE } from '../api/constants.ts';
import type { GuardIdentities } from './identities.ts';

// Pieces of CEL shared by the policies. Values from configuration go in as
// literals: JSON string syntax is valid CEL string syntax, escapes included,
// so a name can never break out of its quotes.

export function celString(value: string): string {
  return JSON.stringify(value);
}

export function celList(values: readonly string[]): string {
  return `[${values.map(celString).join(', ')}]`;
}

/** `object` or `oldObject` carries our managed-by label. */
export function carriesManagedLabel(variable: 'object' | 'oldObject'): string {
  return `${variable} != null && ${variable}.metadata.?labels[?${celString(LABEL_MANAGED_BY)}].orValue('') == ${celString(MANAGED_BY_VALUE)}`;
}

/** Before or after the change, the object is ours: relabelling either way counts. */
export const TOUCHES_MANAGED_OBJECT = `(${carriesManagedLabel('oldObject')}) || (${carriesManagedLabel('object')})`;

export function isOneOfUsers(users: readonly string[]): string {
  return `request.userInfo.username in ${celList(users)}`;
}

export function isInOneOfGroups(groups: readonly string[]): string {
  // An empty list would still be valid CEL; skipping it keeps the policy readable.
  if (groups.length === 0) return 'false';
  return `request.userInfo.groups.exists(g, g in ${celList(groups)})`;
}

export function isBreakGlass(identities: GuardIdentities): string {
  return isInOneOfGroups(identities.breakGlassGroups);
}

/** Either holds; a term that is plainly false is left out. */
export function anyOf(...terms: string[]): string {
  const kept = terms.filter((term) => term !== 'false');
  return kept.length === 0 ? 'false' : kept.join(' || ');
}

/** The operator itself or break-glass: the identities tenant-only rules do not apply to. */
export function isOperatorOrBreakGlass(identities: GuardIdentities): string {
  return anyOf(isOneOfUsers(identities.operatorUsers), isBreakGlass(identities));
}

/** The namespaces of tenants, as the bindings select them. */
export const TENANT_NAMESPACE_SELECTOR = {
  matchLabels: { [LABEL_MANAGED_BY]: MANAGED_BY_VALUE },
  matchExpressions: [{ key: LABEL_TENANT, operator: 'Exists' }],
};
