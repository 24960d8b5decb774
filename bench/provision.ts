import { KubeClient } from '../src/k8s/client.ts';
import { desiredChildren } from '../src/tenant/children.ts';
import { metadataRanges } from '../src/tenant/egress-blocks.ts';
import { tenantSpecSchema } from '../src/api/tenant.ts';
import {
  CONCURRENCY,
  createAndTimeToReady,
  kubeConfig,
  percentile,
  pool,
  printTable,
  startOperator,
} from './support.ts';

// N tenants (no database) created at once against the local control plane.
// Prints time to Ready (p50/p99), throughput, API writes per tenant, writes
// during one steady-state resync, and the ratio of our provisioning time to
// the bare API calls that create the same objects.

const N = Number(process.env.BENCH_TENANTS ?? 200);

/** The bare work: the same objects, applied directly, same concurrency, no operator. */
async function rawApply(client: KubeClient, names: string[]): Promise<number> {
  const start = performance.now();
  await pool(names, CONCURRENCY, async (name) => {
    const spec = tenantSpecSchema.parse({ owners: [{ kind: 'Group', name: `${name}-admins` }] });
    const children = desiredChildren(
      { name, uid: '', spec, namespace: `tenant-${name}` },
      { platform: [], forbidden: metadataRanges() },
    );
    for (const object of [children.namespace, ...children.namespaced]) {
      // No owner: the bare calls have no Tenant to point at.
      await client.apply({ ...object, metadata: { ...object.metadata, ownerReferences: [] } });
    }
  });
  return performance.now() - start;
}

export async function benchProvisioning(): Promise<boolean> {
  const client = await KubeClient.create(kubeConfig());
  const runId = Date.now().toString(36);
  const rawMs = await rawApply(
    client,
    Array.from({ length: N }, (_, i) => `raw-${runId}-${i}`),
  );

  const operator = await startOperator(`bench-${runId}`);
  const writesBefore = operator.client.writesExcept('leases');
  const names = Array.from({ length: N }, (_, i) => `bench-${runId}-${i}`);
  const timings = await createAndTimeToReady(client, names, (name) => ({
    owners: [{ kind: 'Group', name: `${name}-admins` }],
    database: { enabled: false },
  }));
  await operator.queue.whenIdle();
  await new Promise((r) => setTimeout(r, 1_000));
  await operator.queue.whenIdle();
  const provisioningWrites = operator.client.writesExcept('leases') - writesBefore;

  const resyncBefore = operator.client.writesExcept('leases');
  operator.resyncAll();
  await operator.queue.whenIdle();
  const resyncWrites = operator.client.writesExcept('leases') - resyncBefore;

  printTable('provisioning benchmark (namespace, network, RBAC, quota; local control plane)', [
    ['tenants', String(N)],
    ['operator concurrency', String(CONCURRENCY)],
    ['time to Ready p50', `${percentile(timings.durations, 50).toFixed(0)} ms`],
    ['time to Ready p99', `${percentile(timings.durations, 99).toFixed(0)} ms`],
    ['throughput', `${((N / timings.totalMs) * 1000).toFixed(1)} tenants/s`],
    ['API writes per tenant', (provisioningWrites / N).toFixed(2)],
    ['writes in one steady-state resync', String(resyncWrites)],
    [
      'bare API calls for the same objects',
      `${rawMs.toFixed(0)} ms (${((N / rawMs) * 1000).toFixed(1)} tenants/s)`,
    ],
    ['operator / bare calls', `${(timings.totalMs / rawMs).toFixed(2)}x`],
    ['not Ready after 10 min', String(timings.notReady)],
  ]);
  await operator.stop();
  await client.close();
  return resyncWrites === 0 && timings.notReady === 0;
}
