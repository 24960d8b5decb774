import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { parse } from 'yaml';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { registerLocalDatabaseServers, type LocalServer } from '../hack/database-servers.ts';
import { POLICY_DEFAULT_DENY } from '../src/tenant/network.ts';
import { kubeconfigFileAccess } from '../src/k8s/cluster-access.ts';
import { KubeClient } from '../src/k8s/client.ts';
import { objectPath, RESOURCES } from '../src/k8s/resources.ts';
import { VaultClient } from '../src/vault/client.ts';
import { KvV2 } from '../src/vault/kv.ts';
import { OperatorProcess } from './operator-process.ts';
import { sumOf } from './prometheus-text.ts';
import {
  changes,
  type ObjectVersion,
  kvVersions,
  resourceVersions,
  StatementCounts,
  VaultAudit,
} from './server-state.ts';
import {
  createAndTimeToReady,
  kubeConfig,
  percentile,
  plainTenantSpec,
  printTable,
} from './support.ts';

// Scale, measured the way the operator runs: its own process, started with
// the same command as the image, judged by its /proc entry and /metrics and by
// what the servers themselves record. Tenants without and with a database are
// created at once; then several resync periods of steady state (zero writes:
// resourceVersions, KV versions, ALTER ROLE), then a restart (synced within a
// minute, zero writes). Results go to bench/results/ as JSON too.

export interface ScaleOptions {
  tenants: number;
  databases: number;
  /** Resync period of the operator under test, seconds. */
  resyncSeconds: number;
  /** How long the operator trusts cached Vault answers, seconds (--vault-verify-period). */
  vaultVerifySeconds: number;
  /** Resync periods watched in steady state. */
  steadyPeriods: number;
  concurrency: number;
  /** The operator's client-side request rate (--api-qps); unset: its default. */
  apiQps?: number;
  /**
   * One restart per entry, each with that --concurrency: the first is the
   * restart the memory and the heap snapshot are taken after; alternating
   * values compare them on the same settled cluster.
   */
  restartConcurrency: number[];
}

const ROOT = join(import.meta.dirname, '..');
const RESULTS_DIR = join(import.meta.dirname, 'results');
const MIB = 1024;

