import { hostname } from 'node:os';
import { parseArgs, type ParseArgsOptionsConfig } from 'node:util';
import { DURATION_PATTERN, durationToMs } from '../api/duration.ts';
import { MAX_SHARDS } from '../controller/shards.ts';

// The `operator` command's flags, parsed and checked in one place before
// anything starts: a typo in a number must stop the process with a message
// naming the flag, not become NaN (a zero-length resync timer, a port the
// kernel picks) deep inside the controller. To add a flag: declare it in
// OPERATOR_FLAGS, read and check it in parseOperatorOptions, and list it in
// the usage text of main.ts.

/** Bad command-line input: main prints the message and exits with status 2. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UsageError';
  }
}

export interface OperatorCliOptions {
  namespace: string;
  identity: string;
  concurrency: number;
  /** Requests a second to the API server, at most (client-side limit). */
  apiQps: number;
  /** Requests to the API server at once, at most. */
  apiConcurrency: number;
  resyncPeriodSeconds: number;
  /** How long a settled tenant's Vault objects are trusted without reading them again (0: always read). */
  vaultVerifyPeriodSeconds: number;
  metricsHost: string;
  metricsPort: number;
  leaseDurationSeconds: number;
  /** Shards of the tenants, each with its own Lease; 1 is a single leader. */
  shards: number;
  /** The cluster's pod, service and node ranges (flags and CLUSTER_CIDRS together). */
  clusterCidrs: string[];
  minRotationIntervalSeconds: number;
  /** The image the backup jobs run: the operator's own. */
  backupImage: string;
  /** Backup verifications (restores into a scratch database) run at once. */
  verifyConcurrency: number;
  /** How long an erasure certificate's copy in the store is to be kept, seconds. */
  certificateRetentionSeconds: number;
  /** What becomes of a Tenant closed by `spec.state` once it is erased: kept as the record, or deleted. */
  purgedTenants: PurgedTenants;
}

export const PURGED_TENANTS = ['keep', 'delete'] as const;
export type PurgedTenants = (typeof PURGED_TENANTS)[number];

const OPERATOR_FLAGS = {
  namespace: { type: 'string' },
  concurrency: { type: 'string' },
  'api-qps': { type: 'string' },
  'api-concurrency': { type: 'string' },
  'resync-period': { type: 'string' },
  'vault-verify-period': { type: 'string' },
  'metrics-port': { type: 'string' },
  'metrics-host': { type: 'string' },
  'lease-duration': { type: 'string' },
  shards: { type: 'string' },
  identity: { type: 'string' },
  'cluster-cidr': { type: 'string', multiple: true },
  'min-rotation-interval': { type: 'string' },
  'backup-image': { type: 'string' },
  'verify-concurrency': { type: 'string' },
  'certificate-retention': { type: 'string' },
  'purged-tenants': { type: 'string' },
} as const satisfies ParseArgsOptionsConfig;

/** Node timers overflow past 2^31-1 ms; a longer resync would fire at once, over and over. */
const MAX_TIMER_SECONDS = Math.floor((2 ** 31 - 1) / 1000);
/** What the chart's image is called; the chart passes the exact tag with BACKUP_IMAGE. */
export const DEFAULT_BACKUP_IMAGE = 'tenant-operator:latest';
const DNS_LABEL = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/;

/**
 * `--resync-period -1` reads to parseArgs as a flag followed by another flag;
 * joined as `--resync-period=-1` it reaches the range check, whose message
 * says what is wrong.
 */
function joinNegativeValues(args: string[]): string[] {
  const joined: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const arg = args[i] ?? '';
    const next = args[i + 1];
    const flag = arg.startsWith('--') ? arg.slice(2) : '';
    if (flag in OPERATOR_FLAGS && next !== undefined && /^-[0-9.]/.test(next)) {
      joined.push(`${arg}=${next}`);
      i++;
    } else {
      joined.push(arg);
    }
  }
  return joined;
}

/** A whole number in [min, max]; `source` names the flag (or variable) in the message. */
export function wholeNumber(source: string, raw: string, min: number, max: number): number {
  // Number() would accept '', ' 8', '1e3', '0x10' and '8.0'; only plain digits are a count.
  const value = /^[0-9]{1,10}$/.test(raw) ? Number(raw) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(
      `${source}: expected a whole number from ${min} to ${max}, got ${JSON.stringify(raw)}`,
    );
  }
  return value;
}

function nonEmpty(source: string, raw: string): string {
  if (raw.trim() === '') throw new UsageError(`${source}: must not be empty`);
  return raw;
}

/** The flag's value, else the environment variable's (named in messages as such), else the default. */
function pick(
  flag: string,
  value: string | undefined,
  env: NodeJS.ProcessEnv,
  variable: string | undefined,
  fallback: string,
): { source: string; raw: string } {
  if (value !== undefined) return { source: `--${flag}`, raw: value };
  const fromEnv = variable === undefined ? undefined : env[variable];
  if (fromEnv !== undefined && fromEnv !== '') return { source: variable ?? flag, raw: fromEnv };
  return { source: `--${flag}`, raw: fallback };
}

