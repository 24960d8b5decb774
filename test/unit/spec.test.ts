import assert from 'node:assert/strict';
import { test } from 'node:test';
import { durationToMs } from '../../src/api/duration.ts';
import { ownerReachesAnotherTenant, tenantSpecSchema } from '../../src/api/tenant.ts';
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
  assert.match(message, /spec\.retention\.afterClosure: must be a whole number above 0/);
});

test('durations convert to milliseconds and reject anything else', () => {
  assert.equal(durationToMs('60d'), 60 * 86_400_000);
  assert.equal(durationToMs('26h'), 26 * 3_600_000);
  assert.equal(durationToMs('45s'), 45_000);
  assert.throws(() => durationToMs('1w'), /invalid duration/);
  assert.throws(() => durationToMs('-1d'), /invalid duration/);
});

const owners = [{ kind: 'Group', name: 'a' }];

function issuesOf(spec: Record<string, unknown>): string {
  const result = tenantSpecSchema.safeParse(spec);
  assert.equal(result.success, false, `accepted ${JSON.stringify(spec)}`);
  return describeIssues(result.error, 'spec');
}

test('durations are above 0 and at most 36500d, named by field', () => {
  for (const bad of ['0d', '0s', '00d', '01d', '-1d', '1.5d']) {
    assert.match(
      issuesOf({ owners, retention: { afterClosure: bad } }),
      /spec\.retention\.afterClosure: must be a whole number above 0/,
      bad,
    );
  }
  for (const tooLong of ['99999999d', '36501d', '876001h', '3153600001s']) {
    assert.match(
      issuesOf({ owners, database: { rotationInterval: tooLong } }),
      /spec\.database\.rotationInterval: must be at most 36500d/,
      tooLong,
    );
  }
  const spec = tenantSpecSchema.parse({
    owners,
    retention: { afterClosure: '36500d' },
    backup: { retention: '3153600000s' },
  });
  assert.equal(spec.retention.afterClosure, '36500d');
  assert.equal(durationToMs('36500d'), 36_500 * 86_400_000);
  assert.throws(() => durationToMs('36501d'), /at most 36500d/);
  assert.throws(() => durationToMs('0s'), /invalid duration/);
});

test('label selectors: keys, values and operators as Kubernetes checks them', () => {
  const selector = (s: Record<string, unknown>) => ({
    owners,
    network: { allowIngressFromNamespaces: [s] },
  });
  const at = 'spec.network.allowIngressFromNamespaces[0]';
  const cases: [Record<string, unknown>, RegExp][] = [
    [{ matchLabels: { 'bad key': 'x' } }, /matchLabels: every key must be a label key/],
    [{ matchLabels: { 'Example.com/name': 'x' } }, /matchLabels: every key must be a label key/],
    [{ matchLabels: { [`${'a'.repeat(64)}`]: 'x' } }, /matchLabels: every key must be a label key/],
    [{ matchLabels: { team: 'not ok!' } }, /matchLabels\.team: must be a label value/],
    [{ matchLabels: { team: 'x'.repeat(64) } }, /matchLabels\.team: /],
    [
      { matchExpressions: [{ key: '-team', operator: 'Exists' }] },
      /matchExpressions\[0\]\.key: must be a label key/,
    ],
    [
      { matchExpressions: [{ key: 'team', operator: 'In' }] },
      /matchExpressions\[0\]\.values: operator In needs at least one value/,
    ],
    [
      { matchExpressions: [{ key: 'team', operator: 'NotIn', values: [] }] },
      /matchExpressions\[0\]\.values: operator NotIn needs at least one value/,
    ],
    [
      { matchExpressions: [{ key: 'team', operator: 'Exists', values: ['a'] }] },
      /matchExpressions\[0\]\.values: operator Exists takes no values/,
    ],
    [
      { matchExpressions: [{ key: 'team', operator: 'In', values: ['a b'] }] },
      /matchExpressions\[0\]\.values\[0\]: must be a label value/,
    ],
  ];
  for (const [bad, expected] of cases) {
    const message = issuesOf(selector(bad));
    assert.ok(message.startsWith(at), message);
    assert.match(message, expected, JSON.stringify(bad));
  }
  const good = tenantSpecSchema.parse(
    selector({
      matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx', empty: '' },
      matchExpressions: [
        { key: 'example.com/tier', operator: 'In', values: ['web', 'api_v2'] },
        { key: 'legacy', operator: 'DoesNotExist' },
      ],
    }),
  );
  assert.equal(good.network.allowIngressFromNamespaces.length, 1);
});

test('system: users and groups are never owners', () => {
  for (const owner of [
    { kind: 'Group', name: 'system:authenticated' },
    { kind: 'Group', name: 'system:serviceaccounts' },
    { kind: 'Group', name: 'system:serviceaccounts:tenant-other' },
    { kind: 'User', name: 'system:anonymous' },
    { kind: 'User', name: 'system:serviceaccount:tenant-other:default' },
  ]) {
    assert.match(
      issuesOf({ owners: [{ kind: 'Group', name: 'ok' }, owner] }),
      /spec\.owners\[1\]\.name: must not start with 'system:'/,
      owner.name,
    );
  }
});

test("a ServiceAccount owner in another tenant's namespace reaches beyond the tenant", () => {
  const sa = (namespace: string) => ({ kind: 'ServiceAccount' as const, name: 'ci', namespace });
  assert.equal(ownerReachesAnotherTenant(sa('tenant-other'), 'acme'), true);
  assert.equal(ownerReachesAnotherTenant(sa('tenant-acme'), 'acme'), false);
  assert.equal(ownerReachesAnotherTenant(sa('ci'), 'acme'), false);
  assert.equal(ownerReachesAnotherTenant({ kind: 'Group', name: 'tenant-x' }, 'acme'), false);
});

test('quota defaults: object counts, ephemeral storage, no node ports or load balancers', () => {
  const { quota } = tenantSpecSchema.parse({ owners });
  assert.deepEqual(quota, {
    cpu: '4',
    memory: '8Gi',
    pods: 50,
    storage: '100Gi',
    ephemeralStorage: '20Gi',
    configMaps: 100,
    secrets: 100,
    services: 20,
    persistentVolumeClaims: 20,
    jobs: 50,
    nodePorts: 0,
    loadBalancers: 0,
  });
  assert.match(issuesOf({ owners, quota: { nodePorts: -1 } }), /spec\.quota\.nodePorts/);
  // The API server holds 64 bits: larger values would be clamped, and never compare equal.
  assert.match(
    issuesOf({ owners, quota: { memory: '8Ei' } }),
    /spec\.quota\.memory: must be less than 8Ei/,
  );
  assert.equal(tenantSpecSchema.parse({ owners, quota: { memory: '7Ei' } }).quota.memory, '7Ei');
});
