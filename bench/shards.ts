import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { LABEL_MEMBER } from '../src/controller/membership.ts';
import { shardLeaseName, shardOf } from '../src/controller/shards.ts';
import { KubeClient } from '../src/k8s/client.ts';
import { collectionPath, objectPath, RESOURCES } from '../src/k8s/resources.ts';
import type { KubeList, KubeObject } from '../src/k8s/types.ts';
import { OperatorProcess } from './operator-process.ts';
import { sumOf } from './prometheus-text.ts';
import { env, settled, until } from './scale.ts';
import {
  createAndTimeToReady,
  kubeConfig,
  percentile,
  plainTenantSpec,
  pool,
  printTable,
} from './support.ts';

// Sharding, measured: two operator processes with --shards 2 share the
// tenants, each holding one shard's Lease; then one is killed with SIGKILL
// (no hand-over) and the survivor must take the dead shard's Lease once it
// has expired, and reconcile every one of its tenants. Who holds a shard is
// read from the Lease objects; that the survivor reconciled each tenant of
// the dead shard, from its own log ("shard taken over", written once every
// tenant of the shard has been reconciled since it was acquired) and its
// reconcile counter. Results go to bench/results/shards-*.json.

export interface ShardsOptions {
  tenants: number;
  leaseDurationSeconds: number;
  concurrency: number;
}

const SHARDS = 2;
const NAMESPACE = 'tenant-system';
const RESULTS_DIR = join(import.meta.dirname, 'results');

type Lease = KubeObject & {
  spec?: { holderIdentity?: string | null; acquireTime?: string | null };
};

function operatorEnv(): NodeJS.ProcessEnv {
  // The operator's own identity and Vault login, as the scale benchmark runs it.
  const inherited = { ...process.env };
  delete inherited.VAULT_TOKEN;
  return {
    ...inherited,
    KUBECONFIG: env('BENCH_OPERATOR_KUBECONFIG'),
    VAULT_K8S_TOKEN_FILE: env('BENCH_OPERATOR_VAULT_JWT'),
  };
}

async function startReplica(
  identity: string,
  options: ShardsOptions,
  logFile: string,
): Promise<OperatorProcess> {
  const operator = await OperatorProcess.start({
    args: [
      '--namespace',
      NAMESPACE,
      '--identity',
      identity,
      '--shards',
      String(SHARDS),
      '--lease-duration',
      String(options.leaseDurationSeconds),
      '--concurrency',
      String(options.concurrency),
      '--cluster-cidr',
      '10.0.0.0/24',
    ],
    env: operatorEnv(),
    logFile,
  });
  await until(`${identity} /readyz`, 120_000, () => operator.ready());
  return operator;
}

async function leases(client: KubeClient): Promise<Lease[]> {
  return Promise.all(
    Array.from({ length: SHARDS }, async (_, shard) => {
      const lease = await client.get<Lease>(
        objectPath(RESOURCES.Lease, shardLeaseName(shard, SHARDS), NAMESPACE),
      );
      return (
        lease ?? { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: { name: '' } }
      );
    }),
  );
}

async function holders(client: KubeClient): Promise<(string | undefined)[]> {
  return (await leases(client)).map((lease) => lease.spec?.holderIdentity ?? undefined);
}

/** Shard and member Leases of an earlier run would stand in the way for a lease duration. */
async function removeShardLeases(client: KubeClient): Promise<void> {
  const list = await client.request<KubeList<Lease>>(
    'GET',
    collectionPath(RESOURCES.Lease, NAMESPACE),
  );
  for (const lease of list.items) {
    const name = lease.metadata.name;
    if (name.startsWith('tenant-operator-shard-') || lease.metadata.labels?.[LABEL_MEMBER])
      await client.delete(objectPath(RESOURCES.Lease, name, NAMESPACE));
  }
}

async function reconciles(operator: OperatorProcess): Promise<number> {
  const samples = await operator.metrics();
  return samples.some((s) => s.name === 'tenant_operator_reconcile_total')
    ? sumOf(samples, 'tenant_operator_reconcile_total')
    : 0;
}

