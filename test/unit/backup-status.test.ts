import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { tenantSpecSchema } from '../../src/api/tenant.ts';
import { dueForExpiry } from '../../src/backup/expiry.ts';
import { backupHistory, VERIFIED_CONDITION } from '../../src/backup/history.ts';
import { buildOnDemandJob, onDemandJobName } from '../../src/backup/on-demand-job.ts';
import type { TenantBackupObject, TenantBackupStatus } from '../../src/backup/records.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import { backupOutcome, backupFactsOf } from '../../src/tenant/backup-status.ts';
import { statusEvents } from '../../src/tenant/status.ts';

// The pure parts of the operator's backup step: what the records say, what
// status and Events follow, which backups retention takes, the on-demand Job.

const TENANT = { name: 'acme', creationTimestamp: '2026-11-01T00:00:00Z' };
const valid = {
  name: 'acme',
  uid: 'uid-1',
  namespace: 'tenant-acme',
  spec: tenantSpecSchema.parse({ owners: [{ kind: 'User', name: 'a' }] }),
};

function record(
  name: string,
  status: TenantBackupStatus | undefined,
  created = '2026-11-20T00:00:00Z',
  tenant = 'acme',
): TenantBackupObject {
  return {
    apiVersion: 'tenancy.io/v1alpha1',
    kind: 'TenantBackup',
    metadata: { name, uid: `uid-${name}`, creationTimestamp: created },
    spec: { tenant },
    ...(status ? { status } : {}),
  };
}

const ok = (id: string, keyVersion = 1): TenantBackupStatus => ({
  phase: 'Succeeded',
  backupId: id,
  store: 'fs',
  startedAt: `${id.slice(0, 4)}-${id.slice(4, 6)}-${id.slice(6, 8)}T02:00:00Z`,
  completedAt: `${id.slice(0, 4)}-${id.slice(4, 6)}-${id.slice(6, 8)}T02:00:30Z`,
  bytes: 100,
  sha256: 'ab',
  keyVersion,
});

describe('backup history from records', () => {
  test('latest good backup, failures since, requests not yet run; other tenants and older namesakes ignored', () => {
    const records = [
      record('a1', ok('20261120T020000Z-aaaaaa')),
      record('a2', { phase: 'Failed', backupId: '20261121T020000Z-bbbbbb', message: 'x' }),
      // Failed before it had an id: sorts by its creation, after a2.
      record('a3', { phase: 'Failed', message: 'no store' }, '2026-11-22T00:00:00Z'),
      record('a4', undefined, '2026-11-22T01:00:00Z'),
      record('other', ok('20261123T020000Z-cccccc'), '2026-11-23T00:00:00Z', 'other'),
      record('old', ok('20261001T020000Z-dddddd'), '2026-10-01T00:00:00Z'),
    ];
    const history = backupHistory(records, TENANT);
    assert.equal(history.latestSucceeded?.metadata.name, 'a1');
    assert.equal(history.latestFinished?.metadata.name, 'a3');
    assert.equal(history.failuresSinceSuccess, 2);
    assert.deepEqual(
      history.awaitingRun.map((r) => r.metadata.name),
      ['a4'],
    );
    assert.deepEqual(
      history.records.map((r) => r.metadata.name),
      ['a1', 'a2', 'a3', 'a4'],
    );
  });

  test('a record with an id that is not one sorts by creation and throws nowhere', () => {
    const history = backupHistory(
      [
        record('x', { phase: 'Succeeded', backupId: '../../etc' }),
        record('y', ok('20261120T020000Z-aaaaaa')),
      ],
      TENANT,
    );
    assert.equal(history.records.length, 2);
    const outcome = backupOutcome({
      valid,
      history,
      schedule: { running: true, store: 'fs', schedule: '5 2 * * *', nextRun: new Date() },
    });
    assert.ok(outcome.fields.lastBackup);
  });
});

