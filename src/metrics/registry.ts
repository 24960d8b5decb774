import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

// One private registry, every name under tenant_operator_, so the operator's
// metrics never collide with a library's and a scrape shows only ours.

const PREFIX = 'tenant_operator_';

/** `tenantPhases` lists the phase of every known tenant; read at scrape time. */
export function createMetrics(tenantPhases: () => Iterable<string> = () => []) {
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
        for (const phase of tenantPhases()) this.inc({ phase });
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
      help: '1 while this replica holds the leader lease.',
      ...metric,
    }),
  };
}

export type Metrics = ReturnType<typeof createMetrics>;
