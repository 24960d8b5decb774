import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

// One private registry, every name under tenant_operator_, so the operator's
// metrics never collide with a library's and a scrape shows only ours.

const PREFIX = 'tenant_operator_';

/** What a tenant's status says about its backups, read at scrape time. */
export interface TenantBackupFacts {
  tenant: string;
  /** Seconds since the epoch: when the latest good backup's data is from. */
  lastSuccess?: number | undefined;
  lastBytes?: number | undefined;
  lastDurationSeconds?: number | undefined;
  failuresSinceSuccess?: number | undefined;
  lastVerified?: number | undefined;
  /** 1: the latest verification passed; 0: it failed; absent: none yet. */
  verified?: 0 | 1 | undefined;
}

/** Where a tenant stands on its way to erasure, read at scrape time. */
export interface TenantErasureFacts {
  tenant: string;
  /** Seconds since the epoch: when its data is due for erasure (closed, not yet erased). */
  purgeDue?: number | undefined;
  legalHold: boolean;
  purged: boolean;
}

/** A purge not done this long after it was due counts as overdue (and alerts). */
export const PURGE_OVERDUE_GRACE_SECONDS = 3600;

export interface MetricSources {
  /** The phase of every known tenant. */
  tenantPhases?: () => Iterable<string>;
  /** Backup facts of every tenant that has backups. */
  tenantBackups?: () => Iterable<TenantBackupFacts>;
  /** Erasure facts of every closed or erased tenant. */
  tenantErasures?: () => Iterable<TenantErasureFacts>;
}

/** A gauge per tenant, filled at scrape time from `facts`. */
function perTenantGauge(
  registry: Registry,
  name: string,
  help: string,
  facts: () => Iterable<TenantBackupFacts>,
  value: (fact: TenantBackupFacts) => number | undefined,
) {
  return new Gauge({
    name: `${PREFIX}${name}`,
    help,
    labelNames: ['tenant'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const fact of facts()) {
        const v = value(fact);
        if (v !== undefined) this.set({ tenant: fact.tenant }, v);
      }
    },
  });
}

