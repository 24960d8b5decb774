import { isoSeconds } from '../iso-time.ts';
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
  BackupScheduled: 'BackupScheduled',
  LastBackupSucceeded: 'LastBackupSucceeded',
  BackupVerified: 'BackupVerified',
  /** A closed tenant: when its data is erased, or why not. */
  PurgeScheduled: 'PurgeScheduled',
  // DatabaseServer
  Reachable: 'Reachable',
  TLSVerified: 'TLSVerified',
} as const;

export const REASON = {
  Reconciled: 'Reconciled',
  Provisioning: 'Provisioning',
  InvalidSpec: 'InvalidSpec',
  NamespaceActive: 'NamespaceActive',
  NamespaceTerminating: 'NamespaceTerminating',
  NamespaceMissing: 'NamespaceMissing',
  /** `tenant-<name>` exists and was not created for this Tenant: never adopted. */
  NamespaceConflict: 'NamespaceConflict',
  DefaultDenyApplied: 'DefaultDenyApplied',
  AllTrafficDenied: 'AllTrafficDenied',
  OwnersBound: 'OwnersBound',
  AccessRevoked: 'AccessRevoked',
  QuotaApplied: 'QuotaApplied',
  Suspended: 'Suspended',
  Closed: 'Closed',
  Purging: 'Purging',
  /** A purge step failed: the message says which and why; retried with backoff. */
  PurgeBlocked: 'PurgeBlocked',
  /** Event: an erased, deleted Tenant let go by its finalizer. */
  Released: 'Released',
  PurgeScheduled: 'PurgeScheduled',
  LegalHold: 'LegalHold',
  Purged: 'Purged',
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
  // A dependency failed; the reason names which, the message carries its error.
  VaultUnavailable: 'VaultUnavailable',
  VaultError: 'VaultError',
  PostgresUnavailable: 'PostgresUnavailable',
  PostgresError: 'PostgresError',
  KubernetesUnavailable: 'KubernetesUnavailable',
  KubernetesError: 'KubernetesError',
  // Backups
  BackupScheduled: 'Scheduled',
  BackupsOff: 'BackupsOff',
  NoDatabase: 'NoDatabase',
  NoBackupStore: 'NoBackupStore',
  NoBackupYet: 'NoBackupYet',
  BackupSucceeded: 'BackupSucceeded',
  BackupFailed: 'BackupFailed',
  NotYetVerified: 'NotYetVerified',
  Verified: 'Verified',
  VerificationFailed: 'VerificationFailed',
  BackupKeyRotated: 'BackupKeyRotated',
  BackupsExpired: 'BackupsExpired',
  /** Event: a Ready tenant whose Ready condition came back to True. */
  Recovered: 'Recovered',
  /** Event: the tenant reached Ready from another phase. */
  Provisioned: 'Provisioned',
  EgressUnresolved: 'EgressUnresolved',
  // DatabaseServer
  Reachable: 'Reachable',
  VerifyFull: 'VerifyFull',
  TLSDisabled: 'TLSDisabled',
  /** Event: a deleted tenant's Vault policy and role are gone and its database login revoked. */
  AccessCut: 'AccessCut',
  /** A role or database of the tenant's name exists and is not this tenant's. */
  DatabaseConflict: 'DatabaseConflict',
  /** A Vault policy, auth role or secret of the tenant's name exists and is not this tenant's. */
  VaultConflict: 'VaultConflict',
} as const;

/** Reasons that say something failed (as opposed to "not done yet"): worth a Warning. */
export const FAILURE_REASONS: ReadonlySet<string> = new Set([
  REASON.InvalidSpec,
  REASON.PurgeBlocked,
  REASON.NamespaceConflict,
  REASON.ApplyFailed,
  REASON.ServerMissing,
  REASON.ServerUnreachable,
  REASON.DatabaseError,
  REASON.VaultUnavailable,
  REASON.VaultError,
  REASON.PostgresUnavailable,
  REASON.PostgresError,
  REASON.KubernetesUnavailable,
  REASON.KubernetesError,
]);

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
      before && before.status === update.status ? before.lastTransitionTime : isoSeconds(now);
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
