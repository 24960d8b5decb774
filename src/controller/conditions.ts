import type { Condition } from '../api/common.ts';

// Condition types and reasons, in one place so status, events and tests agree.

export const CONDITION = {
  Ready: 'Ready',
  NamespaceReady: 'NamespaceReady',
  NetworkIsolated: 'NetworkIsolated',
  OwnersBound: 'OwnersBound',
  QuotaApplied: 'QuotaApplied',
  DatabaseReady: 'DatabaseReady',
  CredentialsStored: 'CredentialsStored',
} as const;

export const REASON = {
  Reconciled: 'Reconciled',
  Provisioning: 'Provisioning',
  InvalidSpec: 'InvalidSpec',
  NamespaceActive: 'NamespaceActive',
  NamespaceTerminating: 'NamespaceTerminating',
  NamespaceMissing: 'NamespaceMissing',
  DefaultDenyApplied: 'DefaultDenyApplied',
  AllTrafficDenied: 'AllTrafficDenied',
  OwnersBound: 'OwnersBound',
  AccessRevoked: 'AccessRevoked',
  QuotaApplied: 'QuotaApplied',
  Suspended: 'Suspended',
  Closed: 'Closed',
  Deleting: 'Deleting',
  ApplyFailed: 'ApplyFailed',
  Disabled: 'Disabled',
  NoServerInRegion: 'NoServerInRegion',
  NoServerReachable: 'NoServerReachable',
  NoCapacity: 'NoCapacity',
  ServerMissing: 'ServerMissing',
  ServerUnreachable: 'ServerUnreachable',
  VaultNotConfigured: 'VaultNotConfigured',
  DatabaseReady: 'DatabaseReady',
  DatabaseRecreated: 'DatabaseRecreated',
  DriftRepaired: 'DriftRepaired',
  CredentialsRotated: 'CredentialsRotated',
  CredentialsStored: 'CredentialsStored',
  LoginRevoked: 'LoginRevoked',
  DatabaseError: 'DatabaseError',
  /** A role or database of the tenant's name exists and is not this tenant's. */
  DatabaseConflict: 'DatabaseConflict',
  /** A Vault policy, auth role or secret of the tenant's name exists and is not this tenant's. */
  VaultConflict: 'VaultConflict',
} as const;

export type ConditionInput = Omit<Condition, 'lastTransitionTime' | 'observedGeneration'>;

/**
 * Merges conditions into the previous list. A condition keeps its
 * lastTransitionTime while its status stays the same, so an unchanged tenant
 * produces an unchanged list (and no status write).
 */
export function mergeConditions(
  previous: Condition[] | undefined,
  updates: ConditionInput[],
  generation: number | undefined,
  now: Date,
): Condition[] {
  return updates.map((update) => {
    const before = previous?.find((c) => c.type === update.type);
    const lastTransitionTime =
      before && before.status === update.status
        ? before.lastTransitionTime
        : now.toISOString().replace(/\.\d+Z$/, 'Z');
    return {
      type: update.type,
      status: update.status,
      ...(generation === undefined ? {} : { observedGeneration: generation }),
      lastTransitionTime,
      reason: update.reason,
      message: update.message,
    };
  });
}
