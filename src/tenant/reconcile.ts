import { isoSeconds } from '../iso-time.ts';
import type { Logger } from 'pino';
import { ANNOTATION_CLOSED_AT, FINALIZER, LABEL_TENANT_UID } from '../api/constants.ts';
import { tenantSpecSchema, type TenantStatus } from '../api/tenant.ts';
import {
  DEFAULT_CERTIFICATE_RETENTION_MS,
  erasureRequested,
  PURGE_STEPS,
  purgeTenant,
} from './purge.ts';
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
import { ERROR_CODES, isNotFound, OperatorError, toOperatorError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { objectPath, RESOURCES, resourceFor } from '../k8s/resources.ts';
import { ServerAnswers } from '../k8s/server-answers.ts';
import type { KubeObject } from '../k8s/types.ts';
import type { Metrics } from '../metrics/registry.ts';
import { reconcileBackup, type BackupDeps } from './backup.ts';
import type { BackupOutcome } from './backup-status.ts';
import { cutTenantAccess } from './access-cut.ts';
import { purgeDueAfter, recordedClosedAt } from './retention-clock.ts';
import { createChild, syncChild, type ChildSyncDeps } from './child-sync.ts';
import { desiredChildren } from './children.ts';
import { platformEgress, withPlatformEgress, type EgressConfig } from './egress.ts';
import {
  databaseDisabled,
  reconcileDatabase,
  type DatabaseDeps,
  type DatabaseOutcome,
} from './database.ts';
import { namespaceFor, type TenantObject, type ValidTenant } from './model.ts';
import { isTenantNamespace } from './namespace.ts';
import {
  computeStatus,
  failureCondition,
  sameStatus,
  statusEvents,
  unparsableSpecStatus,
  type NamespaceState,
} from './status.ts';

// The reconcile of one Tenant: level-based, from the current state of the
// cluster, never from the event that woke it. Each run either converges or
// throws (and is retried with backoff); every write is skipped when the live
// object already says exactly what we want (child-sync.ts), so a resync of a
// settled tenant writes nothing, and anything someone added, changed or
// removed in what we own is put back.

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
  /** Absent when the operator runs no backups (no Vault, or --backup-image unset). */
  backup?: BackupDeps;
  /** How long an erasure certificate's copy is kept (default five years). */
  certificateRetentionMs?: number;
  /** Delete a Tenant closed by spec.state once it is erased; else it stays as the record. */
  deletePurgedTenants?: boolean;
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
/**
 * How often a tenant blocked by someone else's namespace looks again. That
 * namespace carries none of our labels, so no watch tells us it went away.
 */
const NAMESPACE_CONFLICT_POLL_MS = 30_000;

export async function reconcileTenant(deps: ReconcileDeps, name: string): Promise<ReconcileResult> {
  const tenant = deps.tenants.get(name);
  if (!tenant) return; // deleted: nothing left to do
  // `kubectl delete` is a closure: the finalizer holds the Tenant, closed
  // since its deletion (or its earlier closure), until its data is erased.
  const deleted = tenant.metadata.deletionTimestamp !== undefined;
  if (deleted && !tenant.metadata.finalizers?.includes(FINALIZER)) return;

  const parsed = tenantSpecSchema.safeParse(tenant.spec ?? {});
  if (!parsed.success) {
    const message =
      describeIssues(parsed.error, 'spec') +
      (deleted
        ? '; the deleted Tenant is held until its spec is valid: its retention and legal hold are read from it'
        : '');
    await updateStatus(deps, tenant, unparsableSpecStatus(tenant, message, now(deps)));
    return;
  }

  const spec = deleted ? { ...parsed.data, state: 'Closed' as const } : parsed.data;
  const current = await ensureClosedAt(
    deps,
    deleted ? tenant : await ensureFinalizer(deps, tenant),
    spec.state,
  );
  const valid: ValidTenant = {
    name,
    uid: tenant.metadata.uid ?? '',
    spec,
    namespace: namespaceFor(name),
  };
  // A purged tenant is only its record; a closed one past its time is purged.
  if (current.status?.erasure?.certificate) return afterErasure(deps, current, valid);
  if (valid.spec.state === 'Closed') {
    const due = erasureRequested(current) ? now(deps) : purgeDueAt(current, valid);
    const held = valid.spec.retention.legalHold;
    if (current.status?.erasure?.startedAt || (!held && due !== undefined && due <= now(deps))) {
      return purgeStep(deps, current, valid);
    }
  }

  const egress = await platformEgress(
    { egress: deps.egress, servers: deps.database?.servers },
    current,
  );
  const desired = desiredChildren(valid, {
    platform: egress.targets,
    forbidden: deps.egress.forbidden,
  });
  // Writes while provisioning or after a spec change are the plan; any
  // other write puts back what someone changed, and is counted as drift.
  const planned =
    current.status?.observedGeneration === undefined ||
    current.status.observedGeneration !== current.metadata.generation;

  // A deleted tenant's namespace is not made again once it is gone.
  const namespace = await ensureNamespace(deps, valid, desired.namespace, planned, !deleted);
  const namespaceActive = namespace.state.kind === 'ours' && namespace.state.phase === 'Active';
  // The database step reports failures in status before they are retried,
  // so `kubectl describe` shows why a tenant is not ready.
  let database: DatabaseOutcome = { ready: false, conditions: [] };
  let failure: unknown;
  // Inside a namespace that is not ours nothing is touched; in one that is
  // going away, children would go with it. Neither gets the database either:
  // its Vault role trusts the service accounts of that namespace.
  if (namespaceActive) {
    await syncChildren(
      deps,
      valid,
      desired.namespaced,
      planned || namespace.created,
      namespace.created,
    );
    try {
      database = await databaseStep(deps, current, valid);
    } catch (err: unknown) {
      failure = err;
      database = { ready: false, conditions: [failureCondition(CONDITION.DatabaseReady, err)] };
    }
  }
  // A closed tenant's access is cut by the database step; when its
  // namespace is gone or going (a deleted tenant, under foreground
  // deletion), that step does not run, and the cut is made here.
  if (!namespaceActive && valid.spec.state === 'Closed' && deps.database) {
    const { cut } = await cutTenantAccess(deps.database, current);
    if (cut.length > 0)
      await deps.events.record(
        current,
        'Normal',
        REASON.AccessCut,
        `tenant closed, access cut: ${cut.join('; ')}`,
      );
  }
  let backup: BackupOutcome | undefined;
  if (namespaceActive && deps.backup) {
    try {
      backup = await reconcileBackup(
        deps.backup,
        syncDeps(deps),
        current,
        valid,
        database.ready,
        planned,
        now(deps),
      );
    } catch (err: unknown) {
      failure ??= err;
      backup = { conditions: [failureCondition(CONDITION.BackupScheduled, err)], fields: {} };
    }
  }

  database = withPlatformEgress(database, egress, valid);
  const status = computeStatus({
    tenant: current,
    valid,
    namespace: namespace.state,
    database,
    backup,
    specProblems: desired.specProblems ?? [],
    now: now(deps),
  });
  await updateStatus(deps, current, status);
  if (failure !== undefined) throw toOperatorError(failure);
  const requeues = [
    namespace.state.kind === 'conflict'
      ? NAMESPACE_CONFLICT_POLL_MS
      : namespaceActive || namespace.state.kind === 'absent'
        ? undefined
        : NAMESPACE_DELETION_POLL_MS,
    database.requeueAfterMs,
    backup?.requeueAfterMs,
    closedPurgeWait(current, valid, now(deps)),
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

/** When a closed tenant's data is due for erasure, from its recorded closure. */
function purgeDueAt(tenant: TenantObject, valid: ValidTenant): Date | undefined {
  const closedAt = recordedClosedAt(tenant);
  return closedAt === undefined
    ? undefined
    : purgeDueAfter(closedAt, valid.spec.retention.afterClosure);
}

/**
 * How long until a closed tenant's purge is due: the queue wakes it then
 * (timers longer than Node's 24.8-day limit are re-armed in steps by the
 * queue, so a 60-day clock never fires on day 0). Held: no wake-up.
 */
function closedPurgeWait(tenant: TenantObject, valid: ValidTenant, at: Date): number | undefined {
  if (valid.spec.state !== 'Closed' || valid.spec.retention.legalHold) return undefined;
  const due = purgeDueAt(tenant, valid);
  return due === undefined ? undefined : Math.max(0, due.getTime() - at.getTime());
}

async function purgeStep(
  deps: ReconcileDeps,
  tenant: TenantObject,
  valid: ValidTenant,
): Promise<ReconcileResult> {
  let latest = tenant;
  const record = async (erasure: NonNullable<TenantStatus['erasure']>) => {
    const done = (erasure.steps ?? []).map((s) => s.name);
    const purged = erasure.completedAt !== undefined && erasure.certificate !== undefined;
    latest = await updateStatusReturning(
      deps,
      latest,
      erasureStatus(
        latest,
        erasure,
        purged
          ? {
              type: CONDITION.Ready,
              status: 'False',
              reason: REASON.Purged,
              message: `erased at ${erasure.completedAt ?? ''}: ${done.join(', ')}`,
            }
          : {
              type: CONDITION.Ready,
              status: 'False',
              reason: REASON.Purging,
              message: `erasing${done.length > 0 ? `; done: ${done.join(', ')}` : ''}`,
            },
        now(deps),
      ),
    );
  };
  try {
    if (!deps.database || !deps.backup)
      throw new OperatorError(
        ERROR_CODES.INVALID_SPEC,
        'the purge needs the operator to have Vault (VAULT_ADDR) and backups configured',
      );
    const progress = await purgeTenant(
      {
        client: deps.client,
        database: deps.database,
        backup: deps.backup,
        transit: deps.backup.vault.transit,
        certificateRetentionMs: deps.certificateRetentionMs ?? DEFAULT_CERTIFICATE_RETENTION_MS,
        events: deps.events,
        log: deps.log,
      },
      latest,
      valid,
      () => now(deps),
      record,
    );
    if (progress.requeueAfterMs !== undefined) {
      if (progress.waiting !== undefined) {
        const done = (progress.erasure.steps ?? []).map((s) => s.name);
        await updateStatus(
          deps,
          latest,
          erasureStatus(
            latest,
            progress.erasure,
            {
              type: CONDITION.Ready,
              status: 'False',
              reason: REASON.Purging,
              message: `erasing; done: ${done.join(', ')}; waiting: ${progress.waiting}`,
            },
            now(deps),
          ),
        );
      }
      return { requeueAfterMs: progress.requeueAfterMs };
    }
    deps.metrics.purgesCompleted.inc();
    return;
  } catch (err: unknown) {
    // Status says where the erasure stopped and why (the phase stays
    // Purging: nothing is reported done while anything is left); the queue
    // retries with backoff, and the tenant counts as overdue once past due.
    const stoppedAt = nextPurgeStep(latest.status?.erasure);
    const failure = toOperatorError(err);
    await updateStatus(
      deps,
      latest,
      erasureStatus(
        latest,
        latest.status?.erasure ?? { trigger: 'RetentionExpired', steps: [] },
        {
          type: CONDITION.Ready,
          status: 'False',
          reason: REASON.PurgeBlocked,
          message: `erasure stopped at step ${stoppedAt}: ${failure.message}; retrying with backoff`,
        },
        now(deps),
      ),
    ).catch((statusErr: unknown) =>
      deps.log.warn(
        { tenant: valid.name, err: statusErr },
        'could not record why the purge stopped',
      ),
    );
    throw failure;
  }
}

/** The first purge step status does not record as done ('certificate' once all are). */
function nextPurgeStep(erasure: TenantStatus['erasure']): string {
  const done = new Set((erasure?.steps ?? []).map((s) => s.name));
  return PURGE_STEPS.find((step) => !done.has(step)) ?? 'certificate';
}

/** The status of a tenant being erased: its erasure record and the Ready condition that tells it. */
function erasureStatus(
  tenant: TenantObject,
  erasure: NonNullable<TenantStatus['erasure']>,
  ready: ConditionInput,
  at: Date,
): TenantStatus {
  return {
    ...tenant.status,
    // Purged once the proof exists too: certificate signed and kept.
    phase: erasure.completedAt && erasure.certificate ? 'Purged' : 'Purging',
    observedGeneration: tenant.metadata.generation,
    erasure,
    conditions: mergeConditions(tenant.status?.conditions, [ready], tenant.metadata.generation, at),
  };
}

/**
 * After the erasure: a deleted Tenant is let go (its finalizer removed);
 * one closed by spec.state stays as the record of its erasure, or is
 * deleted when the operator is configured so (--purged-tenants delete).
 * Re-opening a purged tenant is refused.
 */
async function afterErasure(
  deps: ReconcileDeps,
  tenant: TenantObject,
  valid: ValidTenant,
): Promise<ReconcileResult> {
  if (tenant.metadata.deletionTimestamp) return releaseTenant(deps, tenant);
  if (deps.deletePurgedTenants) {
    // Preconditioned on the uid: never a Tenant of the same name made since.
    await deps.client
      .request('DELETE', objectPath(RESOURCES.Tenant, valid.name), {
        body: { preconditions: { uid: valid.uid } },
      })
      .catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
    deps.log.info({ tenant: valid.name }, 'erased tenant deleted (--purged-tenants delete)');
    return;
  }
  if (valid.spec.state === 'Closed') return;
  const message = `tenant was erased at ${tenant.status?.erasure?.completedAt ?? ''} and cannot be re-opened: set spec.state back to Closed, or create a Tenant of another name`;
  await updateStatus(deps, tenant, {
    ...tenant.status,
    conditions: mergeConditions(
      tenant.status?.conditions,
      [{ type: CONDITION.Ready, status: 'False', reason: REASON.InvalidSpec, message }],
      tenant.metadata.generation,
      now(deps),
    ),
  });
}

/** Removes our finalizer from an erased, deleted Tenant: the API server then lets it go. */
async function releaseTenant(deps: ReconcileDeps, tenant: TenantObject): Promise<ReconcileResult> {
  const finalizers = tenant.metadata.finalizers ?? [];
  const index = finalizers.indexOf(FINALIZER);
  if (index < 0) return;
  try {
    await deps.client.jsonPatch(objectPath(RESOURCES.Tenant, tenant.metadata.name), [
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
    REASON.Released,
    `tenant erased at ${tenant.status?.erasure?.completedAt ?? ''} and released; its certificate is kept at ${tenant.status?.erasure?.certificate?.copies || 'no store (status only)'}`,
  );
}

function now(deps: ReconcileDeps): Date {
  return deps.now?.() ?? new Date();
}

/** Per operator: what the API server answered to our writes (see ServerAnswers). */
const serverAnswers = new WeakMap<ReconcileDeps, ServerAnswers>();

function syncDeps(deps: ReconcileDeps): ChildSyncDeps {
  let answers = serverAnswers.get(deps);
  if (!answers) {
    answers = new ServerAnswers();
    serverAnswers.set(deps, answers);
  }
  return { client: deps.client, metrics: deps.metrics, log: deps.log, answers };
}

interface NamespaceResult {
  state: NamespaceState;
  /** Created by this reconcile: nothing can be inside it yet. */
  created: boolean;
}

function namespacePhase(namespace: KubeObject): string | undefined {
  return (namespace.status as { phase?: string } | undefined)?.phase;
}

/**
 * The tenant's namespace: created if missing, kept exactly as built if ours,
 * and left alone if it is anyone else's (reported as a conflict).
 */
async function ensureNamespace(
  deps: ReconcileDeps,
  tenant: ValidTenant,
  desired: KubeObject,
  planned: boolean,
  mayCreate: boolean,
): Promise<NamespaceResult> {
  const name = desired.metadata.name;
  // The cache holds every namespace, ours or not (a new tenant's is known
  // absent without asking); one made since that the watch has not brought
  // yet fails our create, and the retry sees it.
  const live = deps.namespaces.get(name);
  if (!live && !mayCreate) return { state: { kind: 'absent' }, created: false };
  if (!live) {
    const created = await createChild(syncDeps(deps), desired, planned);
    deps.namespaces.upsert(created);
    return { state: { kind: 'ours', phase: namespacePhase(created) }, created: true };
  }
  if (!isTenantNamespace(live, tenant.uid)) {
    if (live.metadata.deletionTimestamp) {
      return {
        state: {
          kind: 'foreign-terminating',
          message: `namespace ${name} of an earlier owner is being deleted; the tenant's own comes after`,
        },
        created: false,
      };
    }
    const otherUid = live.metadata.labels?.[LABEL_TENANT_UID];
    return {
      state: {
        kind: 'conflict',
        message:
          `namespace ${name} exists and was not created for this Tenant ` +
          (otherUid
            ? `(it belongs to another Tenant, uid ${otherUid})`
            : `(no ${LABEL_TENANT_UID} label for uid ${tenant.uid})`) +
          '; it is left untouched: remove it, or give the tenant another name',
      },
      created: false,
    };
  }
  const synced = await syncChild(syncDeps(deps), desired, live, planned);
  if (synced !== live) deps.namespaces.upsert(synced);
  return { state: { kind: 'ours', phase: namespacePhase(synced) }, created: false };
}

/**
 * Every child inside the namespace exactly as built; then removes ours that
 * are no longer called for.
 *
 * In a namespace this reconcile has just created, the isolation (network
 * policies, quota, limits) is written all at once, and the owners'
 * RoleBinding only after all of it is there: no one but the operator can be
 * in the namespace before that binding, so the order among the others
 * cannot open anything, and a new tenant waits for two round trips instead
 * of six or seven. Anywhere else the children are synced one after another, in
 * order: a repair or a change of state (a suspension, a closure) tightens
 * the policies before it touches access.
 */
async function syncChildren(
  deps: ReconcileDeps,
  tenant: ValidTenant,
  children: KubeObject[],
  planned: boolean,
  namespaceJustCreated: boolean,
): Promise<void> {
  const syncOne = async (child: KubeObject): Promise<void> => {
    const informer = deps.children[child.kind as ChildKind];
    // Missing from the cache is not missing: the cache holds only objects
    // with our labels, and those may be what was removed. In a namespace
    // this reconcile has just created there is nothing to look for.
    const cached = informer.get(child.metadata.name, child.metadata.namespace);
    const live =
      cached ??
      (namespaceJustCreated
        ? undefined
        : await deps.client.get<KubeObject>(
            objectPath(
              resourceFor(child.apiVersion, child.kind),
              child.metadata.name,
              tenant.namespace,
            ),
          ));
    const synced = await syncChild(syncDeps(deps), child, live, planned);
    if (synced !== live) informer.upsert(synced);
  };
  if (namespaceJustCreated) {
    const access = children.filter((child) => child.kind === 'RoleBinding');
    const isolation = children.filter((child) => child.kind !== 'RoleBinding');
    const written = await Promise.allSettled(isolation.map(syncOne));
    const failed = written.find((result) => result.status === 'rejected');
    if (failed) throw failed.reason;
    for (const child of access) await syncOne(child);
  } else {
    for (const child of children) await syncOne(child);
  }
  await pruneChildren(
    deps,
    tenant,
    new Set(children.map((child) => `${child.kind}/${child.metadata.name}`)),
  );
}

/**
 * Removes what carries our labels in the tenant's namespace and is not
 * called for by its current state. The namespace is wholly ours, so this
 * goes by namespace, not by the tenant label: an allow-all policy labelled
 * as another tenant's must not survive here.
 */
async function pruneChildren(
  deps: ReconcileDeps,
  tenant: ValidTenant,
  keep: Set<string>,
): Promise<void> {
  for (const kind of CHILD_KINDS) {
    for (const child of deps.children[kind].inNamespace(tenant.namespace)) {
      if (keep.has(`${kind}/${child.metadata.name}`)) continue;
      const type = resourceFor(child.apiVersion, child.kind);
      await deps.client.delete(objectPath(type, child.metadata.name, child.metadata.namespace));
      deps.log.info({ tenant: tenant.name, kind, name: child.metadata.name }, 'removed child');
    }
  }
}

/** Patches status with an optimistic lock, and only when something changed; then tells the change. */
async function updateStatus(
  deps: ReconcileDeps,
  tenant: TenantObject,
  next: TenantStatus,
): Promise<void> {
  await updateStatusReturning(deps, tenant, next);
}

/** updateStatus, answering the Tenant as the server now has it. */
async function updateStatusReturning(
  deps: ReconcileDeps,
  tenant: TenantObject,
  next: TenantStatus,
): Promise<TenantObject> {
  if (sameStatus(tenant.status, next)) return tenant;
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
  for (const event of statusEvents(tenant.status, next))
    await deps.events.record(tenant, event.type, event.reason, event.message);
  return updated;
}

/** `metadata.annotations` keys are JSON-pointer escaped: '/' is '~1'. */
const CLOSED_AT_POINTER = `/metadata/annotations/${ANNOTATION_CLOSED_AT.replace(/~/g, '~0').replace(/\//g, '~1')}`;

/**
 * The closure time, in the Tenant's own metadata while it is Closed (see
 * ANNOTATION_CLOSED_AT): taken from the annotation if there, else from
 * status, else now; removed when the tenant is re-opened. Guarded by the
 * resourceVersion like the finalizer, and touching no other annotation.
 * A deleted Tenant may still be annotated: only new finalizers are refused.
 */
async function ensureClosedAt(
  deps: ReconcileDeps,
  tenant: TenantObject,
  state: string,
): Promise<TenantObject> {
  const annotations = tenant.metadata.annotations;
  const live = annotations?.[ANNOTATION_CLOSED_AT];
  // A value that is not a time (a hand edit) is replaced, never trusted.
  // A deleted tenant was closed when it was deleted, unless it was closed before.
  const since = tenant.metadata.deletionTimestamp ?? isoSeconds(now(deps));
  const wanted = state === 'Closed' ? (recordedClosedAt(tenant) ?? since) : undefined;
  if (live === wanted) return tenant;
  const test = {
    op: 'test',
    path: '/metadata/resourceVersion',
    value: tenant.metadata.resourceVersion,
  };
  const change =
    wanted === undefined
      ? { op: 'remove', path: CLOSED_AT_POINTER }
      : annotations
        ? { op: 'add', path: CLOSED_AT_POINTER, value: wanted }
        : { op: 'add', path: '/metadata/annotations', value: { [ANNOTATION_CLOSED_AT]: wanted } };
  const updated = await deps.client.jsonPatch<TenantObject>(
    objectPath(RESOURCES.Tenant, tenant.metadata.name),
    [test, change],
  );
  deps.tenants.upsert(updated);
  return updated;
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
