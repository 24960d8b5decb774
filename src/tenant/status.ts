import { isoSeconds } from '../iso-time.ts';
import { isDeepStrictEqual } from 'node:util';
import type { Condition } from '../api/common.ts';
import type { TenantPhase, TenantStatus } from '../api/tenant.ts';
import {
  CONDITION,
  FAILURE_REASONS,
  REASON,
  mergeConditions,
  type ConditionInput,
} from '../controller/conditions.ts';
import type { EventType } from '../controller/events.ts';
import { isUnavailable, toOperatorError } from '../errors.ts';
import { BACKUP_CONDITIONS, type BackupOutcome } from './backup-status.ts';
import type { DatabaseOutcome } from './database.ts';
import type { TenantObject, ValidTenant } from './model.ts';
import { purgeDueAfter, recordedClosedAt } from './retention-clock.ts';

// A Tenant's status from what the reconcile found, and the Events that tell
// its changes. Pure, so every rule below is tested without a cluster.
//
// Phase, in order of precedence:
//   Failed        the tenant cannot be made what its spec says without a
//                 person: the namespace is someone else's (NamespaceConflict),
//                 or the spec asks for something the operator refuses
//                 (InvalidSpec). Failed, not Provisioning, because waiting
//                 will not fix it; the reconcile still looks again.
//   Suspended / Closed   what the spec's state says.
//   Ready         provisioned. Once Ready, a failing dependency (Vault,
//                 PostgreSQL) does not take the phase back to Provisioning:
//                 the tenant is provisioned and its isolation is in force,
//                 only the Ready condition turns False with the failure as
//                 its reason. That keeps "Provisioned" a one-time event and
//                 lets alerts on Ready say what is wrong.
//   Provisioning  anything else: work still to do.

/** What the reconcile found where the tenant's namespace should be. */
export type NamespaceState =
  | { kind: 'ours'; phase: string | undefined }
  /** `tenant-<name>` exists and is not this Tenant's: nothing in it is touched. */
  | { kind: 'conflict'; message: string }
  /** Someone else's namespace (e.g. an earlier Tenant's) is going away: ours comes after. */
  | { kind: 'foreign-terminating'; message: string }
  /** A deleted tenant's namespace is gone (its purge comes later): it is not made again. */
  | { kind: 'absent' };

export interface StatusInput {
  tenant: TenantObject;
  valid: ValidTenant;
  namespace: NamespaceState;
  database: DatabaseOutcome;
  /** What the backup step found; absent: it did not run, and status keeps what it said. */
  backup?: BackupOutcome | undefined;
  /** Problems with the spec that the CRD schema cannot see (from the builders of children). */
  specProblems: readonly string[];
  now: Date;
}

export interface StatusEvent {
  type: EventType;
  reason: string;
  message: string;
}

/** A condition for a step that threw: the reason names the system that failed. */
export function failureCondition(type: string, thrown: unknown): ConditionInput {
  const err = toOperatorError(thrown);
  const unavailable = isUnavailable(err);
  const reason =
    err.origin === 'vault'
      ? unavailable
        ? REASON.VaultUnavailable
        : REASON.VaultError
      : err.origin === 'postgres'
        ? unavailable
          ? REASON.PostgresUnavailable
          : REASON.PostgresError
        : err.origin === 'kubernetes'
          ? unavailable
            ? REASON.KubernetesUnavailable
            : REASON.KubernetesError
          : REASON.DatabaseError;
  return { type, status: 'False', reason, message: err.message };
}

function namespaceCondition(valid: ValidTenant, namespace: NamespaceState): ConditionInput {
  switch (namespace.kind) {
    case 'conflict':
      return {
        type: CONDITION.NamespaceReady,
        status: 'False',
        reason: REASON.NamespaceConflict,
        message: namespace.message,
      };
    case 'foreign-terminating':
      return {
        type: CONDITION.NamespaceReady,
        status: 'False',
        reason: REASON.NamespaceTerminating,
        message: namespace.message,
      };
    case 'absent':
      return {
        type: CONDITION.NamespaceReady,
        status: 'False',
        reason: REASON.NamespaceMissing,
        message: `namespace ${valid.namespace} is gone; the tenant was deleted, so it is not made again`,
      };
    case 'ours':
      return namespace.phase === 'Active'
        ? {
            type: CONDITION.NamespaceReady,
            status: 'True',
            reason: REASON.NamespaceActive,
            message: `namespace ${valid.namespace} is active`,
          }
        : {
            type: CONDITION.NamespaceReady,
            status: 'False',
            reason: REASON.NamespaceTerminating,
            message: `namespace ${valid.namespace} is ${namespace.phase ?? 'not ready'}`,
          };
  }
}