describe('status and conditions', () => {
  test('succeeded, verified, scheduled', () => {
    const verified = record('a1', {
      ...ok('20261120T020000Z-aaaaaa', 2),
      conditions: [
        {
          type: VERIFIED_CONDITION,
          status: 'True',
          reason: 'Verified',
          message: 'restored: 2 tables, 10 rows match',
          lastTransitionTime: '2026-11-22T05:00:00Z',
        },
      ],
    });
    const outcome = backupOutcome({
      valid,
      history: backupHistory([verified], TENANT),
      schedule: {
        running: true,
        store: 'fs',
        schedule: '5 2 * * *',
        nextRun: new Date('2026-11-23T02:05:00Z'),
      },
      cronJob: 'backup-acme',
      keyVersion: 2,
      keyRotatedAt: new Date('2026-11-01T00:00:00Z'),
    });
    assert.deepEqual(
      outcome.conditions.map((c) => [c.type, c.status, c.reason]),
      [
        ['BackupScheduled', 'True', 'Scheduled'],
        ['LastBackupSucceeded', 'True', 'BackupSucceeded'],
        ['BackupVerified', 'True', 'Verified'],
      ],
    );
    assert.deepEqual(outcome.fields.lastBackup, {
      id: '20261120T020000Z-aaaaaa',
      time: '2026-11-20T02:00:00Z',
      bytes: 100,
      sha256: 'ab',
      keyVersion: 2,
      store: 'fs',
      durationSeconds: 30,
    });
    assert.deepEqual(outcome.fields.lastVerifiedBackup, {
      id: '20261120T020000Z-aaaaaa',
      time: '2026-11-22T05:00:00Z',
    });
    assert.equal(outcome.fields.backup?.nextRun, '2026-11-23T02:05:00Z');
    assert.equal(outcome.fields.backup?.failuresSinceSuccess, 0);
  });

  test('nothing yet: Unknown, not False (no alert for a new tenant)', () => {
    const outcome = backupOutcome({
      valid,
      history: backupHistory([], TENANT),
      schedule: { running: false, reason: 'NoBackupStore', message: 'no BackupStore in region x' },
    });
    assert.deepEqual(
      outcome.conditions.map((c) => [c.type, c.status]),
      [
        ['BackupScheduled', 'False'],
        ['LastBackupSucceeded', 'Unknown'],
        ['BackupVerified', 'Unknown'],
      ],
    );
  });

  test('each new failure, each new backup and each rotation is one Event; a resync none', () => {
    const base = { phase: 'Ready' as const, conditions: [] };
    const failed = (message: string) => ({
      ...base,
      conditions: [
        {
          type: 'LastBackupSucceeded',
          status: 'False' as const,
          reason: 'BackupFailed',
          message,
          lastTransitionTime: 't',
        },
      ],
    });
    const reasons = (before: object | undefined, after: object) =>
      statusEvents(before as never, after as never).map((e) => `${e.type}/${e.reason}`);
    assert.deepEqual(reasons(base, failed('TenantBackup a failed')), ['Warning/BackupFailed']);
    assert.deepEqual(reasons(failed('TenantBackup a failed'), failed('TenantBackup a failed')), []);
    assert.deepEqual(reasons(failed('TenantBackup a failed'), failed('TenantBackup b failed')), [
      'Warning/BackupFailed',
    ]);
    const stored = (id: string, version: number) => ({
      ...base,
      lastBackup: { id, time: 't' },
      backup: { transitKeyVersion: version },
    });
    assert.deepEqual(reasons(stored('1', 1), stored('2', 1)), ['Normal/BackupSucceeded']);
    assert.deepEqual(reasons(stored('2', 1), stored('2', 2)), ['Normal/BackupKeyRotated']);
    assert.deepEqual(reasons(stored('2', 2), stored('2', 2)), []);
  });

  test('metrics read from status; a tenant without backups reports none', () => {
    assert.equal(
      backupFactsOf({ apiVersion: 'v', kind: 'Tenant', metadata: { name: 'x' } }),
      undefined,
    );
    const facts = backupFactsOf({
      apiVersion: 'v',
      kind: 'Tenant',
      metadata: { name: 'acme' },
      status: {
        lastBackup: { id: 'i', time: '2026-11-20T02:00:00Z', bytes: 5, durationSeconds: 3 },
        backup: { failuresSinceSuccess: 2 },
        conditions: [
          {
            type: 'BackupVerified',
            status: 'False',
            reason: 'VerificationFailed',
            message: 'm',
            lastTransitionTime: 't',
          },
        ],
      },
    });
    assert.deepEqual(facts, {
      tenant: 'acme',
      lastSuccess: Date.parse('2026-11-20T02:00:00Z') / 1000,
      lastBytes: 5,
      lastDurationSeconds: 3,
      failuresSinceSuccess: 2,
      lastVerified: undefined,
      verified: 0,
    });
  });
});

