import assert from 'node:assert/strict';
import { test } from 'node:test';
import {
  backupCronJobName,
  buildBackupCronJob,
  buildBackupServiceAccount,
  MAX_CRONJOB_NAME_LENGTH,
  type BackupJobTenant,
} from '../../src/backup/cronjob.ts';
import { backupServiceAccountName } from '../../src/backup/vault-access.ts';

// The backup CronJob, field by field. What its command does is tested by
// running it as a local process against the real servers.

function tenant(
  name: string,
  overrides: {
    state?: 'Active' | 'Suspended' | 'Closed';
    database?: boolean;
    backup?: boolean;
    schedule?: string;
  } = {},
): BackupJobTenant {
  return {
    name,
    uid: '6f1c2a9e-0000-4000-8000-000000000001',
    spec: {
      state: overrides.state ?? 'Active',
      database: { enabled: overrides.database ?? true },
      backup: { enabled: overrides.backup ?? true, schedule: overrides.schedule ?? 'H 2 * * *' },
    },
  };
}

const CONFIG = {
  namespace: 'tenant-system',
  image: 'registry.example/tenant-operator:1.2.3',
  vaultAddr: 'https://vault.example:8200',
};

const LABELS = { 'app.kubernetes.io/managed-by': 'tenant-operator', 'tenancy.io/tenant': 'acme' };
const OWNER = {
  apiVersion: 'tenancy.io/v1alpha1',
  kind: 'Tenant',
  name: 'acme',
  uid: '6f1c2a9e-0000-4000-8000-000000000001',
  controller: true,
  blockOwnerDeletion: true,
};

test('the CronJob of tenant acme is exactly this', () => {
  assert.deepEqual(buildBackupCronJob(tenant('acme'), CONFIG), {
    apiVersion: 'batch/v1',
    kind: 'CronJob',
    metadata: {
      name: 'backup-acme',
      namespace: 'tenant-system',
      labels: LABELS,
      ownerReferences: [OWNER],
    },
    spec: {
      // H of 'H 2 * * *' for acme: fixed forever, so a tenant's backup time never moves.
      schedule: '25 2 * * *',
      timeZone: 'Etc/UTC',
      concurrencyPolicy: 'Forbid',
      startingDeadlineSeconds: 3600,
      successfulJobsHistoryLimit: 3,
      failedJobsHistoryLimit: 3,
      suspend: false,
      jobTemplate: {
        metadata: { labels: LABELS },
        spec: {
          backoffLimit: 2,
          activeDeadlineSeconds: 21600,
          ttlSecondsAfterFinished: 86400,
          template: {
            metadata: { labels: LABELS },
            spec: {
              serviceAccountName: 'backup-acme',
              serviceAccount: 'backup-acme',
              automountServiceAccountToken: true,
              restartPolicy: 'Never',
              terminationGracePeriodSeconds: 30,
              dnsPolicy: 'ClusterFirst',
              schedulerName: 'default-scheduler',
              securityContext: {
                runAsNonRoot: true,
                runAsUser: 65532,
                runAsGroup: 65532,
                fsGroup: 65532,
                seccompProfile: { type: 'RuntimeDefault' },
              },
              containers: [
                {
                  name: 'backup',
                  image: 'registry.example/tenant-operator:1.2.3',
                  imagePullPolicy: 'IfNotPresent',
                  terminationMessagePath: '/dev/termination-log',
                  terminationMessagePolicy: 'File',
                  command: ['tenant-operator', 'backup', 'run', '--tenant', 'acme'],
                  env: [
                    { name: 'VAULT_ADDR', value: 'https://vault.example:8200' },
                    { name: 'VAULT_AUTH_METHOD', value: 'kubernetes' },
                    { name: 'VAULT_AUTH_ROLE', value: 'backup-acme' },
                    { name: 'VAULT_K8S_TOKEN_FILE', value: '/var/run/secrets/tokens/vault-token' },
                    {
                      name: 'POD_NAMESPACE',
                      valueFrom: {
                        fieldRef: { apiVersion: 'v1', fieldPath: 'metadata.namespace' },
                      },
                    },
                  ],
                  resources: {
                    requests: { cpu: '100m', memory: '256Mi' },
                    limits: { cpu: '1', memory: '512Mi' },
                  },
                  securityContext: {
                    runAsNonRoot: true,
                    allowPrivilegeEscalation: false,
                    readOnlyRootFilesystem: true,
                    capabilities: { drop: ['ALL'] },
                  },
                  volumeMounts: [
                    { name: 'vault-token', mountPath: '/var/run/secrets/tokens', readOnly: true },
                    { name: 'tmp', mountPath: '/tmp' },
                  ],
                },
              ],
              volumes: [
                {
                  name: 'vault-token',
                  projected: {
                    defaultMode: 0o644,
                    sources: [
                      {
                        serviceAccountToken: {
                          audience: 'vault',
                          expirationSeconds: 3600,
                          path: 'vault-token',
                        },
                      },
                    ],
                  },
                },
                { name: 'tmp', emptyDir: {} },
              ],
            },
          },
        },
      },
    },
  });
});

