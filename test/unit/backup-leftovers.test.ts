import assert from 'node:assert/strict';
import { test } from 'node:test';
import type { StoredBackup } from '../../src/backup/catalog.ts';
import {
  DEFAULT_LEFTOVER_GRACE_MS,
  interruptedMessage,
  interruptedRecords,
  isAbandonedBackup,
} from '../../src/backup/leftovers.ts';
import type { TenantBackupObject, TenantBackupStatus } from '../../src/backup/records.ts';

// The part of leftover cleanup that decides, apart from the store and the API
// server (which test/integration/backup-crash.test.ts uses for real): what is
// old enough that no run can still be writing it.

const HOUR = 3600_000;
const NOW = new Date('2026-11-23T12:00:00Z');

function stored(backupId: string, complete: boolean, lastModified: string): StoredBackup {
  return {
    backupId,
    complete,
    keys: [`tenants/acme/uid-1/${backupId}/data`],
    lastModified: new Date(lastModified),
    bytes: 1,
  };
}

function record(name: string, status: TenantBackupStatus, tenant = 'acme'): TenantBackupObject {
  return {
    apiVersion: 'tenancy.io/v1alpha1',
    kind: 'TenantBackup',
    metadata: { name, resourceVersion: '1' },
    spec: { tenant },
    status,
  };
}

const scope = { tenant: 'acme', storeName: 'fs', now: NOW, graceMs: 6 * HOUR };

test('the default grace outlasts the backup Job deadline (6 h)', () => {
  assert.ok(DEFAULT_LEFTOVER_GRACE_MS > 6 * HOUR);
});

test('an unfinished backup is abandoned only when old by its id and idle as long', () => {
  const grace = 6 * HOUR;
  // Started 8 h ago, last written 7 h ago: no run can still be at it.
  assert.equal(
    isAbandonedBackup(stored('20261123T040000Z-a1b2c3', false, '2026-11-23T05:00:00Z'), NOW, grace),
    true,
  );
  // Started 8 h ago but written to 1 h ago: something is still writing, keep it.
  assert.equal(
    isAbandonedBackup(stored('20261123T040000Z-a1b2c3', false, '2026-11-23T11:00:00Z'), NOW, grace),
    false,
  );
  // Started 2 h ago: an on-demand run may be under way.
  assert.equal(
    isAbandonedBackup(stored('20261123T100000Z-a1b2c3', false, '2026-11-23T00:00:00Z'), NOW, grace),
    false,
  );
  // Exactly at the grace: not yet.
  assert.equal(
    isAbandonedBackup(stored('20261123T060000Z-a1b2c3', false, '2026-11-23T06:00:00Z'), NOW, grace),
    false,
  );
  // A complete backup is never a leftover, however old.
  assert.equal(
    isAbandonedBackup(stored('20250101T000000Z-a1b2c3', true, '2025-01-01T00:00:00Z'), NOW, grace),
    false,
  );
  // Grace 0: anything unfinished from before now.
  assert.equal(
    isAbandonedBackup(stored('20261123T115959Z-a1b2c3', false, '2026-11-23T11:59:59Z'), NOW, 0),
    true,
  );
});

test('only old Running records of this tenant and store without a manifest are interrupted', () => {
  const old = { startedAt: '2026-11-23T02:00:00Z', store: 'fs' };
  const records = [
    record('acme-old', { ...old, phase: 'Running', backupId: '20261123T020000Z-000001' }),
    // Young: an on-demand run may be at it right now.
    record('acme-young', {
      phase: 'Running',
      store: 'fs',
      backupId: '20261123T110000Z-000002',
      startedAt: '2026-11-23T11:00:00Z',
    }),
    // Its manifest is there: the run finished the backup, only its status write was lost.
    record('acme-complete', { ...old, phase: 'Running', backupId: '20261123T020000Z-000003' }),
    // Another store: its manifests are not in this listing.
    record('acme-other-store', {
      ...old,
      store: 's3',
      phase: 'Running',
      backupId: '20261123T020000Z-000004',
    }),
    record('acme-failed', { ...old, phase: 'Failed', backupId: '20261123T020000Z-000005' }),
    record('acme-succeeded', { ...old, phase: 'Succeeded', backupId: '20261123T020000Z-000006' }),
    record('acme-pending', { phase: 'Pending' }),
    // Another tenant's record, labelled wrongly or not: never ours.
    record('beta-old', { ...old, phase: 'Running', backupId: '20261123T020000Z-000007' }, 'beta'),
    // The record this very run is about to use.
    record('acme-this-run', { ...old, phase: 'Running', backupId: '20261123T020000Z-000008' }),
    // No startedAt: the backup id's time counts.
    record('acme-no-start', {
      phase: 'Running',
      store: 'fs',
      backupId: '20261122T020000Z-000009',
    }),
    // Neither a readable start nor a backup id time: left alone.
    record('acme-unreadable', {
      phase: 'Running',
      store: 'fs',
      backupId: 'not-an-id',
      startedAt: 'yesterday',
    }),
  ];
  const found = interruptedRecords(
    records,
    { ...scope, exceptRecord: 'acme-this-run' },
    new Set(['20261123T020000Z-000003']),
  );
  assert.deepEqual(
    found.map(({ record: r, backupId }) => [r.metadata.name, backupId]),
    [
      ['acme-old', '20261123T020000Z-000001'],
      ['acme-no-start', '20261122T020000Z-000009'],
    ],
  );
});

test('the message says the run was interrupted and no manifest was written', () => {
  assert.match(
    interruptedMessage('20261123T020000Z-000001'),
    /^interrupted: .*20261123T020000Z-000001.*no manifest was written$/,
  );
});