describe('retention', () => {
  const now = new Date('2026-11-23T12:00:00Z');
  const day = 86_400_000;
  const tenant = { name: 'acme', uid: 'u', active: true };

  test('older than retention goes; the newest good one stays while active, goes when not', () => {
    const records = [
      record('a', ok('20261101T020000Z-aaaaaa')),
      record('b', ok('20261102T020000Z-bbbbbb')),
      record('c', {
        phase: 'Failed',
        backupId: '20261103T020000Z-cccccc',
        completedAt: '2026-11-03T02:01:00Z',
      }),
      record('d', { phase: 'Running', backupId: '20261104T020000Z-dddddd' }),
    ];
    const names = (due: { record: TenantBackupObject }[]) => due.map((d) => d.record.metadata.name);
    assert.deepEqual(names(dueForExpiry(records, tenant, 10 * day, now)), ['a', 'c']);
    assert.deepEqual(names(dueForExpiry(records, { ...tenant, active: false }, 10 * day, now)), [
      'a',
      'b',
      'c',
    ]);
    assert.deepEqual(names(dueForExpiry(records, tenant, 60 * day, now)), []);
  });

  test('keys come from the layout, never from a record’s text', () => {
    const hostile = record('h', { ...ok('20261101T020000Z-aaaaaa'), backupId: '../../../etc/x' });
    assert.deepEqual(dueForExpiry([hostile], { ...tenant, active: false }, day, now), []);
  });
});

describe('the on-demand Job', () => {
  test("the CronJob's template, told which record to fill, owned by the record", () => {
    const cronJob: KubeObject = {
      apiVersion: 'batch/v1',
      kind: 'CronJob',
      metadata: { name: 'backup-acme', namespace: 'tenant-system' },
      spec: {
        jobTemplate: {
          metadata: { labels: { a: 'b' } },
          spec: {
            backoffLimit: 2,
            template: {
              metadata: { labels: { a: 'b' } },
              spec: { containers: [{ name: 'backup', command: ['tenant-operator', 'backup'] }] },
            },
          },
        },
      },
    };
    const job = buildOnDemandJob(cronJob, record('acme-now', undefined));
    assert.equal(job.metadata.name, 'tbk-acme-now');
    assert.equal(job.metadata.namespace, 'tenant-system');
    assert.deepEqual(job.metadata.ownerReferences?.[0]?.name, 'acme-now');
    const spec = job.spec as {
      backoffLimit: number;
      template: { spec: { containers: { command: string[] }[] } };
    };
    assert.equal(spec.backoffLimit, 2);
    assert.deepEqual(spec.template.spec.containers[0]?.command, [
      'tenant-operator',
      'backup',
      '--record',
      'acme-now',
    ]);
  });

  test('Job names stay within 63 characters and distinct', () => {
    const a = onDemandJobName(`${'x'.repeat(100)}-a`);
    const b = onDemandJobName(`${'x'.repeat(100)}-b`);
    assert.ok(a.length <= 63 && b.length <= 63);
    assert.notEqual(a, b);
    assert.match(a, /^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/);
  });
});