test('the ServiceAccount of tenant acme mounts no token by itself', () => {
  assert.deepEqual(buildBackupServiceAccount(tenant('acme'), CONFIG), {
    apiVersion: 'v1',
    kind: 'ServiceAccount',
    metadata: {
      name: 'backup-acme',
      namespace: 'tenant-system',
      labels: LABELS,
      ownerReferences: [OWNER],
    },
    automountServiceAccountToken: false,
  });
});

test('optional config: pull policy, auth mount, audience, resources, extra env', () => {
  const cronJob = buildBackupCronJob(tenant('acme'), {
    ...CONFIG,
    imagePullPolicy: 'Always',
    vaultAuthMount: 'k8s-prod',
    vaultAudience: 'https://vault.example',
    resources: { requests: { cpu: '1', memory: '1Gi' }, limits: { cpu: '2', memory: '2Gi' } },
    extraEnv: [{ name: 'VAULT_NAMESPACE', value: 'team-a' }],
  });
  const pod = (cronJob.spec as { jobTemplate: { spec: { template: { spec: PodSpec } } } })
    .jobTemplate.spec.template.spec;
  const container = pod.containers[0]!;
  assert.equal(container.imagePullPolicy, 'Always');
  assert.deepEqual(container.resources.limits, { cpu: '2', memory: '2Gi' });
  assert.deepEqual(
    container.env.map((e) => e.name),
    [
      'VAULT_ADDR',
      'VAULT_AUTH_METHOD',
      'VAULT_AUTH_MOUNT',
      'VAULT_AUTH_ROLE',
      'VAULT_K8S_TOKEN_FILE',
      'POD_NAMESPACE',
      'VAULT_NAMESPACE',
    ],
  );
  assert.equal(
    pod.volumes[0]!.projected?.sources[0]?.serviceAccountToken.audience,
    'https://vault.example',
  );
});

interface PodSpec {
  containers: {
    imagePullPolicy?: string;
    resources: { limits: unknown };
    env: { name: string }[];
  }[];
  volumes: { projected?: { sources: { serviceAccountToken: { audience: string } }[] } }[];
}

test('names: backup-<tenant>, hashed down to 52 characters for the CronJob only', () => {
  assert.equal(backupCronJobName('acme'), 'backup-acme');
  const fits = 'a'.repeat(MAX_CRONJOB_NAME_LENGTH - 'backup-'.length);
  assert.equal(backupCronJobName(fits), `backup-${fits}`);
  const long = `${'a'.repeat(20)}-${'b'.repeat(35)}`;
  const other = `${'a'.repeat(20)}-${'b'.repeat(34)}c`;
  const name = backupCronJobName(long);
  assert.equal(name, 'backup-aaaaaaaaaaaaaaaaaaaa-bbbbbbbbbbbbbbb-abe7466e');
  assert.equal(name.length, MAX_CRONJOB_NAME_LENGTH);
  assert.notEqual(backupCronJobName(other), name, 'two long names sharing a start differ');
  assert.match(backupCronJobName(other), /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  // A cut that ends on '-' leaves no double dash before the hash.
  const dashed = `${'a'.repeat(37)}-${'b'.repeat(18)}`;
  assert.doesNotMatch(backupCronJobName(dashed), /--/);
  // The ServiceAccount keeps the whole name: the admission guard maps it back to the tenant.
  assert.equal(backupServiceAccountName(long), `backup-${long}`);
  const cronJob = buildBackupCronJob(tenant(long), CONFIG);
  assert.equal(cronJob.metadata.name, name);
  assert.equal(cronJob.metadata.labels?.['tenancy.io/tenant'], long);
});

test('suspended unless backups and the database are enabled and the tenant is active', () => {
  const suspended = (t: BackupJobTenant) =>
    (buildBackupCronJob(t, CONFIG).spec as { suspend: boolean }).suspend;
  assert.equal(suspended(tenant('acme')), false);
  assert.equal(suspended(tenant('acme', { backup: false })), true);
  assert.equal(suspended(tenant('acme', { database: false })), true);
  assert.equal(suspended(tenant('acme', { state: 'Suspended' })), true);
  assert.equal(suspended(tenant('acme', { state: 'Closed' })), true);
});

test('the schedule is the expanded one; an impossible schedule throws', () => {
  const spec = (t: BackupJobTenant) => buildBackupCronJob(t, CONFIG).spec as { schedule: string };
  assert.equal(spec(tenant('acme', { schedule: '*/15 H * * 1-5' })).schedule.split(' ')[0], '*/15');
  assert.throws(
    () => buildBackupCronJob(tenant('acme', { schedule: '0 0 30 2 *' }), CONFIG),
    /spec\.backup\.schedule/,
  );
});
