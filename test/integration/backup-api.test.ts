import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { IMMUTABLE_SPEC_MESSAGE } from '../../src/api/tenantbackup.ts';
import {
  backupCronJobName,
  buildBackupCronJob,
  buildBackupServiceAccount,
  type BackupJobTenant,
} from '../../src/backup/cronjob.ts';
import {
  buildBackupJobClusterRole,
  buildBackupJobClusterRoleBinding,
} from '../../src/backup/rbac.ts';
import { OperatorError } from '../../src/errors.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import { adminClient, kubectl, tenantManifest, type CommandResult } from '../support/cluster.ts';
import { waitFor } from '../support/wait.ts';

// The backup API on the real API server: the CRDs refuse bad schedules and
// stores with messages that name the field, a TenantBackup's spec never
// changes, the admission guard keeps each backup job to its own tenant, and
// the CronJob the operator builds is one the API server accepts.

const A = 'bkp-api-a';
const B = 'bkp-api-b';
const OPERATOR_NAMESPACE = 'tenant-system';
const TENANTS = '/apis/tenancy.io/v1alpha1/tenants';
const STORES = '/apis/tenancy.io/v1alpha1/backupstores';
const BACKUPS = '/apis/tenancy.io/v1alpha1/tenantbackups';

let client: KubeClient;
const createdBackups: string[] = [];

before(async () => {
  client = await adminClient();
  for (const object of [
    buildBackupJobClusterRole(),
    buildBackupJobClusterRoleBinding(OPERATOR_NAMESPACE),
  ]) {
    const result = kubectl(['apply', '--server-side', '-f', '-'], JSON.stringify(object));
    assert.equal(result.status, 0, result.stderr);
  }
});

after(async () => {
  for (const name of createdBackups) await client.delete(`${BACKUPS}/${name}`);
  kubectl([
    'delete',
    'clusterrolebinding,clusterrole',
    'tenancy.io:backup-job',
    '--ignore-not-found',
  ]);
  await client.close();
});

/** The API server's refusal (422) of creating `body` at `path`. */
async function refusal(path: string, body: KubeObject): Promise<string> {
  try {
    await client.request('POST', path, { query: { dryRun: 'All' }, body });
  } catch (err: unknown) {
    assert.ok(err instanceof OperatorError, `unexpected error ${String(err)}`);
    assert.equal(err.httpStatus, 422, err.message);
    return err.message;
  }
  assert.fail(`${body.kind} ${JSON.stringify(body)} was accepted`);
}

async function accepted(path: string, body: KubeObject): Promise<KubeObject> {
  return client.request<KubeObject>('POST', path, { query: { dryRun: 'All' }, body });
}

describe('backup schedules are refused where they are written', () => {
  test('bad schedules in either field, with a message that names the field and what is wrong', async () => {
    const cases: [string, RegExp][] = [
      ['* * * * * * *', /must be 5 fields separated by single spaces/],
      ['99 2 * * *', /the minute field \(1st of 5\) '99' is not valid: use 0-59, \*, H/],
      ['0 24 * * *', /the hour field \(2nd of 5\) '24' is not valid/],
      ['0 2 32 * *', /the day-of-month field \(3rd of 5\) '32' is not valid/],
      ['0 2 * 0 *', /the month field \(4th of 5\) '0' is not valid/],
      ['0 2 * * 1,8', /the day-of-week field \(5th of 5\) '1,8' is not valid/],
      ['0 5-1 * * *', /the hour field \(2nd of 5\) '5-1' is not valid: .*ranges a-b with a <= b/],
      ['*/0 2 * * *', /the minute field \(1st of 5\) '\*\/0' is not valid/],
      ['0 2 * * MON', /the day-of-week field \(5th of 5\) 'MON' is not valid/],
    ];
    for (const field of ['schedule', 'verifySchedule']) {
      for (const [schedule, message] of cases) {
        const text = await refusal(
          TENANTS,
          tenantManifest('bkp-api-schedule', { backup: { [field]: schedule } }),
        );
        assert.match(text, new RegExp(`spec\\.backup\\.${field}: Invalid value`), schedule);
        assert.match(text, message, `${field}: ${schedule}`);
        const other = field === 'schedule' ? 'verifySchedule' : 'schedule';
        assert.doesNotMatch(
          text,
          new RegExp(`spec\\.backup\\.${other}`),
          'only the bad field is named',
        );
      }
    }
  });

  test('valid schedules and the defaults are accepted', async () => {
    for (const schedule of [
      'H 2 * * *',
      'H H * * 0',
      '*/15 * * * *',
      '0 1-5/2 * * 1,3,5',
      'H/20 H * 1-12/3 0-7',
    ]) {
      const tenant = (await accepted(
        TENANTS,
        tenantManifest('bkp-api-schedule', { backup: { schedule, verifySchedule: schedule } }),
      )) as KubeObject & { spec: { backup: Record<string, unknown> } };
      assert.equal(tenant.spec.backup.schedule, schedule);
    }
    const defaults = (await accepted(TENANTS, tenantManifest('bkp-api-schedule'))) as KubeObject & {
      spec: { backup: Record<string, unknown> };
    };
    assert.deepEqual(defaults.spec.backup, {
      enabled: true,
      schedule: 'H 2 * * *',
      retention: '35d',
      verifySchedule: 'H H * * 0',
      keyRotationInterval: '90d',
    });
  });
});

