import { isDeepStrictEqual } from 'node:util';
import type { Logger } from 'pino';
import { FINALIZER, LABEL_TENANT } from '../api/constants.ts';
import type { Condition } from '../api/common.ts';
import { durationToMs } from '../api/duration.ts';
import { tenantSpecSchema, type TenantPhase, type TenantStatus } from '../api/tenant.ts';
import { describeIssues } from '../api/validate.ts';
import {
  CONDITION,
  REASON,
  mergeConditions,
  type ConditionInput,
} from '../controller/conditions.ts';
import type { EventRecorder } from '../controller/events.ts';
import type { Informer } from '../controller/informer.ts';
import type { ReconcileResult } from '../controller/queue.ts';
import { isNotFound, toOperatorError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { objectPath, RESOURCES, resourceFor } from '../k8s/resources.ts';
import { isSubset } from '../k8s/subset.ts';
import { objectKey, type KubeObject } from '../k8s/types.ts';
import type { Metrics } from '../metrics/registry.ts';
import { desiredChildren } from './children.ts';
import { platformEgress, withPlatformEgress, type EgressConfig } from './egress.ts';
import {
  databaseDisabled,
  reconcileDatabase,
  type DatabaseDeps,
  type DatabaseOutcome,
} from './database.ts';
import { namespaceFor, type TenantObject, type ValidTenant } from './model.ts';

// The reconcile of one Tenant: level-based, from the current state of the
// cluster, never from the event that woke it. Each run either converges or
// throws (and is retried with backoff); every write is skipped when the live
// object already says what we want, so a resync of a settled tenant writes
// nothing.

export type ChildKind = 'NetworkPolicy' | 'RoleBinding' | 'ResourceQuota' | 'LimitRange';
export const CHILD_KINDS: ChildKind[] = [
  'NetworkPolicy',
  'RoleBinding',
  'ResourceQuota',
  'LimitRange',
];

export interface ReconcileDeps {
  /** How tenants' egress rules are made: forbidden ranges, Vault, host name resolution. */
  egress: EgressConfig;
  /** Absent when the operator has no Vault: tenants that want a database wait. */
  database?: DatabaseDeps;
  client: KubeClient;
  tenants: Informer<TenantObject>;
  namespaces: Informer<KubeObject>;
  children: Record<ChildKind, Informer<KubeObject>>;
  events: EventRecorder;
  metrics: Metrics;
  log: Logger;
  now?: () => Date;
}

/** How long to wait before looking again at a namespace that is being deleted. */
const NAMESPACE_DELETION_POLL_MS = 2_000;

export async function reconcileTenant(deps: ReconcileDeps, name: string): Promise<ReconcileResult> {
  const tenant = deps.tenants.get(name);
  if (!tenant) return; // deleted: nothing left to do
  if (tenant.metadata.deletionTimestamp) return finalizeTenant(deps, tenant);

  const parsed = tenantSpecSchema.safeParse(tenant.spec ?? {});
  if (!parsed.success) {
    const message = describeIssues(parsed.error, 'spec');
    await updateStatus(deps, tenant, {
      ...tenant.status,
      phase: 'Failed',
      observedGeneration: tenant.metadata.generation,
      conditions: mergeConditions(
        tenant.status?.conditions,
        [{ type: CONDITION.Ready, status: 'False', reason: REASON.InvalidSpec, message }],
        tenant.metadata.generation,
        now(deps),
      ),
    });
    return;
  }

  const current = await ensureFinalizer(deps, tenant);
  const valid: ValidTenant = {
    name,
    uid: tenant.metadata.uid ?? '',
    spec: parsed.data,
    namespace: namespaceFor(name),
  };
  const egress = await platformEgress(
    { egress: deps.egress, servers: deps.database?.servers },
    current,
  );
  const desired = desiredChildren(valid, {
    platform: egress.targets,
    forbidden: deps.egress.forbidden,
  });
  const firstRun = tenant.status?.observedGeneration === undefined;

  const namespace = await applyIfChanged(deps, desired.namespace, firstRun);
  const applied = new Set<string>();
  for (const child of desired.namespaced) {
    await applyIfChanged(deps, child, firstRun);
    applied.add(`${child.kind}/${child.metadata.name}`);
  }
  await pruneChildren(deps, valid, applied);

  // The database step reports failures in status before they are retried,
  // so `kubectl describe` shows why a tenant is not ready.
  let database: DatabaseOutcome;
  let failure: unknown;
  try {
    database = await databaseStep(deps, current, valid);
  } catch (err: unknown) {
    failure = err;
    database = {
      ready: false,
      conditions: [
        {
          type: CONDITION.DatabaseReady,
          status: 'False',
          reason: REASON.DatabaseError,
          message: toOperatorError(err).message,
        },
      ],
    };
  }

  database = withPlatformEgress(database, egress, valid);
  const status = computeStatus(deps, current, valid, namespace, database);
  if (desired.specProblems) refuseSpecProblems(deps, current, status, desired.specProblems);
  await updateStatus(deps, current, status);
  if (failure !== undefined) throw toOperatorError(failure);
  const namespaceActive = (namespace.status as { phase?: string } | undefined)?.phase === 'Active';
  const requeues = [
    namespaceActive ? undefined : NAMESPACE_DELETION_POLL_MS,
    database.requeueAfterMs,
  ].filter((ms): ms is number => ms !== undefined);
  return requeues.length > 0 ? { requeueAfterMs: Math.min(...requeues) } : undefined;
}

async function databaseStep(
  deps: ReconcileDeps,
  tenant: TenantObject,
  valid: ValidTenant,
): Promise<DatabaseOutcome> {
  if (deps.database) return reconcileDatabase(deps.database, tenant, valid, now(deps));
  if (!valid.spec.database.enabled) return databaseDisabled();
  return {
    ready: false,
    conditions: [
      {
        type: CONDITION.DatabaseReady,
        status: 'False',
        reason: REASON.VaultNotConfigured,
        message:
          'the operator has no Vault configured (VAULT_ADDR), so it cannot keep database credentials',
      },
    ],
  };
}

/**
 * Parts of the spec the operator refused (the rest is applied): the tenant
 * is not Ready, and says why in terms of its fields.
 */
function refuseSpecProblems(
  deps: ReconcileDeps,
  tenant: TenantObject,
  status: TenantStatus,
  problems: string[],
): void {
  status.phase = 'Failed';
  // Merged against the stored conditions, so an unchanged refusal keeps its
  // lastTransitionTime and a resync writes nothing.
  const ready = mergeConditions(
    tenant.status?.conditions,
    [
      {
        type: CONDITION.Ready,
        status: 'False',
        reason: REASON.InvalidSpec,
        message: problems.join('; '),
      },
    ],
    tenant.metadata.generation,
    now(deps),
  );
  status.conditions = [
    ...(status.conditions ?? []).filter((c) => c.type !== CONDITION.Ready),
    ...ready,
  ];
}

function now(deps: ReconcileDeps): Date {
  return deps.now?.() ?? new Date();
}

function informerFor(deps: ReconcileDeps, object: KubeObject): Informer<KubeObject> {
  if (object.kind === 'Namespace') return deps.namespaces;
  return deps.children[object.kind as ChildKind];
}

/**
 * Server-side applies `desired` unless the cached live object already contains
 * it. A difference on an object we applied before is drift: counted and told.
 */
async function applyIfChanged(
  deps: ReconcileDeps,
  desired: KubeObject,
  firstRun: boolean,
): Promise<KubeObject> {
  const informer = informerFor(deps, desired);
  const live = informer.get(objectKey(desired));
  if (live && isSubset(desired, live)) return live;
  const result = await deps.client.apply(desired);
  informer.upsert(result);
  if (!firstRun) {
    deps.metrics.driftRepairs.inc({ kind: desired.kind });
    deps.log.info(
      {
        tenant: desired.metadata.labels?.[LABEL_TENANT],
        kind: desired.kind,
        name: desired.metadata.name,
        existed: Boolean(live),
      },
      'applied child',
    );
  }
  return result;
}

/** Removes children of ours that the tenant's current state no longer calls for. */
async function pruneChildren(
  deps: ReconcileDeps,
  tenant: ValidTenant,
  keep: Set<string>,
): Promise<void> {
  for (const kind of CHILD_KINDS) {
    for (const child of deps.children[kind].list()) {
      if (child.metadata.namespace !== tenant.namespace) continue;
      if (child.metadata.labels?.[LABEL_TENANT] !== tenant.name) continue;
      if (keep.has(`${kind}/${child.metadata.name}`)) continue;
      const type = resourceFor(child.apiVersion, child.kind);
      await deps.client.delete(objectPath(type, child.metadata.name, child.metadata.namespace));
      deps.log.info({ tenant: tenant.name, kind, name: child.metadata.name }, 'removed child');
    }
  }
}

function computeStatus(
  deps: ReconcileDeps,
  tenant: TenantObject,
  valid: ValidTenant,
  namespace: KubeObject,
  database: DatabaseOutcome,
): TenantStatus {
  const state = valid.spec.state;
  const nsPhase = (namespace.status as { phase?: string } | undefined)?.phase;
  const conditions: ConditionInput[] = [
    nsPhase === 'Active'
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
          message: `namespace ${valid.namespace} is ${nsPhase ?? 'not ready'}`,
        },
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
  conditions.push(...database.conditions);
  const provisioned = nsPhase === 'Active' && database.ready;
  let phase: TenantPhase;
  let ready: ConditionInput;
  if (state === 'Suspended') {
    phase = 'Suspended';
    ready = {
      type: CONDITION.Ready,
      status: 'False',
      reason: REASON.Suspended,
      message: 'tenant is suspended',
    };
  } else if (state === 'Closed') {
    phase = 'Closed';
    ready = {
      type: CONDITION.Ready,
      status: 'False',
      reason: REASON.Closed,
      message: 'tenant is closed',
    };
  } else if (provisioned) {
    phase = 'Ready';
    ready = {
      type: CONDITION.Ready,
      status: 'True',
      reason: REASON.Reconciled,
      message: 'tenant is provisioned and isolated',
    };
  } else {
    phase = 'Provisioning';
    ready = {
      type: CONDITION.Ready,
      status: 'False',
      reason: REASON.Provisioning,
      message: nsPhase === 'Active' ? 'waiting for the database' : 'waiting for the namespace',
    };
  }

  const status: TenantStatus = {
    ...tenant.status,
    ...(database.database ? { database: database.database } : {}),
    ...(database.vaultPath ? { vaultPath: database.vaultPath } : {}),
    phase,
    observedGeneration: tenant.metadata.generation,
    namespace: valid.namespace,
    conditions: mergeConditions(
      tenant.status?.conditions,
      [ready, ...conditions],
      tenant.metadata.generation,
      now(deps),
    ),
  };
  if (state === 'Closed') {
    // The retention clock starts at the first reconcile that sees the closure
    // and is kept as absolute times, so restarts and long delays don't move it.
    const closedAt =
      tenant.status?.closedAt ??
      now(deps)
        .toISOString()
        .replace(/\.\d+Z$/, 'Z');
    status.closedAt = closedAt;
    status.purgeAfter = new Date(
      Date.parse(closedAt) + durationToMs(valid.spec.retention.afterClosure),
    )
      .toISOString()
      .replace(/\.\d+Z$/, 'Z');
  } else {
    delete status.closedAt;
    delete status.purgeAfter;
  }
  return status;
}

/** Events for the transitions between the previous and the next status. */
async function recordTransitions(
  deps: ReconcileDeps,
  tenant: TenantObject,
  next: TenantStatus,
): Promise<void> {
  const before = tenant.status?.phase;
  if (before === next.phase) return;
  const reasonFor: Partial<Record<TenantPhase, [string, string]>> = {
    Ready: ['Provisioned', `tenant is ready in namespace ${next.namespace ?? ''}`],
    Suspended: ['Suspended', 'tenant suspended: all network traffic denied'],
    Closed: ['Closed', `tenant closed: access cut; data kept until ${next.purgeAfter ?? ''}`],
    Purging: ['Deleting', 'tenant deleted: removing its namespace'],
  };
  if (next.phase === 'Failed') {
    const message =
      next.conditions?.find((c) => c.type === CONDITION.Ready)?.message ?? 'invalid spec';
    await deps.events.record(tenant, 'Warning', REASON.InvalidSpec, message);
    return;
  }
  const entry = next.phase ? reasonFor[next.phase] : undefined;
  if (entry) await deps.events.record(tenant, 'Normal', entry[0], entry[1]);
}

/** Equal in content: key order and the order of conditions do not matter. */
function sameStatus(a: TenantStatus | undefined, b: TenantStatus): boolean {
  const byType = (x: Condition, y: Condition) => x.type.localeCompare(y.type);
  const normalize = (status: TenantStatus) => ({
    ...status,
    conditions: [...(status.conditions ?? [])].sort(byType),
  });
  return isDeepStrictEqual(normalize(a ?? {}), normalize(b));
}

/** Patches status with an optimistic lock, and only when something changed. */
async function updateStatus(
  deps: ReconcileDeps,
  tenant: TenantObject,
  next: TenantStatus,
): Promise<void> {
  if (sameStatus(tenant.status, next)) return;
  const cleared = Object.fromEntries(
    Object.keys(tenant.status ?? {})
      .filter((key) => !(key in next))
      .map((key) => [key, null]),
  );
  const updated = await deps.client.mergePatch<TenantObject>(
    `${objectPath(RESOURCES.Tenant, tenant.metadata.name)}/status`,
    {
      metadata: { resourceVersion: tenant.metadata.resourceVersion },
      status: { ...cleared, ...next },
    },
  );
  deps.tenants.upsert(updated);
  await recordTransitions(deps, tenant, next);
}

async function ensureFinalizer(deps: ReconcileDeps, tenant: TenantObject): Promise<TenantObject> {
  const finalizers = tenant.metadata.finalizers;
  if (finalizers?.includes(FINALIZER)) return tenant;
  // A JSON patch that appends, guarded by the resourceVersion: never replaces
  // the finalizers other controllers put there.
  const path = objectPath(RESOURCES.Tenant, tenant.metadata.name);
  const updated = await deps.client.jsonPatch<TenantObject>(path, [
    { op: 'test', path: '/metadata/resourceVersion', value: tenant.metadata.resourceVersion },
    finalizers
      ? { op: 'add', path: '/metadata/finalizers/-', value: FINALIZER }
      : { op: 'add', path: '/metadata/finalizers', value: [FINALIZER] },
  ]);
  deps.tenants.upsert(updated);
  return updated;
}

/**
 * A deleted Tenant: remove its namespace, wait until it is really gone, then
 * let the Tenant go. Until the retention timer exists, deletion is immediate.
 */
async function finalizeTenant(deps: ReconcileDeps, tenant: TenantObject): Promise<ReconcileResult> {
  const finalizers = tenant.metadata.finalizers ?? [];
  const index = finalizers.indexOf(FINALIZER);
  if (index < 0) return;
  const name = tenant.metadata.name;
  const namespaceName = namespaceFor(name);

  if (tenant.status?.phase !== 'Purging') {
    await updateStatus(deps, tenant, {
      ...tenant.status,
      phase: 'Purging',
      conditions: mergeConditions(
        tenant.status?.conditions,
        [
          {
            type: CONDITION.Ready,
            status: 'False',
            reason: REASON.Deleting,
            message: 'tenant is being deleted',
          },
        ],
        tenant.metadata.generation,
        now(deps),
      ),
    });
    return { requeueAfterMs: 0 };
  }

  const namespacePath = objectPath(RESOURCES.Namespace, namespaceName);
  const namespace = await deps.client.get<KubeObject>(namespacePath);
  if (namespace) {
    if (!namespace.metadata.deletionTimestamp) {
      await deps.client.delete(namespacePath);
      deps.log.info({ tenant: name, namespace: namespaceName }, 'deleting namespace');
    }
    return { requeueAfterMs: NAMESPACE_DELETION_POLL_MS };
  }

  try {
    await deps.client.jsonPatch(objectPath(RESOURCES.Tenant, name), [
      { op: 'test', path: `/metadata/finalizers/${index}`, value: FINALIZER },
      { op: 'remove', path: `/metadata/finalizers/${index}` },
    ]);
  } catch (err: unknown) {
    // Gone already: someone else finished the job. Anything else (a changed
    // finalizer list fails the test op) is retried with backoff, and logged.
    if (isNotFound(err)) return;
    throw err;
  }
  await deps.events.record(
    tenant,
    'Normal',
    'Deleted',
    `namespace ${namespaceName} is gone; tenant released`,
  );
  return;
}
