import assert from 'node:assert/strict';
import { test } from 'node:test';
import { durationToMs } from '../../src/api/duration.ts';
import { tenantSpecSchema } from '../../src/api/tenant.ts';
import { describeIssues } from '../../src/api/validate.ts';

test('defaults fill a minimal spec', () => {
  const spec = tenantSpecSchema.parse({ owners: [{ kind: 'Group', name: 'a' }] });
  assert.equal(spec.state, 'Active');
  assert.equal(spec.retention.afterClosure, '60d');
  assert.equal(spec.retention.legalHold, false);
  assert.equal(spec.quota.memory, '8Gi');
  assert.deepEqual(spec.network.allowEgressCIDRs, []);
  assert.equal(spec.database.delivery, 'Vault');
});

test('invalid specs are described field by field', () => {
  const result = tenantSpecSchema.safeParse({
    owners: [],
    state: 'Deleted',
    retention: { afterClosure: '60 days' },
  });
  assert.equal(result.success, false);
  const message = describeIssues(result.error, 'spec');
  assert.match(message, /spec\.owners: at least one owner is required/);
  assert.match(message, /spec\.state: /);
  assert.match(message, /spec\.retention\.afterClosure: must be a whole number/);
});

test('durations convert to milliseconds and reject anything else', () => {
  assert.equal(durationToMs('60d'), 60 * 86_400_000);
  assert.equal(durationToMs('26h'), 26 * 3_600_000);
  assert.equal(durationToMs('45s'), 45_000);
  assert.throws(() => durationToMs('1w'), /invalid duration/);
  assert.throws(() => durationToMs('-1d'), /invalid duration/);
});