function store(name: string, spec: Record<string, unknown>): KubeObject {
  return { apiVersion: 'tenancy.io/v1alpha1', kind: 'BackupStore', metadata: { name }, spec };
}

const S3 = { bucket: 'backups', credentialsSecret: { name: 'store-credentials' } };

describe('BackupStore', () => {
  test('exactly one of s3 and filesystem', async () => {
    for (const spec of [{}, { s3: S3, filesystem: { path: '/var/backups' } }]) {
      assert.match(
        await refusal(STORES, store('bkp-api-store', spec)),
        /exactly one of s3 and filesystem must be set/,
      );
    }
    const s3 = (await accepted(STORES, store('bkp-api-store', { s3: S3 }))) as KubeObject & {
      spec: { s3: Record<string, unknown> };
    };
    assert.deepEqual(s3.spec.s3, { ...S3, forcePathStyle: false, signingRegion: 'us-east-1' });
    await accepted(
      STORES,
      store('bkp-api-store', { filesystem: { path: '/var/backups' }, region: 'eu-west' }),
    );
  });

  test('paths, buckets, prefixes and endpoints are checked', async () => {
    const cases: [Record<string, unknown>, RegExp][] = [
      [{ filesystem: { path: 'relative/dir' } }, /spec\.filesystem\.path/],
      [{ filesystem: { path: '/var/../etc' } }, /spec\.filesystem\.path/],
      [{ s3: { ...S3, bucket: 'Not_A_Bucket' } }, /spec\.s3\.bucket/],
      [{ s3: { ...S3, prefix: '../other' } }, /spec\.s3\.prefix/],
      [{ s3: { ...S3, endpoint: 'ftp://example.com' } }, /spec\.s3\.endpoint/],
      [{ s3: { bucket: 'backups' } }, /spec\.s3\.credentialsSecret: Required value/],
    ];
    for (const [spec, message] of cases) {
      assert.match(
        await refusal(STORES, store('bkp-api-store', spec)),
        message,
        JSON.stringify(spec),
      );
    }
  });
});

function tenantBackup(
  name: string,
  tenant: string,
  extra: Record<string, unknown> = {},
): KubeObject {
  return {
    apiVersion: 'tenancy.io/v1alpha1',
    kind: 'TenantBackup',
    metadata: { name },
    spec: { tenant, ...extra },
  };
}