export function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set (hack/bench.sh sets it)`);
  return value;
}

/** A memory setting the chart gives the operator (values.yaml): MiB, or a count of arenas. */
function chartValue(key: 'heapLimitMiB' | 'semiSpaceMiB' | 'mallocArenas'): number {
  const values = parse(
    readFileSync(join(import.meta.dirname, '..', 'charts/tenant-operator/values.yaml'), 'utf8'),
  ) as Record<string, unknown>;
  const value = values[key];
  if (typeof value !== 'number') throw new Error(`values.yaml has no ${key}`);
  return value;
}

function operatorEnv(): NodeJS.ProcessEnv {
  // The operator's own identity and Vault login, as hack/demo.sh starts it,
  // and its heap and malloc settings as the chart sets them.
  const inherited = { ...process.env };
  delete inherited.VAULT_TOKEN;
  return {
    ...inherited,
    // BENCH_HEAP_SNAPSHOT=1: the restarted operator writes a heap snapshot
    // at the end of the run (SIGUSR2), for the post-mortem of its memory.
    // BENCH_NODE_OPTIONS: more for the operator's Node (e.g. --cpu-prof).
    NODE_OPTIONS: `--max-old-space-size=${chartValue('heapLimitMiB')} --max-semi-space-size=${chartValue('semiSpaceMiB')}${
      process.env.BENCH_HEAP_SNAPSHOT === '1' ? ` --heapsnapshot-signal=SIGUSR2` : ''
    }${process.env.BENCH_NODE_OPTIONS ? ` ${process.env.BENCH_NODE_OPTIONS}` : ''}`,
    MALLOC_ARENA_MAX: String(chartValue('mallocArenas')),
    KUBECONFIG: env('BENCH_OPERATOR_KUBECONFIG'),
    VAULT_K8S_TOKEN_FILE: env('BENCH_OPERATOR_VAULT_JWT'),
  };
}

export async function until(
  what: string,
  timeoutMs: number,
  check: () => Promise<boolean>,
  intervalMs = 250,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

/** Reconciles done so far (any result); 0 before the first one. */
async function reconciles(operator: OperatorProcess): Promise<number> {
  const samples = await operator.metrics();
  return samples.some((s) => s.name === 'tenant_operator_reconcile_total')
    ? sumOf(samples, 'tenant_operator_reconcile_total')
    : 0;
}

/**
 * An empty queue in every sample for `quietMs`. Not "no reconcile at all":
 * the spread resync reconciles a few tenants every second, for ever.
 */
export async function settled(operator: OperatorProcess, quietMs: number): Promise<void> {
  let quietSince = Date.now();
  await until('the operator to settle', 1_800_000, async () => {
    const depth = sumOf(await operator.metrics(), 'tenant_operator_queue_depth');
    if (depth > 0) {
      quietSince = Date.now();
      return false;
    }
    return Date.now() - quietSince >= quietMs;
  });
}

export async function startOperator(
  options: ScaleOptions,
  logFile: string,
): Promise<OperatorProcess> {
  const operator = await OperatorProcess.start({
    args: [
      '--namespace',
      'tenant-system',
      '--concurrency',
      String(options.concurrency),
      '--resync-period',
      String(options.resyncSeconds),
      '--vault-verify-period',
      String(options.vaultVerifySeconds),
      '--cluster-cidr',
      '10.0.0.0/24',
      ...(options.apiQps === undefined ? [] : ['--api-qps', String(options.apiQps)]),
    ],
    env: operatorEnv(),
    logFile,
  });
  await until('/readyz', 120_000, () => operator.ready());
  await until(
    'leadership',
    120_000,
    async () => sumOf(await operator.metrics(), 'tenant_operator_leader') === 1,
  );
  return operator;
}

async function memoryMib(
  operator: OperatorProcess,
): Promise<{ proc: number; metric: number; peak: number }> {
  const { rssKib, peakKib } = await operator.memory();
  const metric =
    sumOf(await operator.metrics(), 'tenant_operator_process_resident_memory_bytes') / 2 ** 20;
  return { proc: rssKib / MIB, metric, peak: peakKib / MIB };
}

/**
 * Creates a burst of new tenants and, as soon as they are all submitted,
 * deletes a settled tenant's default-deny NetworkPolicy (as break-glass, the
 * one identity the guard lets do it): how long until it is back, and how
 * much of the burst was Ready by then.
 */
async function driftDuringBurst(
  client: KubeClient,
  runId: string,
  settledTenant: string,
  options: ScaleOptions,
): Promise<{
  burst: number;
  repairMs: number;
  burstReadyAtRepair: number;
  versionsAfter: Map<string, ObjectVersion>;
}> {
  const access = kubeconfigFileAccess(env('BREAK_GLASS_KUBECONFIG'));
  if (!access) throw new Error('the break-glass kubeconfig uses a client certificate');
  const breakGlass = await KubeClient.create(access);
  const burst = Math.min(
    1_000,
    Math.max(10, Math.floor((options.tenants + options.databases) / 10)),
  );
  const names = Array.from({ length: burst }, (_, i) => `b${runId}-${i}`);
  const policy = objectPath(
    RESOURCES.NetworkPolicy,
    POLICY_DEFAULT_DENY,
    `tenant-${settledTenant}`,
  );
  let repairMs = NaN;
  let readyAtRepair = 0;
  const timings = await createAndTimeToReady(client, names, plainTenantSpec, 3_600_000, {
    afterCreated: async (ready) => {
      await breakGlass.delete(policy);
      const start = performance.now();
      const deadline = Date.now() + 300_000;
      while (!(await client.get(policy))) {
        if (Date.now() > deadline) throw new Error(`${policy} was not put back within 5 min`);
        await sleep(50);
      }
      repairMs = performance.now() - start;
      readyAtRepair = ready();
    },
  });
  await breakGlass.close();
  if (timings.notReady > 0) throw new Error(`${timings.notReady} of the burst never became Ready`);
  return {
    burst,
    repairMs,
    burstReadyAtRepair: readyAtRepair,
    versionsAfter: await resourceVersions(client),
  };
}

/** Has the operator write a heap snapshot (SIGUSR2) and waits until it is whole. */
async function heapSnapshot(operator: OperatorProcess): Promise<void> {
  const before = new Set(readdirSync(ROOT));
  process.kill(operator.pid, 'SIGUSR2');
  const written = () =>
    readdirSync(ROOT).find((f) => f.endsWith('.heapsnapshot') && !before.has(f));
  await until('the heap snapshot', 300_000, () => Promise.resolve(written() !== undefined));
  // Written whole when its size holds still (the process writes it in one go).
  let size = -1;
  await until('the heap snapshot written', 600_000, async () => {
    await sleep(3_000);
    const now = statSync(join(ROOT, written()!)).size;
    const still = now === size && now > 0;
    size = now;
    return still;
  });
  console.log(`heap snapshot: ${join(ROOT, written()!)}`);
}

export async function benchScale(options: ScaleOptions): Promise<boolean> {
  const runId = Date.now().toString(36);
  mkdirSync(RESULTS_DIR, { recursive: true });
  const logFile = join(RESULTS_DIR, `operator-${runId}.log`);
  const client = await KubeClient.create(kubeConfig());
  const vault = VaultClient.fromEnv();
  let servers: LocalServer[] = [];
  if (options.databases > 0) {
    // Room for every database, spread over the local servers by region.
    servers = await registerLocalDatabaseServers(client, Math.ceil(options.databases / 2) + 10);
  }
  const audit = await VaultAudit.enable(
    vault,
    runId,
    join(RESULTS_DIR, `vault-audit-${runId}.log`),
  );
  const statements =
    servers.length > 0 ? await StatementCounts.connect(servers, env('PG_CA_FILE')) : undefined;

  let operator = await startOperator(options, logFile);
  await sleep(5_000);
  const idle = await memoryMib(operator);

  // Provisioning: every tenant created at once.
  const plain = Array.from({ length: options.tenants }, (_, i) => `s${runId}-${i}`);
  const withDatabase = Array.from({ length: options.databases }, (_, i) => `d${runId}-${i}`);
  const databaseOf = new Set(withDatabase);
  const timings = await createAndTimeToReady(
    client,
    [...withDatabase, ...plain],
    (name) => ({
      owners: [{ kind: 'Group', name: `${name}-admins` }],
      ...(databaseOf.has(name)
        ? {
            region: servers[Number(name.split('-')[1]) % servers.length]!.region,
            database: { enabled: true },
          }
        : { database: { enabled: false } }),
    }),
    3_600_000,
  );
  await settled(operator, 5_000);
  const provisioned = await memoryMib(operator);

  // Steady state: several resync periods, judged by the servers.
  const kv = new KvV2(vault);
  const rvBefore = await resourceVersions(client);
  const kvBefore = await kvVersions(kv, withDatabase);
  await statements?.reset();
  await audit.mark();
  const reconcilesBefore = await reconciles(operator);
  const steadyStart = Date.now();
  await sleep(options.steadyPeriods * options.resyncSeconds * 1000 + 2_000);
  await settled(operator, 2_000);
  const steadyMs = Date.now() - steadyStart;
  const steadyReconciles = (await reconciles(operator)) - reconcilesBefore;
  const vaultRequests = await audit.requestsSinceMark();
  const sql = (await statements?.sinceReset()) ?? { statements: 0, alterRole: 0 };
  const rvAfter = await resourceVersions(client);
  const kvAfter = await kvVersions(kv, withDatabase);
  const steady = changes(rvBefore, rvAfter);
  const steadyWrites = steady.ours;
  const newKvVersions = [...kvAfter].filter(([t, v]) => kvBefore.get(t) !== v).length;
  const steadyMemory = await memoryMib(operator);
  const total = options.tenants + options.databases;
  const resyncs = steadyReconciles / total;
  const dbResyncs = options.databases * resyncs;

  // Fairness: a burst of new tenants, and drift on a settled one in the middle of it.
  const fairness = await driftDuringBurst(client, runId, plain[0] ?? withDatabase[0]!, options);

  // Restarts: each a new process, synced (every tenant reconciled once,
  // /readyz 200), with zero writes.
  const restarts: { concurrency: number; syncSeconds: number; writes: number; rssMiB: number }[] =
    [];
  let restartWrites: string[] = [];
  let restartOthers: string[] = [];
  let restarted: Awaited<ReturnType<typeof memoryMib>> | undefined;
  for (const [i, concurrency] of options.restartConcurrency.entries()) {
    await operator.stop();
    const restartAt = performance.now();
    operator = await startOperator({ ...options, concurrency }, logFile);
    // Scraped once a second, not four times: at 12,000 tenants a scrape costs
    // the operator tens of milliseconds, and Prometheus scrapes every 30 s.
    await until(
      'every tenant reconciled after the restart',
      600_000,
      async () => (await reconciles(operator)) >= total + fairness.burst,
      1_000,
    );
    const syncMs = performance.now() - restartAt;
    await settled(operator, 2_000);
    const restart = changes(fairness.versionsAfter, await resourceVersions(client));
    const memory = await memoryMib(operator);
    restarts.push({
      concurrency,
      syncSeconds: syncMs / 1000,
      writes: restart.ours.length,
      rssMiB: memory.proc,
    });
    console.log(
      `restart ${i + 1} of ${options.restartConcurrency.length} (--concurrency ${concurrency}): synced in ${(syncMs / 1000).toFixed(1)} s, ${restart.ours.length} objects written by us, RSS ${memory.proc.toFixed(0)} MiB`,
    );
    // Judged against the versions before the first restart: a write in any
    // restart is still a changed resourceVersion after the last one.
    restartWrites = restart.ours;
    restartOthers = restart.others;
    if (i > 0) continue;
    restarted = memory;
    if (process.env.BENCH_HEAP_SNAPSHOT === '1') await heapSnapshot(operator);
  }
  if (!restarted) throw new Error('--restart-concurrency: at least one restart');
  const restartSyncMs = restarts[0]!.syncSeconds * 1000;
  await operator.stop();

  const result = {
    runId,
    date: new Date().toISOString(),
    options,
    heapLimitMiB: chartValue('heapLimitMiB'),
    mallocArenas: chartValue('mallocArenas'),
    semiSpaceMiB: chartValue('semiSpaceMiB'),
    memoryMiB: { idle, provisioned, steady: steadyMemory, afterRestart: restarted },
    provisioning: {
      tenants: total,
      p50Ms: percentile(timings.durations, 50),
      p99Ms: percentile(timings.durations, 99),
      tenantsPerSecond: (total / timings.totalMs) * 1000,
      notReady: timings.notReady,
    },
    steadyState: {
      seconds: steadyMs / 1000,
      resyncsPerTenant: resyncs,
      apiObjectsChanged: steadyWrites.length,
      changedExamples: steadyWrites.slice(0, 5),
      changedByOthers: steady.others.length,
      changedByOthersExamples: steady.others.slice(0, 5),
      newKvVersions,
      alterRole: sql.alterRole,
      vaultRequests: vaultRequests.total,
      vaultRequestsByPath: Object.fromEntries(vaultRequests.byPath),
      sqlStatements: sql.statements,
      vaultRequestsPerDatabaseTenantResync: dbResyncs > 0 ? vaultRequests.total / dbResyncs : 0,
      sqlPerDatabaseTenantResync: dbResyncs > 0 ? sql.statements / dbResyncs : 0,
    },
    fairness: {
      burst: fairness.burst,
      repairSeconds: fairness.repairMs / 1000,
      burstReadyWhenRepaired: fairness.burstReadyAtRepair,
    },
    restart: {
      syncSeconds: restartSyncMs / 1000,
      apiObjectsChanged: restartWrites.length,
      changedExamples: restartWrites.slice(0, 5),
      changedByOthers: restartOthers.length,
      restarts,
    },
  };
  const file = join(RESULTS_DIR, `scale-${result.date.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);

  const mib = (m: { proc: number; metric: number }) =>
    `${m.proc.toFixed(0)} MiB (/proc), ${m.metric.toFixed(0)} MiB (/metrics)`;
  printTable(`scale benchmark: the operator as its own process (${file})`, [
    ['tenants without / with a database', `${options.tenants} / ${options.databases}`],
    ['operator RSS idle, no tenants', mib(idle)],
    ['operator RSS, all Ready', mib(provisioned)],
    [
      'operator RSS after steady state',
      `${mib(steadyMemory)}; peak ${steadyMemory.peak.toFixed(0)} MiB`,
    ],
    ['operator RSS after a restart, synced', mib(restarted)],
    [
      'time to Ready p50 / p99',
      `${result.provisioning.p50Ms.toFixed(0)} / ${result.provisioning.p99Ms.toFixed(0)} ms`,
    ],
    ['throughput', `${result.provisioning.tenantsPerSecond.toFixed(1)} tenants/s`],
    ['not Ready', String(timings.notReady)],
    [
      `steady state (${(steadyMs / 1000).toFixed(0)} s, ${resyncs.toFixed(1)} resyncs per tenant)`,
      `${steadyWrites.length} API objects written by us (${steady.others.length} by others), ${newKvVersions} new KV versions, ${sql.alterRole} ALTER ROLE`,
    ],
    [
      'per database tenant per resync',
      `${result.steadyState.vaultRequestsPerDatabaseTenantResync.toFixed(2)} Vault requests, ${result.steadyState.sqlPerDatabaseTenantResync.toFixed(2)} SQL statements`,
    ],
    [
      'Vault requests in steady state',
      `${vaultRequests.total} ${JSON.stringify(result.steadyState.vaultRequestsByPath)}`,
    ],
    [
      `drift repaired during a burst of ${fairness.burst} new tenants`,
      `${(fairness.repairMs / 1000).toFixed(1)} s (${fairness.burstReadyAtRepair} of the burst Ready by then)`,
    ],
    [
      'restart to synced (every tenant reconciled)',
      `${(restartSyncMs / 1000).toFixed(1)} s, ${restartWrites.length} API objects written by us (${restartOthers.length} by others)`,
    ],
    ...restarts
      .slice(1)
      .map((r, i): [string, string] => [
        `restart ${i + 2}, --concurrency ${r.concurrency}`,
        `${r.syncSeconds.toFixed(1)} s, ${r.writes} written by us, RSS ${r.rssMiB.toFixed(0)} MiB`,
      ]),
  ]);
  await statements?.close();
  await client.close();
  return (
    timings.notReady === 0 &&
    fairness.repairMs < 10_000 &&
    steadyWrites.length === 0 &&
    restartWrites.length === 0 &&
    newKvVersions === 0 &&
    sql.alterRole === 0
  );
}
