import { parseArgs } from 'node:util';
import { benchBackup } from './backup.ts';
import { benchConnections } from './connections.ts';
import { benchDatabases } from './database.ts';
import { benchDrift } from './drift.ts';
import { benchProvisioning } from './provision.ts';
import { benchProvisioningRatio } from './provision-ratio.ts';
import { benchScale } from './scale.ts';
import { benchShards } from './shards.ts';

// `npm run bench`: every benchmark, one after the other on one local stack.
// `npm run bench -- --tenants N --databases M` runs the scale benchmark alone
// at that size; `--only NAME` picks one benchmark. `--only ratio` times
// provisioning against the bare calls (--ratio-tenants, --ratio-databases).
// `--only shards` runs two replicas with --shards 2 and kills one
// (--shard-tenants, --shard-lease: the lease duration in seconds).

const BENCHMARKS = [
  'connections',
  'provisioning',
  'databases',
  'drift',
  'backup',
  'scale',
  'ratio',
  'shards',
] as const;
type Benchmark = (typeof BENCHMARKS)[number];

const { values } = parseArgs({
  options: {
    tenants: { type: 'string' },
    databases: { type: 'string' },
    'resync-period': { type: 'string', default: '30' },
    'steady-periods': { type: 'string', default: '6' },
    'vault-verify-period': { type: 'string' },
    concurrency: { type: 'string', default: '8' },
    'restart-concurrency': { type: 'string' },
    'api-qps': { type: 'string' },
    only: { type: 'string' },
    'ratio-tenants': { type: 'string' },
    'ratio-databases': { type: 'string' },
    'shard-tenants': { type: 'string' },
    'shard-lease': { type: 'string' },
  },
});

function count(flag: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 0)
    throw new Error(`--${flag}: a whole number, not ${raw}`);
  return value;
}

const only = values.only ?? ((values.tenants ?? values.databases) ? 'scale' : undefined);
if (only !== undefined && !(BENCHMARKS as readonly string[]).includes(only))
  throw new Error(`--only: one of ${BENCHMARKS.join(', ')}, not ${only}`);
const resyncSeconds = count('resync-period', values['resync-period'], 30);
const scaleOptions = {
  tenants: count('tenants', values.tenants, 2_000),
  databases: count('databases', values.databases, 100),
  resyncSeconds,
  // The operator's defaults keep Vault answers five resync periods (1500 s
  // against 300 s); the benchmark keeps that ratio at its shorter period,
  // and its steady state (6 periods) spans a whole verify period.
  vaultVerifySeconds: count(
    'vault-verify-period',
    values['vault-verify-period'],
    5 * resyncSeconds,
  ),
  steadyPeriods: count('steady-periods', values['steady-periods'], 6),
  concurrency: count('concurrency', values.concurrency, 8),
  // e.g. 8,16,8,16: four restarts of the settled operator, alternating.
  restartConcurrency: (values['restart-concurrency'] ?? values.concurrency ?? '8')
    .split(',')
    .map((raw) => count('restart-concurrency', raw.trim(), 8)),
  // The operator's own default unless asked: e.g. to see how much of the
  // provisioning ratio is its client-side rate limit.
  ...(values['api-qps'] === undefined ? {} : { apiQps: count('api-qps', values['api-qps'], 0) }),
};
const run: Record<Benchmark, () => Promise<boolean>> = {
  connections: benchConnections,
  provisioning: benchProvisioning,
  databases: benchDatabases,
  drift: benchDrift,
  backup: benchBackup,
  scale: () => benchScale(scaleOptions),
  ratio: () =>
    benchProvisioningRatio({
      tenants: count('ratio-tenants', values['ratio-tenants'], 1_000),
      databases: count('ratio-databases', values['ratio-databases'], 100),
      scale: scaleOptions,
    }),
  shards: () =>
    benchShards({
      tenants: count('shard-tenants', values['shard-tenants'], 2_000),
      // The operator's default lease duration.
      leaseDurationSeconds: count('shard-lease', values['shard-lease'], 15),
      concurrency: scaleOptions.concurrency,
    }),
};
const results: boolean[] = [];
for (const name of BENCHMARKS) {
  if (only === undefined || only === name) results.push(await run[name]());
}
if (results.includes(false)) process.exitCode = 1;