/** The survivor's "shard taken over" line for `shard` logged after `since` (epoch ms), if any. */
function takenOver(
  logFile: string,
  shard: number,
  since: number,
): { at: number; ms: number } | undefined {
  for (const line of readFileSync(logFile, 'utf8').split('\n')) {
    if (!line.includes('shard taken over')) continue;
    const entry = JSON.parse(line) as { time: string; shard: number; ms: number };
    const at = Date.parse(entry.time);
    if (entry.shard === shard && at >= since) return { at, ms: entry.ms };
  }
  return undefined;
}

const seconds = (ms: number) => `${(ms / 1000).toFixed(2)} s`;

export async function benchShards(options: ShardsOptions): Promise<boolean> {
  const started: OperatorProcess[] = [];
  try {
    return await measure(options, started);
  } finally {
    // A run that failed half-way leaves no replica behind (a no-op for those already gone).
    for (const replica of started) await replica.kill();
  }
}

async function measure(options: ShardsOptions, started: OperatorProcess[]): Promise<boolean> {
  const runId = Date.now().toString(36);
  mkdirSync(RESULTS_DIR, { recursive: true });
  const client = await KubeClient.create(kubeConfig());
  await removeShardLeases(client);
  const identities = [`shards-a-${runId}`, `shards-b-${runId}`] as const;
  const logOf = (identity: string) => join(RESULTS_DIR, `operator-${identity}.log`);

  // The first replica alone takes both shards; the second joins and gets one handed back.
  const first = await startReplica(identities[0], options, logOf(identities[0]));
  started.push(first);
  await until('the first replica to hold both shards', 120_000, async () =>
    (await holders(client)).every((h) => h === identities[0]),
  );
  const second = await startReplica(identities[1], options, logOf(identities[1]));
  started.push(second);
  const joinedAt = performance.now();
  await until('the shards to be split between the replicas', 120_000, async () => {
    const held = await holders(client);
    return new Set(held).size === SHARDS && held.every((h) => h !== undefined);
  });
  const splitMs = performance.now() - joinedAt;
  const replicas = new Map<string, OperatorProcess>([
    [identities[0], first],
    [identities[1], second],
  ]);

  const names = Array.from({ length: options.tenants }, (_, i) => `k${runId}-${i}`);
  const timings = await createAndTimeToReady(client, names, plainTenantSpec, 3_600_000);
  if (timings.notReady > 0) throw new Error(`${timings.notReady} tenants never became Ready`);
  await settled(first, 5_000);
  await settled(second, 5_000);
  const reconcilesBeforeKill = [await reconciles(first), await reconciles(second)];

  // Kill the holder of the last shard (the first replica keeps shard 0, the shared work).
  const held = await holders(client);
  const deadShard = SHARDS - 1;
  const deadIdentity = held[deadShard];
  const survivorIdentity = held.find((h) => h !== deadIdentity);
  const dead = deadIdentity === undefined ? undefined : replicas.get(deadIdentity);
  const survivor = survivorIdentity === undefined ? undefined : replicas.get(survivorIdentity);
  if (!dead || !survivor || !survivorIdentity) throw new Error(`unexpected holders ${held.join()}`);
  // Every tenant in the cluster (an earlier benchmark's too) belongs to a shard.
  const allTenants = await client.request<KubeList<KubeObject>>(
    'GET',
    collectionPath(RESOURCES.Tenant),
  );
  const deadShardTenants = allTenants.items.filter(
    (t) => shardOf(t.metadata.name, SHARDS) === deadShard,
  ).length;
  const survivorBefore = await reconciles(survivor);

  const killedWall = Date.now();
  const killedAt = performance.now();
  await dead.kill();
  await until(
    'the survivor to hold the dead shard',
    600_000,
    async () => (await holders(client))[deadShard] === survivorIdentity,
  );
  const leaseMs = performance.now() - killedAt;
  const acquireTime = (await leases(client))[deadShard]?.spec?.acquireTime;
  const leaseByObjectMs = acquireTime ? Date.parse(acquireTime) - killedWall : NaN;
  const survivorLog = logOf(survivorIdentity);
  let logged: { at: number; ms: number } | undefined;
  await until('the survivor to reconcile every tenant of the dead shard', 1_800_000, () => {
    logged = takenOver(survivorLog, deadShard, killedWall);
    return Promise.resolve(logged !== undefined);
  });
  const allReconciledMs = performance.now() - killedAt;
  const allReconciledByLogMs = (logged?.at ?? NaN) - killedWall;
  await sleep(1_000);
  const survivorReconciles = (await reconciles(survivor)) - survivorBefore;
  const leaseDurationMs = options.leaseDurationSeconds * 1000;

  const result = {
    date: new Date().toISOString(),
    shards: SHARDS,
    tenants: options.tenants,
    tenantsInCluster: allTenants.items.length,
    leaseDurationSeconds: options.leaseDurationSeconds,
    concurrency: options.concurrency,
    secondReplicaGotAShardSeconds: splitMs / 1000,
    provisioning: {
      totalSeconds: timings.totalMs / 1000,
      tenantsPerSecond: options.tenants / (timings.totalMs / 1000),
      p50Seconds: percentile(timings.durations, 50) / 1000,
      p99Seconds: percentile(timings.durations, 99) / 1000,
      // An object, not an array: the file stays as prettier would write it.
      reconcilesPerReplica: {
        [identities[0]]: reconcilesBeforeKill[0],
        [identities[1]]: reconcilesBeforeKill[1],
      },
    },
    kill: {
      deadShard,
      deadShardTenants,
      // Polled from the Lease object (50-250 ms steps), and from its acquireTime.
      leaseTakenOverSeconds: leaseMs / 1000,
      leaseAcquireTimeAfterKillSeconds: leaseByObjectMs / 1000,
      everyTenantReconciledSeconds: allReconciledByLogMs / 1000,
      everyTenantReconciledPolledSeconds: allReconciledMs / 1000,
      reconcileOfTheShardSeconds: (logged?.ms ?? NaN) / 1000,
      survivorReconcilesAfterKill: survivorReconciles,
      leaseTakenOverInLeaseDurations: leaseMs / leaseDurationMs,
      everyTenantReconciledInLeaseDurations: allReconciledByLogMs / leaseDurationMs,
    },
  };
  const file = join(RESULTS_DIR, `shards-${result.date.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);

  printTable(`Sharding: ${SHARDS} replicas, ${options.tenants} tenants, one killed (${file})`, [
    ['lease duration', `${options.leaseDurationSeconds} s`],
    ['second replica holds a shard', seconds(splitMs)],
    [
      'provisioning (two replicas)',
      `${seconds(timings.totalMs)}, ${result.provisioning.tenantsPerSecond.toFixed(1)} tenants/s, p50 ${seconds(percentile(timings.durations, 50))}, p99 ${seconds(percentile(timings.durations, 99))}`,
    ],
    ['reconciles per replica', reconcilesBeforeKill.join(' / ')],
    ['tenants of the dead shard', String(deadShardTenants)],
    [
      'kill → survivor holds its Lease',
      `${seconds(leaseMs)} (acquireTime: ${seconds(leaseByObjectMs)}; ${result.kill.leaseTakenOverInLeaseDurations.toFixed(2)} lease durations)`,
    ],
    [
      'kill → each of its tenants reconciled',
      `${seconds(allReconciledByLogMs)} (${result.kill.everyTenantReconciledInLeaseDurations.toFixed(2)} lease durations; ${seconds(logged?.ms ?? NaN)} after the takeover)`,
    ],
    ['survivor reconciles since the kill', String(survivorReconciles)],
  ]);

  // Cleanup, with the survivor holding both shards: each tenant erased now, then released.
  await pool(names, 16, async (name) => {
    const path = objectPath(RESOURCES.Tenant, name);
    await client.mergePatch(path, { metadata: { annotations: { 'tenancy.io/erase-now': name } } });
    await client.delete(path);
  });
  await until('the tenants erased', 1_800_000, async () => {
    const list = await client.request<KubeList<KubeObject>>(
      'GET',
      collectionPath(RESOURCES.Tenant),
    );
    return !list.items.some((t) => t.metadata.name.startsWith(`k${runId}-`));
  });
  await survivor.stop();
  await removeShardLeases(client);
  await client.close();
  return (
    survivorReconciles >= deadShardTenants &&
    Number.isFinite(allReconciledByLogMs) &&
    leaseMs < 2 * leaseDurationMs
  );
}