export function parseOperatorOptions(
  args: string[],
  env: NodeJS.ProcessEnv = process.env,
): OperatorCliOptions {
  let values;
  try {
    ({ values } = parseArgs({
      args: joinNegativeValues(args),
      options: OPERATOR_FLAGS,
      strict: true,
      allowPositionals: false,
    }));
  } catch (err: unknown) {
    // parseArgs' own messages are clear ("Unknown option '--x'"); keep them.
    throw new UsageError((err as Error).message);
  }

  const namespace = pick('namespace', values.namespace, env, 'POD_NAMESPACE', 'tenant-system');
  if (!DNS_LABEL.test(namespace.raw) || namespace.raw.length > 63) {
    throw new UsageError(
      `${namespace.source}: expected a namespace name (a DNS label), got ${JSON.stringify(namespace.raw)}`,
    );
  }
  const identity = pick(
    'identity',
    values.identity,
    env,
    'POD_NAME',
    `${hostname()}-${process.pid}`,
  );
  const concurrency = pick('concurrency', values.concurrency, env, undefined, '8');
  const apiQps = pick('api-qps', values['api-qps'], env, undefined, '200');
  const apiConcurrency = pick('api-concurrency', values['api-concurrency'], env, undefined, '32');
  const resync = pick('resync-period', values['resync-period'], env, undefined, '300');
  // 25 min, plus at most one 5-min resync: an edited Vault object is put
  // back within the 30 minutes the baseline promises (README, "Scale").
  const vaultVerify = pick(
    'vault-verify-period',
    values['vault-verify-period'],
    env,
    undefined,
    '1500',
  );
  const port = pick('metrics-port', values['metrics-port'], env, 'METRICS_PORT', '8080');
  const host = pick('metrics-host', values['metrics-host'], env, undefined, '0.0.0.0');
  const lease = pick('lease-duration', values['lease-duration'], env, undefined, '15');
  const shards = pick('shards', values.shards, env, 'SHARDS', '1');
  const minRotation = pick(
    'min-rotation-interval',
    values['min-rotation-interval'],
    env,
    undefined,
    '60',
  );
  const backupImage = pick(
    'backup-image',
    values['backup-image'],
    env,
    'BACKUP_IMAGE',
    DEFAULT_BACKUP_IMAGE,
  );
  const verifyConcurrency = pick(
    'verify-concurrency',
    values['verify-concurrency'],
    env,
    undefined,
    '1',
  );
  const certificateRetention = pick(
    'certificate-retention',
    values['certificate-retention'],
    env,
    undefined,
    '1826d',
  );
  if (!DURATION_PATTERN.test(certificateRetention.raw))
    throw new UsageError(
      `${certificateRetention.source}: expected a duration such as 1826d (s, m, h or d), got ${JSON.stringify(certificateRetention.raw)}`,
    );
  const purgedTenants = pick(
    'purged-tenants',
    values['purged-tenants'],
    env,
    'PURGED_TENANTS',
    'keep',
  );
  if (!(PURGED_TENANTS as readonly string[]).includes(purgedTenants.raw))
    throw new UsageError(
      `${purgedTenants.source}: expected one of ${PURGED_TENANTS.join(', ')}, got ${JSON.stringify(purgedTenants.raw)}`,
    );
  const clusterCidrs = [
    ...new Set([
      ...(values['cluster-cidr'] ?? []),
      ...(env.CLUSTER_CIDRS ?? '')
        .split(',')
        .map((value) => value.trim())
        .filter((value) => value !== ''),
    ]),
  ];

  return {
    namespace: namespace.raw,
    identity: nonEmpty(identity.source, identity.raw),
    concurrency: wholeNumber(concurrency.source, concurrency.raw, 1, 1000),
    apiQps: wholeNumber(apiQps.source, apiQps.raw, 1, 10_000),
    apiConcurrency: wholeNumber(apiConcurrency.source, apiConcurrency.raw, 1, 1000),
    resyncPeriodSeconds: wholeNumber(resync.source, resync.raw, 1, MAX_TIMER_SECONDS),
    vaultVerifyPeriodSeconds: wholeNumber(vaultVerify.source, vaultVerify.raw, 0, 86_400),
    metricsHost: nonEmpty(host.source, host.raw),
    // 0 asks the kernel for any free port (the tests use it).
    metricsPort: wholeNumber(port.source, port.raw, 0, 65535),
    // Below 2 s the renew deadline (2/3 of it) is shorter than one retry period.
    leaseDurationSeconds: wholeNumber(lease.source, lease.raw, 2, 3600),
    shards: wholeNumber(shards.source, shards.raw, 1, MAX_SHARDS),
    clusterCidrs,
    // Below a second, rotation would run on every reconcile and flood PostgreSQL and Vault.
    minRotationIntervalSeconds: wholeNumber(minRotation.source, minRotation.raw, 1, 31_536_000),
    backupImage: nonEmpty(backupImage.source, backupImage.raw),
    verifyConcurrency: wholeNumber(verifyConcurrency.source, verifyConcurrency.raw, 1, 64),
    certificateRetentionSeconds: durationToMs(certificateRetention.raw) / 1000,
    purgedTenants: purgedTenants.raw as PurgedTenants,
  };
}
