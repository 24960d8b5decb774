import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { Operator } from '../src/controller/manager.ts';
import type { KubeClient } from '../src/k8s/client.ts';
import { Informer } from '../src/controller/informer.ts';
import { collectionPath, RESOURCES } from '../src/k8s/resources.ts';
import type { KubeObject } from '../src/k8s/types.ts';
import type { TenantObject } from '../src/tenant/model.ts';
import type { VaultClient } from '../src/vault/client.ts';

// What the benchmarks share: an in-process operator, a way to create many
// tenants at once and time each one to Ready, and the printing.

export const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);

export function kubeConfig(): KubeConfig {
  const config = new KubeConfig();
  config.loadFromDefault();
  return config;
}

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

/** Runs `work` over `items`, at most `limit` at a time. */
export async function pool<T>(
  items: T[],
  limit: number,
  work: (item: T) => Promise<void>,
): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

export async function startOperator(identity: string, vault?: VaultClient): Promise<Operator> {
  const operator = new Operator({
    cluster: kubeConfig(),
    log: pino({ level: 'silent' }),
    namespace: 'tenant-system',
    identity,
    concurrency: CONCURRENCY,
    resyncPeriodMs: 3_600_000,
    metricsHost: '127.0.0.1',
    metricsPort: 0,
    leaseDurationSeconds: 15,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
    // The ranges hack/cluster.sh gives the test control plane's services.
    clusterCidrs: ['10.0.0.0/24'],
    ...(vault ? { vault, vaultKvMount: 'secret', vaultAudience: 'vault' } : {}),
    onLostLeadership: () => {
      throw new Error('lost leadership during the benchmark');
    },
  });
  await operator.start();
  while ((await operator.metrics.leader.get()).values[0]?.value !== 1) {
    await new Promise((r) => setTimeout(r, 100));
  }
  await operator.queue.whenIdle();
  return operator;
}

export interface ReadyTimings {
  /** Per tenant, creation to Ready, sorted. */
  durations: number[];
  /** First creation to last Ready. */
  totalMs: number;
  notReady: number;
}

/** The spec of a benchmark tenant without a database: one owner group. */
export function plainTenantSpec(name: string): Record<string, unknown> {
  return { owners: [{ kind: 'Group', name: `${name}-admins` }], database: { enabled: false } };
}

/** Creates the tenants (32 requests at a time) and times each to phase Ready. */
export async function createAndTimeToReady(
  client: KubeClient,
  names: string[],
  spec: (name: string) => Record<string, unknown>,
  timeoutMs = 600_000,
  hooks: {
    /** Runs once every tenant is submitted, while they provision; gets a count of those Ready. */
    afterCreated?: (ready: () => number) => Promise<void>;
  } = {},
): Promise<ReadyTimings> {
  const created = new Map<string, number>();
  const readyAt = new Map<string, number>();
  // Our own informer: it survives a watch the server ends or expires, so no
  // Ready transition is missed under load.
  const tenants = new Informer<TenantObject>(client, RESOURCES.Tenant, {
    log: pino({ level: 'silent' }),
  });
  tenants.onChange((tenant) => {
    if (tenant.status?.phase === 'Ready' && !readyAt.has(tenant.metadata.name)) {
      readyAt.set(tenant.metadata.name, performance.now());
    }
  });
  const watchAbort = new AbortController();
  const watching = tenants.run(watchAbort.signal);
  await tenants.waitForSync();

  const start = performance.now();
  await pool(names, 32, async (name) => {
    created.set(name, performance.now());
    await client.create<KubeObject>(collectionPath(RESOURCES.Tenant), {
      apiVersion: 'tenancy.io/v1alpha1',
      kind: 'Tenant',
      metadata: { name },
      spec: spec(name),
    });
  });
  await hooks.afterCreated?.(() => names.filter((n) => readyAt.has(n)).length);
  const deadline = Date.now() + timeoutMs;
  while (names.some((n) => !readyAt.has(n)) && Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 50));
  }
  watchAbort.abort();
  await watching;
  return {
    durations: names.map((n) => (readyAt.get(n) ?? NaN) - created.get(n)!).sort((a, b) => a - b),
    totalMs: Math.max(...readyAt.values()) - start,
    notReady: names.filter((n) => !readyAt.has(n)).length,
  };
}

export function printTable(title: string, rows: [string, string][]): void {
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log(`\n${title}`);
  for (const [key, value] of rows) console.log(`  ${key.padEnd(width)}  ${value}`);
}