/** Conditions of the steps inside the namespace; only meaningful when it is ours. */
function childConditions(valid: ValidTenant): ConditionInput[] {
  const state = valid.spec.state;
  return [
    state === 'Active'
      ? {
          type: CONDITION.NetworkIsolated,
          status: 'True',
          reason: REASON.DefaultDenyApplied,
          message: "default deny both ways; DNS, same-namespace and the spec's allowances open",
        }
      : {
          type: CONDITION.NetworkIsolated,
          status: 'True',
          reason: REASON.AllTrafficDenied,
          message: `tenant is ${state}: all traffic denied`,
        },
    state === 'Closed'
      ? {
          type: CONDITION.OwnersBound,
          status: 'False',
          reason: REASON.AccessRevoked,
          message: "tenant is closed: owners' access removed",
        }
      : {
          type: CONDITION.OwnersBound,
          status: 'True',
          reason: REASON.OwnersBound,
          message: `${valid.spec.owners.length} owner(s) bound to tenant-admin`,
        },
    {
      type: CONDITION.QuotaApplied,
      status: 'True',
      reason: REASON.QuotaApplied,
      message: 'resource quota and limit range applied',
    },
  ];
}

function readyCondition(status: 'True' | 'False', reason: string, message: string): ConditionInput {
  return { type: CONDITION.Ready, status, reason, message };
}

/** The phase and the Ready condition, by the precedence described at the top. */
function phaseAndReady(
  input: StatusInput,
  steps: ConditionInput[],
): { phase: TenantPhase; ready: ConditionInput } {
  const { tenant, valid, namespace, database, specProblems } = input;
  if (namespace.kind === 'conflict') {
    return {
      phase: 'Failed',
      ready: readyCondition('False', REASON.NamespaceConflict, namespace.message),
    };
  }
  const invalid = [
    ...specProblems,
    ...database.conditions.filter((c) => c.reason === REASON.InvalidSpec).map((c) => c.message),
  ];
  if (invalid.length > 0) {
    return {
      phase: 'Failed',
      ready: readyCondition('False', REASON.InvalidSpec, invalid.join('; ')),
    };
  }
  const state = valid.spec.state;
  if (state === 'Suspended') {
    return {
      phase: 'Suspended',
      ready: readyCondition('False', REASON.Suspended, 'tenant is suspended'),
    };
  }
  if (state === 'Closed') {
    const message = tenant.metadata.deletionTimestamp
      ? `tenant was deleted at ${tenant.metadata.deletionTimestamp}: closed, and held until its data is erased`
      : 'tenant is closed';
    return { phase: 'Closed', ready: readyCondition('False', REASON.Closed, message) };
  }
  const namespaceActive = namespace.kind === 'ours' && namespace.phase === 'Active';
  if (namespaceActive && database.ready) {
    return {
      phase: 'Ready',
      ready: readyCondition('True', REASON.Reconciled, 'tenant is provisioned and isolated'),
    };
  }
  const blocking = steps.find((c) => c.status === 'False');
  if (blocking && FAILURE_REASONS.has(blocking.reason)) {
    // Something failed. A provisioned tenant stays Ready (degraded): see the top.
    return {
      phase: tenant.status?.phase === 'Ready' ? 'Ready' : 'Provisioning',
      ready: readyCondition('False', blocking.reason, blocking.message),
    };
  }
  return {
    phase: 'Provisioning',
    ready: readyCondition(
      'False',
      REASON.Provisioning,
      namespaceActive ? 'waiting for the database' : 'waiting for the namespace',
    ),
  };
}

/**
 * Backup conditions do not make the tenant ready or not (a failed backup
 * does not take its namespace or database away): they stand beside Ready.
 * Those the backup step did not report this time are kept as they were.
 */
function backupConditions(
  previous: Condition[] | undefined,
  backup: BackupOutcome | undefined,
): ConditionInput[] {
  const reported = backup?.conditions ?? [];
  const kept = (previous ?? [])
    .filter((c) => BACKUP_CONDITIONS.includes(c.type))
    .filter((c) => !reported.some((r) => r.type === c.type))
    .map(({ type, status, reason, message }) => ({ type, status, reason, message }));
  return [...reported, ...kept];
}

