import { parseArgs } from 'node:util';
import { benchBackup } from './backup.ts';
import { benchConnections } from './connections.ts';
import { benchDatabases } from './database.ts';
import { benchDrift } from './drift.ts';
import { benchProvisioning } from './provision.ts';
import { benchScale } from './scale.ts';

// `npm run bench`: every benchmark, one after the other on one local stack.
// `npm run bench -- --tenants N --databases M` runs the scale benchmark alone
// at that size; `--only NAME` picks one benchmark.

const BENCHMARKS = [
  'connections',
  'provisioning',
  'databases',
  'drift',
  'backup',
  'scale',
] as const;
type Benchmark = (typeof BENCHMARKS)[number];

const { values } = parseArgs({
  options: {
    tenants: { type: 'string' },
    databases: { type: 'string' },
    'resync-period': { type: 'string', default: '30' },
    'steady-periods': { type: 'string', default: '3' },
    concurrency: { type: 'string', default: '8' },
    only: { type: 'string' },
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
const scaleOptions = {
  tenants: count('tenants', values.tenants, 2_000),
  databases: count('databases', values.databases, 100),
  resyncSeconds: count('resync-period', values['resync-period'], 30),
  steadyPeriods: count('steady-periods', values['steady-periods'], 3),
  concurrency: count('concurrency', values.concurrency, 8),
};
const run: Record<Benchmark, () => Promise<boolean>> = {
  connections: benchConnections,
  provisioning: benchProvisioning,
  databases: benchDatabases,
  drift: benchDrift,
  backup: benchBackup,
  scale: () => benchScale(scaleOptions),
};
const results: boolean[] = [];
for (const name of BENCHMARKS) {
  if (only === undefined || only === name) results.push(await run[name]());
}
if (results.includes(false)) process.exitCode = 1;
