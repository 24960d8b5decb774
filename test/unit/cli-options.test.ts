import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';
import { parseOperatorOptions, UsageError } from '../../src/cli/options.ts';

// Bad numbers on the command line stop the operator before it does anything,
// with a message naming the flag and exit status 2 (a usage error).

const MAIN = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));

function runOperator(args: string[], env: Record<string, string> = {}) {
  const result = spawnSync(process.execPath, [MAIN, 'operator', ...args], {
    encoding: 'utf8',
    timeout: 30_000,
    env: {
      PATH: process.env.PATH ?? '',
      // Had parsing let the input through, loading this would fail with exit
      // status 1 and a different message: status 2 proves it stopped first.
      KUBECONFIG: '/nonexistent/kubeconfig',
      ...env,
    },
  });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

describe('operator command-line input', () => {
  const refused: [string[], Record<string, string>, RegExp][] = [
    [['--concurrency', 'x'], {}, /--concurrency: expected a whole number from 1 to 1000, got "x"/],
    [['--concurrency', '0'], {}, /--concurrency: expected a whole number/],
    [['--concurrency', '1e3'], {}, /--concurrency: expected a whole number/],
    [
      ['--resync-period', '-1'],
      {},
      /--resync-period: expected a whole number from 1 to \d+, got "-1"/,
    ],
    [['--resync-period', '9999999999'], {}, /--resync-period: expected a whole number/],
    [
      ['--metrics-port', '99999'],
      {},
      /--metrics-port: expected a whole number from 0 to 65535, got "99999"/,
    ],
    [
      ['--lease-duration', '0'],
      {},
      /--lease-duration: expected a whole number from 2 to 3600, got "0"/,
    ],
    [['--lease-duration', ''], {}, /--lease-duration: expected a whole number/],
    [['--namespace', 'Not_A_Namespace'], {}, /--namespace: expected a namespace name/],
    [['--shards', '0'], {}, /--shards: expected a whole number from 1 to 256, got "0"/],
    [[], { SHARDS: 'many' }, /SHARDS: expected a whole number from 1 to 256, got "many"/],
    [['--no-such-flag'], {}, /Unknown option '--no-such-flag'/],
    [
      [],
      { METRICS_PORT: 'http' },
      /METRICS_PORT: expected a whole number from 0 to 65535, got "http"/,
    ],
  ];
  for (const [args, env, message] of refused) {
    test(`refuses ${[...args, ...Object.entries(env).map(([k, v]) => `${k}=${v}`)].join(' ')}`, () => {
      const result = runOperator(args, env);
      assert.equal(result.status, 2, `exit status; stderr: ${result.stderr}`);
      assert.match(result.stderr, message);
      assert.equal(result.stdout, '', 'the operator logged something: it started');
    });
  }

  test('good input parses, flags win over the environment', () => {
    const options = parseOperatorOptions(
      [
        '--concurrency',
        '3',
        '--metrics-port',
        '0',
        '--lease-duration=4',
        '--identity',
        'a',
        '--cluster-cidr',
        '10.0.0.0/16',
        '--min-rotation-interval',
        '1',
        '--verify-concurrency',
        '2',
        '--certificate-retention',
        '3650d',
      ],
      {
        METRICS_PORT: '9000',
        POD_NAMESPACE: 'ops',
        CLUSTER_CIDRS: '10.96.0.0/12, 10.0.0.0/16',
        BACKUP_IMAGE: 'registry.example/tenant-operator:1.2.3',
        PURGED_TENANTS: 'delete',
        SHARDS: '4',
      },
    );
    assert.deepEqual(options, {
      namespace: 'ops',
      identity: 'a',
      concurrency: 3,
      apiQps: 200,
      apiConcurrency: 32,
      resyncPeriodSeconds: 300,
      vaultVerifyPeriodSeconds: 1500,
      metricsHost: '0.0.0.0',
      metricsPort: 0,
      leaseDurationSeconds: 4,
      shards: 4,
      clusterCidrs: ['10.0.0.0/16', '10.96.0.0/12'],
      minRotationIntervalSeconds: 1,
      backupImage: 'registry.example/tenant-operator:1.2.3',
      verifyConcurrency: 2,
      certificateRetentionSeconds: 3650 * 86_400,
      purgedTenants: 'delete',
    });
    assert.equal(parseOperatorOptions([], { METRICS_PORT: '9000' }).metricsPort, 9000);
    assert.equal(parseOperatorOptions([], {}).backupImage, 'tenant-operator:latest');
    assert.equal(
      parseOperatorOptions(['--vault-verify-period', '0'], {}).vaultVerifyPeriodSeconds,
      0,
    );
    assert.throws(
      () => parseOperatorOptions(['--vault-verify-period', '86401'], {}),
      /--vault-verify-period/,
    );
    assert.equal(parseOperatorOptions([], {}).certificateRetentionSeconds, 1826 * 86_400);
    assert.throws(
      () => parseOperatorOptions(['--certificate-retention', '5y'], {}),
      /--certificate-retention: expected a duration such as 1826d/,
    );
    assert.equal(parseOperatorOptions([], {}).purgedTenants, 'keep');
    // One shard, the single leader, unless asked; the flag wins over SHARDS.
    assert.equal(parseOperatorOptions([], {}).shards, 1);
    assert.equal(parseOperatorOptions(['--shards', '16'], { SHARDS: '2' }).shards, 16);
    const limited = parseOperatorOptions(['--api-qps', '20', '--api-concurrency', '4'], {});
    assert.deepEqual([limited.apiQps, limited.apiConcurrency], [20, 4]);
    assert.throws(() => parseOperatorOptions(['--api-qps', '0'], {}), /--api-qps/);
    assert.throws(
      () => parseOperatorOptions(['--purged-tenants', 'archive'], {}),
      /--purged-tenants: expected one of keep, delete, got "archive"/,
    );
  });

  test('the parser throws a UsageError, which main turns into status 2', () => {
    assert.throws(() => parseOperatorOptions(['--concurrency', '-3'], {}), UsageError);
  });
});