export function createMetrics(sources: MetricSources = {}) {
  const tenantPhases = sources.tenantPhases ?? (() => []);
  const tenantBackups = sources.tenantBackups ?? (() => []);
  const tenantErasures = sources.tenantErasures ?? (() => []);
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: PREFIX });
  const metric = { registers: [registry] };
  return {
    registry,
    reconcileTotal: new Counter({
      name: `${PREFIX}reconcile_total`,
      help: 'Tenant reconciles, by result (success, error, requeue).',
      labelNames: ['result'] as const,
      ...metric,
    }),
    reconcileDuration: new Histogram({
      name: `${PREFIX}reconcile_duration_seconds`,
      help: 'Time one tenant reconcile took.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      ...metric,
    }),
    queueDepth: new Gauge({
      name: `${PREFIX}queue_depth`,
      help: 'Tenants waiting to be reconciled.',
      ...metric,
    }),
    tenants: new Gauge({
      name: `${PREFIX}tenants`,
      help: 'Tenants by status phase.',
      labelNames: ['phase'] as const,
      collect() {
        this.reset();
        // Counted here, set once per phase: a labelled inc() per tenant
        // cost ten thousand label lookups a scrape.
        const counts = new Map<string, number>();
        for (const phase of tenantPhases()) counts.set(phase, (counts.get(phase) ?? 0) + 1);
        for (const [phase, count] of counts) this.set({ phase }, count);
      },
      ...metric,
    }),
    apiRequests: new Counter({
      name: `${PREFIX}api_requests_total`,
      help: 'Requests to the Kubernetes API, by method and HTTP status code.',
      labelNames: ['method', 'code'] as const,
      ...metric,
    }),
    apiWrites: new Counter({
      name: `${PREFIX}api_writes_total`,
      help: 'Requests to the Kubernetes API that change state (POST, PUT, PATCH, DELETE), by resource.',
      labelNames: ['resource'] as const,
      ...metric,
    }),
    driftRepairs: new Counter({
      name: `${PREFIX}drift_repairs_total`,
      help: 'Child objects restored after they were edited or deleted, by kind.',
      labelNames: ['kind'] as const,
      ...metric,
    }),
    watchConnected: new Gauge({
      name: `${PREFIX}watch_connected`,
      help: '1 while the watch on a resource is open.',
      labelNames: ['resource'] as const,
      ...metric,
    }),
    leader: new Gauge({
      name: `${PREFIX}leader`,
      help: '1 while this replica holds the leader lease (with --shards: any shard lease).',
      ...metric,
    }),
    shards: new Gauge({
      name: `${PREFIX}shards`,
      help: 'How many shards the tenants are split into (--shards; 1: the single leader lease).',
      ...metric,
    }),
    shardsHeld: new Gauge({
      name: `${PREFIX}shards_held`,
      help: "How many shards' leases this replica holds: summed over replicas, less than shards means tenants nobody reconciles.",
      ...metric,
    }),
    backupLastSuccess: perTenantGauge(
      registry,
      'backup_last_success_timestamp_seconds',
      "When the data of the tenant's latest good backup is from (Unix seconds).",
      tenantBackups,
      (f) => f.lastSuccess,
    ),
    backupLastBytes: perTenantGauge(
      registry,
      'backup_last_bytes',
      "Size of the tenant's latest good backup as stored (encrypted).",
      tenantBackups,
      (f) => f.lastBytes,
    ),
    backupLastDuration: perTenantGauge(
      registry,
      'backup_last_duration_seconds',
      "How long the tenant's latest good backup took.",
      tenantBackups,
      (f) => f.lastDurationSeconds,
    ),
    backupFailures: perTenantGauge(
      registry,
      'backup_failures',
      'Backup runs of the tenant that failed since its last good one.',
      tenantBackups,
      (f) => f.failuresSinceSuccess,
    ),
    backupLastVerified: perTenantGauge(
      registry,
      'backup_last_verified_timestamp_seconds',
      'When a backup of the tenant was last restored and checked successfully (Unix seconds).',
      tenantBackups,
      (f) => f.lastVerified,
    ),
    backupVerified: perTenantGauge(
      registry,
      'backup_verified',
      "1 when the tenant's latest backup verification passed, 0 when it failed.",
      tenantBackups,
      (f) => f.verified,
    ),
    purgeDue: new Gauge({
      name: `${PREFIX}purge_due_timestamp_seconds`,
      help: "When a closed tenant's data is due for erasure (Unix seconds).",
      labelNames: ['tenant'] as const,
      registers: [registry],
      collect() {
        this.reset();
        for (const fact of tenantErasures())
          if (fact.purgeDue !== undefined && !fact.purged)
            this.set({ tenant: fact.tenant }, fact.purgeDue);
      },
    }),
    purgesOverdue: new Gauge({
      name: `${PREFIX}purges_overdue`,
      help: `Closed tenants not erased ${PURGE_OVERDUE_GRACE_SECONDS} s after they were due (legal holds excluded).`,
      registers: [registry],
      collect() {
        const now = Date.now() / 1000;
        let overdue = 0;
        for (const fact of tenantErasures())
          if (
            fact.purgeDue !== undefined &&
            !fact.purged &&
            !fact.legalHold &&
            now > fact.purgeDue + PURGE_OVERDUE_GRACE_SECONDS
          )
            overdue++;
        this.set(overdue);
      },
    }),
    purged: new Gauge({
      name: `${PREFIX}tenants_purged`,
      help: 'Tenants whose erasure is complete and whose record is kept.',
      registers: [registry],
      collect() {
        let purged = 0;
        for (const fact of tenantErasures()) if (fact.purged) purged++;
        this.set(purged);
      },
    }),
    purgesCompleted: new Counter({
      name: `${PREFIX}purges_completed_total`,
      help: 'Erasures this replica finished, certificate signed and kept.',
      ...metric,
    }),
    legalHolds: new Gauge({
      name: `${PREFIX}legal_holds`,
      help: 'Closed tenants whose erasure waits for a legal hold.',
      registers: [registry],
      collect() {
        let held = 0;
        for (const fact of tenantErasures()) if (fact.legalHold && !fact.purged) held++;
        this.set(held);
      },
    }),
    backupVerifications: new Counter({
      name: `${PREFIX}backup_verifications_total`,
      help: 'Backup verifications run by this replica, by result (passed, failed).',
      labelNames: ['result'] as const,
      ...metric,
    }),
    backupVerificationDuration: new Histogram({
      name: `${PREFIX}backup_verification_duration_seconds`,
      help: 'Time one backup verification (restore into a scratch database and check) took.',
      buckets: [1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600],
      ...metric,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
