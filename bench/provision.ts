import { KubeConfig } from '@kubernetes/client-node';
import { pino } from 'pino';
import { Operator } from '../src/controller/manager.ts';
import { KubeClient } from '../src/k8s/client.ts';
import { collectionPath, RESOURCES } from '../src/k8s/resources.ts';
import type { KubeObject } from '../src/k8s/types.ts';
import { desiredChildren } from '../src/tenant/children.ts';
import type { TenantObject } from '../src/tenant/model.ts';
import { tenantSpecSchema } from '../src/api/tenant.ts';

// `npm run bench`: N tenants created at once against the local control plane.
// Prints time to Ready (p50/p99), throughput, API writes per tenant, writes
// during one steady-state resync, and the ratio of our provisioning time to
// the bare API calls that create the same objects.

const N = Number(process.env.BENCH_TENANTS ?? 200);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 8);

function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? NaN;
}

async function pool<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: limit }, async () => {
      while (next < items.length) await work(items[next++]!);
    }),
  );
}

function kubeConfig(): KubeConfig {
  const config = new KubeConfig();
  config.loadFromDefault();
  return config;
}

/** The bare work: the same objects, applied directly, same concurrency, no operator. */
async function rawApply(client: KubeClient, names: string[]): Promise<number> {
  const start = performance.now();
  await pool(names, CONCURRENCY, async (name) => {
    const spec = tenantSpecSchema.parse({ owners: [{ kind: 'Group', name: `${name}-admins` }] });
    const children = desiredChildren({ name, uid: '', spec, namespace: `tenant-${name}` });
    for (const object of [children.namespace, ...children.namespaced]) {
      // No owner: the bare calls have no Tenant to point at.
      await client.apply({ ...object, metadata: { ...object.metadata, ownerReferences: [] } });
    }
  });
  return performance.now() - start;
}

async function main(): Promise<void> {
  const client = await KubeClient.create(kubeConfig());
  const runId = Date.now().toString(36);

  const rawNames = Array.from({ length: N }, (_, i) => `raw-${runId}-${i}`);
  const rawMs = await rawApply(client, rawNames);

  const operator = new Operator({
    kubeConfig: kubeConfig(),
    log: pino({ level: 'silent' }),
    namespace: 'tenant-system',
    identity: `bench-${runId}`,
    concurrency: CONCURRENCY,
    resyncPeriodMs: 3_600_000,
    metricsHost: '127.0.0.1',
    metricsPort: 0,
    leaseDurationSeconds: 15,
    renewDeadlineMs: 10_000,
    retryPeriodMs: 2_000,
    onLostLeadership: () => {
      throw new Error('lost leadership during the benchmark');
    },
  });
  await operator.start();
  while ((await operator.metrics.leader.get()).values[0]?.value !== 1)
    await new Promise((r) => setTimeout(r, 100));
  await operator.queue.whenIdle();

  const names = Array.from({ length: N }, (_, i) => `bench-${runId}-${i}`);
  const created = new Map<string, number>();
  const readyAt = new Map<string, number>();
  const watchAbort = new AbortController();
  const watching = (async () => {
    const list = await client.request<{ metadata: { resourceVersion: string } }>(
      'GET',
      collectionPath(RESOURCES.Tenant),
      { query: { limit: 1 } },
    );
    for await (const event of client.watch<TenantObject>(
      collectionPath(RESOURCES.Tenant),
      { resourceVersion: list.metadata.resourceVersion },
      watchAbort.signal,
    )) {
      const tenant = event.object as TenantObject;
      if (tenant.status?.phase === 'Ready' && !readyAt.has(tenant.metadata.name)) {
        readyAt.set(tenant.metadata.name, performance.now());
      }
      if (readyAt.size === N) break;
    }
  })().catch(() => undefined);

  const writesBefore = operator.client.writesExcept('leases');
  const start = performance.now();
  await pool(names, 32, async (name) => {
    created.set(name, performance.now());
    await client.create<KubeObject>(collectionPath(RESOURCES.Tenant), {
      apiVersion: 'tenancy.io/v1alpha1',
      kind: 'Tenant',
      metadata: { name },
      spec: { owners: [{ kind: 'Group', name: `${name}-admins` }], database: { enabled: false } },
    });
  });
  const deadline = Date.now() + 600_000;
  while (names.some((n) => !readyAt.has(n)) && Date.now() < deadline)
    await new Promise((r) => setTimeout(r, 50));
  const totalMs = Math.max(...readyAt.values()) - start;
  await operator.queue.whenIdle();
  await new Promise((r) => setTimeout(r, 1_000));
  await operator.queue.whenIdle();
  const provisioningWrites = operator.client.writesExcept('leases') - writesBefore;

  const resyncBefore = operator.client.writesExcept('leases');
  operator.resyncAll();
  await operator.queue.whenIdle();
  const resyncWrites = operator.client.writesExcept('leases') - resyncBefore;

  watchAbort.abort();
  await watching;
  const durations = names
    .map((n) => (readyAt.get(n) ?? NaN) - created.get(n)!)
    .sort((a, b) => a - b);
  const notReady = names.filter((n) => !readyAt.has(n)).length;

  const rows: [string, string][] = [
    ['tenants', String(N)],
    ['operator concurrency', String(CONCURRENCY)],
    ['time to Ready p50', `${percentile(durations, 50).toFixed(0)} ms`],
    ['time to Ready p99', `${percentile(durations, 99).toFixed(0)} ms`],
    ['throughput', `${((N / totalMs) * 1000).toFixed(1)} tenants/s`],
    ['API writes per tenant', (provisioningWrites / N).toFixed(2)],
    ['writes in one steady-state resync', String(resyncWrites)],
    [
      'bare API calls for the same objects',
      `${rawMs.toFixed(0)} ms (${((N / rawMs) * 1000).toFixed(1)} tenants/s)`,
    ],
    ['operator / bare calls', `${(totalMs / rawMs).toFixed(2)}x`],
    ['not Ready after 10 min', String(notReady)],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  console.log('\nprovisioning benchmark (local control plane)');
  for (const [key, value] of rows) console.log(`  ${key.padEnd(width)}  ${value}`);

  await operator.stop();
  await client.close();
  if (resyncWrites !== 0 || notReady > 0) process.exitCode = 1;
}

await main();