export function computeStatus(input: StatusInput): TenantStatus {
  const { tenant, valid, namespace, database, now } = input;
  const steps =
    namespace.kind === 'ours'
      ? [namespaceCondition(valid, namespace), ...childConditions(valid), ...database.conditions]
      : [namespaceCondition(valid, namespace)];
  const { phase, ready } = phaseAndReady(input, steps);
  const status: TenantStatus = {
    ...tenant.status,
    ...(database.database ? { database: database.database } : {}),
    ...(database.vaultPath ? { vaultPath: database.vaultPath } : {}),
    ...input.backup?.fields,
    phase,
    observedGeneration: tenant.metadata.generation,
    conditions: mergeConditions(
      tenant.status?.conditions,
      [ready, ...steps, ...backupConditions(tenant.status?.conditions, input.backup)],
      tenant.metadata.generation,
      now,
    ),
  };
  // Status names the namespace only when it is the tenant's: a conflicting
  // one must not look like it belongs to the tenant to whoever reads status.
  if (namespace.kind === 'ours') status.namespace = valid.namespace;
  else delete status.namespace;
  if (valid.spec.state === 'Closed') {
    // The retention clock starts at the first reconcile that sees the closure
    // and is kept as absolute times, so restarts and long delays don't move it.
    // The annotation first: it survives a lost status (see ANNOTATION_CLOSED_AT).
    const closedAt = recordedClosedAt(tenant) ?? isoSeconds(now);
    status.closedAt = closedAt;
    status.purgeAfter = isoSeconds(purgeDueAfter(closedAt, valid.spec.retention.afterClosure));
    // Merged against the previous status, so an unchanged condition keeps its time.
    status.conditions = mergeConditions(
      tenant.status?.conditions,
      [
        ...(status.conditions ?? []),
        purgeCondition(valid, status.purgeAfter, tenant.metadata.deletionTimestamp !== undefined),
      ],
      tenant.metadata.generation,
      now,
    );
  } else {
    delete status.closedAt;
    delete status.purgeAfter;
  }
  return status;
}

/** When a closed tenant's data goes, or that a legal hold keeps it. */
function purgeCondition(valid: ValidTenant, purgeAfter: string, deleted: boolean): ConditionInput {
  const then = deleted ? ', then the deleted Tenant is released' : '';
  return valid.spec.retention.legalHold
    ? {
        type: CONDITION.PurgeScheduled,
        status: 'False',
        reason: REASON.LegalHold,
        message: `legal hold: nothing is erased while spec.retention.legalHold is true (due ${purgeAfter})`,
      }
    : {
        type: CONDITION.PurgeScheduled,
        status: 'True',
        reason: REASON.PurgeScheduled,
        message: `every trace of the tenant is erased at ${purgeAfter}${then}`,
      };
}

/** The status of a Tenant whose spec does not even parse: nothing else is known. */
export function unparsableSpecStatus(
  tenant: TenantObject,
  message: string,
  now: Date,
): TenantStatus {
  return {
    ...tenant.status,
    phase: 'Failed',
    observedGeneration: tenant.metadata.generation,
    conditions: mergeConditions(
      tenant.status?.conditions,
      [readyCondition('False', REASON.InvalidSpec, message)],
      tenant.metadata.generation,
      now,
    ),
  };
}

function readyOf(status: TenantStatus | undefined): Condition | undefined {
  return status?.conditions?.find((c) => c.type === CONDITION.Ready);
}

/** Reasons whose Warning is repeated for each distinct message (each is a different problem). */
const PER_MESSAGE_REASONS = new Set<string>([REASON.InvalidSpec, REASON.NamespaceConflict]);

/**
 * The Events for a status change. Told once each, not at every resync: a
 * phase reached, a failure that began (or, for a spec problem or conflict, a
 * new message), a degraded Ready tenant that recovered.
 */