describe('TenantBackup', () => {
  test('the spec never changes after creation', async () => {
    const name = `${A}-immutable`;
    const created = (await client.create(BACKUPS, tenantBackup(name, A))) as KubeObject & {
      spec: Record<string, unknown>;
    };
    createdBackups.push(name);
    assert.deepEqual(created.spec, { tenant: A, reason: 'OnDemand' });
    for (const patch of [{ tenant: B }, { reason: 'Scheduled' }, { store: 'elsewhere' }]) {
      try {
        await client.mergePatch(`${BACKUPS}/${name}`, { spec: patch });
        assert.fail(`spec change ${JSON.stringify(patch)} was accepted`);
      } catch (err: unknown) {
        assert.ok(err instanceof OperatorError && err.httpStatus === 422, String(err));
        assert.match(
          err.message,
          new RegExp(IMMUTABLE_SPEC_MESSAGE.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')),
        );
      }
    }
  });

  test('the tenant is a tenant name, never a reserved one', async () => {
    assert.match(
      await refusal(BACKUPS, tenantBackup('bkp-api-x', 'system')),
      /spec\.tenant.*reserved/,
    );
    assert.match(await refusal(BACKUPS, tenantBackup('bkp-api-x', 'Acme.Corp')), /spec\.tenant/);
    assert.match(
      await refusal(BACKUPS, tenantBackup('bkp-api-x', A, { reason: 'Whim' })),
      /spec\.reason/,
    );
  });
});

/** kubectl as the backup job of `tenant`: its ServiceAccount in the operator's namespace. */
function asBackupJob(tenant: string, args: string[], input?: string): CommandResult {
  return kubectl(
    [
      '--as',
      `system:serviceaccount:${OPERATOR_NAMESPACE}:backup-${tenant}`,
      '--as-group',
      'system:serviceaccounts',
      '--as-group',
      `system:serviceaccounts:${OPERATOR_NAMESPACE}`,
      '--as-group',
      'system:authenticated',
      ...args,
    ],
    input,
  );
}

function patchStatus(name: string, phase: string): string[] {
  return [
    'patch',
    'tenantbackup',
    name,
    '--subresource=status',
    '--type=merge',
    '-p',
    JSON.stringify({ status: { phase } }),
  ];
}

describe("the admission guard keeps each backup job to its own tenant's TenantBackups", () => {
  test('backup-b may not create a TenantBackup for tenant a, and may create its own', async () => {
    const foreign = JSON.stringify(tenantBackup(`${A}-by-b`, A, { reason: 'Scheduled' }));
    // The API server loads new policies in the background: wait for this one.
    const refused = await waitFor('the tenant-backups policy to be enforced', () => {
      const result = asBackupJob(B, ['create', '--dry-run=server', '-f', '-'], foreign);
      return result.status !== 0 ? result : undefined;
    });
    assert.match(refused.stderr, /tenancy\.io-tenant-backups/);
    assert.match(
      refused.stderr,
      new RegExp(
        `system:serviceaccount:${OPERATOR_NAMESPACE}:backup-${B} is not the backup job of tenant ${A}`,
      ),
    );
    // Really refused, not only in a dry run; and the same for an update of a's backup.
    assert.notEqual(asBackupJob(B, ['create', '-f', '-'], foreign).status, 0);
    assert.equal(await client.get(`${BACKUPS}/${A}-by-b`), undefined);

    const own = `${B}-by-b`;
    const result = asBackupJob(
      B,
      ['create', '-f', '-'],
      JSON.stringify(tenantBackup(own, B, { reason: 'Scheduled' })),
    );
    createdBackups.push(own);
    assert.equal(result.status, 0, result.stderr);
    assert.ok(await client.get(`${BACKUPS}/${own}`));
  });

  test("status: the own backup job and break-glass write it; another tenant's job and admins do not", async () => {
    const name = `${B}-status`;
    await client.create(BACKUPS, tenantBackup(name, B));
    createdBackups.push(name);

    const own = asBackupJob(B, patchStatus(name, 'Running'));
    assert.equal(own.status, 0, own.stderr);

    const foreign = asBackupJob(A, patchStatus(name, 'Succeeded'));
    assert.notEqual(foreign.status, 0);
    assert.match(foreign.stderr, new RegExp(`backup-${A} is not the backup job of tenant ${B}`));

    const admin = kubectl(patchStatus(name, 'Succeeded'));
    assert.notEqual(admin.status, 0);
    assert.match(admin.stderr, /only tenant-operator and backup jobs write TenantBackup status/);

    const live = (await client.get(`${BACKUPS}/${name}`)) as KubeObject & {
      status?: { phase?: string };
    };
    assert.equal(live.status?.phase, 'Running', "only the own job's write landed");

    const breakGlass = kubectl(patchStatus(name, 'Failed'), undefined, { as: 'break-glass' });
    assert.equal(breakGlass.status, 0, breakGlass.stderr);
  });

  test("a backup job's spec writes to its own TenantBackup pass the guard (and the CRD keeps the spec)", async () => {
    const name = `${B}-labels`;
    await client.create(BACKUPS, tenantBackup(name, B));
    createdBackups.push(name);
    const own = asBackupJob(B, ['label', 'tenantbackup', name, 'tenancy.io/run=1']);
    assert.equal(own.status, 0, own.stderr);
    const foreign = asBackupJob(A, [
      'label',
      'tenantbackup',
      name,
      'tenancy.io/run=2',
      '--overwrite',
    ]);
    assert.notEqual(foreign.status, 0);
    assert.match(foreign.stderr, /is not the backup job of tenant/);
  });
});

describe('the backup CronJob is one the API server accepts', () => {
  function tenant(name: string): BackupJobTenant {
    return {
      name,
      uid: randomUUID(),
      spec: {
        state: 'Active',
        database: { enabled: true },
        backup: { enabled: true, schedule: 'H H * * 1-5' },
      },
    };
  }
  const config = {
    namespace: OPERATOR_NAMESPACE,
    image: 'registry.example/tenant-operator:test',
    vaultAddr: 'https://vault.example:8200',
  };

  test('for a short and a 56-character tenant name (server-side dry run)', () => {
    for (const name of [A, `bkp-api-${'l'.repeat(48)}`]) {
      for (const object of [
        buildBackupServiceAccount(tenant(name), config),
        buildBackupCronJob(tenant(name), config),
      ]) {
        const result = kubectl(
          ['create', '--dry-run=server', '-o', 'json', '-f', '-'],
          JSON.stringify(object),
        );
        assert.equal(result.status, 0, `${object.kind} for ${name}: ${result.stderr}`);
        const stored = JSON.parse(result.stdout) as KubeObject & { spec?: { schedule?: string } };
        assert.equal(
          stored.metadata.name,
          object.kind === 'CronJob' ? backupCronJobName(name) : `backup-${name}`,
        );
        if (object.kind === 'CronJob') {
          assert.equal(stored.spec?.schedule, (object.spec as { schedule: string }).schedule);
          assert.ok(stored.metadata.name.length <= 52);
        }
      }
    }
  });
});