export function statusEvents(before: TenantStatus | undefined, after: TenantStatus): StatusEvent[] {
  const events: StatusEvent[] = [];
  const phaseChanged = before?.phase !== after.phase;
  const readyBefore = readyOf(before);
  const readyAfter = readyOf(after);
  if (phaseChanged) {
    const entry: Partial<Record<TenantPhase, [string, string]>> = {
      Ready: [REASON.Provisioned, `tenant is ready in namespace ${after.namespace ?? ''}`],
      Suspended: ['Suspended', 'tenant suspended: all network traffic denied'],
      Closed: ['Closed', `tenant closed: access cut; data kept until ${after.purgeAfter ?? ''}`],
      Purging: ['Purging', 'erasing the tenant: every trace of it is being removed'],
      Purged: ['Purged', `tenant erased at ${after.erasure?.completedAt ?? ''}`],
    };
    const found = after.phase ? entry[after.phase] : undefined;
    if (found) events.push({ type: 'Normal', reason: found[0], message: found[1] });
  }
  if (readyAfter?.status === 'False' && FAILURE_REASONS.has(readyAfter.reason)) {
    const began =
      readyBefore?.status !== 'False' ||
      readyBefore.reason !== readyAfter.reason ||
      (PER_MESSAGE_REASONS.has(readyAfter.reason) && readyBefore.message !== readyAfter.message);
    if (began)
      events.push({ type: 'Warning', reason: readyAfter.reason, message: readyAfter.message });
  }
  if (
    !phaseChanged &&
    after.phase === 'Ready' &&
    readyBefore?.status === 'False' &&
    readyAfter?.status === 'True'
  ) {
    events.push({
      type: 'Normal',
      reason: REASON.Recovered,
      message: `tenant recovered from ${readyBefore.reason}: ${readyAfter.message}`,
    });
  }
  events.push(...backupEvents(before, after));
  return events;
}

function conditionOf(status: TenantStatus | undefined, type: string): Condition | undefined {
  return status?.conditions?.find((c) => c.type === type);
}

/** A condition that turned False, or stayed False with a new message (a new failure). */
function newFailure(
  before: TenantStatus | undefined,
  after: TenantStatus,
  type: string,
): Condition | undefined {
  const now = conditionOf(after, type);
  if (now?.status !== 'False') return undefined;
  const then = conditionOf(before, type);
  return then?.status === 'False' && then.message === now.message && then.reason === now.reason
    ? undefined
    : now;
}

/** One Event per backup stored, failed, verified or failing verification, and per key rotation. */
function backupEvents(before: TenantStatus | undefined, after: TenantStatus): StatusEvent[] {
  const events: StatusEvent[] = [];
  const last = after.lastBackup;
  if (last && last.id !== before?.lastBackup?.id)
    events.push({
      type: 'Normal',
      reason: REASON.BackupSucceeded,
      message: `backup ${last.id} stored in ${last.store ?? ''}: ${last.bytes ?? 0} bytes, key version ${last.keyVersion ?? ''}`,
    });
  const failed = newFailure(before, after, CONDITION.LastBackupSucceeded);
  if (failed)
    events.push({ type: 'Warning', reason: REASON.BackupFailed, message: failed.message });
  const storeMissing = newFailure(before, after, CONDITION.BackupScheduled);
  if (storeMissing?.reason === REASON.NoBackupStore)
    events.push({ type: 'Warning', reason: REASON.NoBackupStore, message: storeMissing.message });
  const verified = after.lastVerifiedBackup;
  if (
    verified &&
    (verified.id !== before?.lastVerifiedBackup?.id ||
      verified.time !== before.lastVerifiedBackup.time)
  )
    events.push({
      type: 'Normal',
      reason: REASON.Verified,
      message:
        conditionOf(after, CONDITION.BackupVerified)?.message ?? `backup ${verified.id} verified`,
    });
  const unverified = newFailure(before, after, CONDITION.BackupVerified);
  if (unverified)
    events.push({
      type: 'Warning',
      reason: REASON.VerificationFailed,
      message: unverified.message,
    });
  const version = after.backup?.transitKeyVersion;
  const previousVersion = before?.backup?.transitKeyVersion;
  if (version !== undefined && previousVersion !== undefined && version > previousVersion)
    events.push({
      type: 'Normal',
      reason: REASON.BackupKeyRotated,
      message: `backup key rotated to version ${version}: new backups use it, older versions still decrypt`,
    });
  return events;
}

/** Equal in content: key order and the order of conditions do not matter. */
export function sameStatus(a: TenantStatus | undefined, b: TenantStatus): boolean {
  const byType = (x: Condition, y: Condition) => x.type.localeCompare(y.type);
  const normalize = (status: TenantStatus) => ({
    ...status,
    conditions: [...(status.conditions ?? [])].sort(byType),
  });
  return isDeepStrictEqual(normalize(a ?? {}), normalize(b));
}
