import assert from 'node:assert/strict';
import { test } from 'node:test';
import { tenantSpecSchema } from '../../src/api/tenant.ts';
import { RecordPool } from '../../src/k8s/shared-records.ts';

// As the informer sees them: each from its own JSON.parse.
const parsed = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;
const spec = (name: string, extra: Record<string, unknown> = {}) =>
  tenantSpecSchema.parse({ owners: [{ kind: 'Group', name: `${name}-admins` }], ...extra });

test("two Tenants' defaulted spec parts become one frozen instance each", () => {
  const pool = new RecordPool();
  const a = pool.shareFields(parsed(spec('acme')));
  const b = pool.shareFields(parsed(spec('globex')));
  for (const part of ['quota', 'backup', 'retention', 'network'] as const) {
    assert.ok(a[part], `the defaults give spec.${part}`);
    assert.equal(a[part], b[part], `spec.${part} is shared`);
    assert.ok(Object.isFrozen(a[part]));
  }
  // Lists inside a shared part are frozen too.
  assert.ok(Object.isFrozen(a.network.allowEgressCIDRs));
  assert.throws(() => a.network.allowEgressCIDRs.push('0.0.0.0/0'), TypeError);
  assert.throws(() => {
    (b.quota as Record<string, unknown>).cpu = '1000';
  }, TypeError);
  // Owners differ per tenant and are never shared.
  assert.notEqual(a.owners, b.owners);
  assert.ok(!Object.isFrozen(a.owners));
  // The whole spec still validates as it did.
  assert.deepEqual(tenantSpecSchema.parse(a), spec('acme'));
});

test('a part that differs is its own, and parts holding objects are left alone', () => {
  const pool = new RecordPool();
  const plain = pool.shareFields(parsed(spec('acme')));
  const bigger = pool.shareFields(parsed(spec('globex', { quota: { cpu: '64' } })));
  assert.notEqual(bigger.quota, plain.quota);
  assert.equal(bigger.quota.cpu, '64');
  const selector = { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } };
  const open = pool.shareFields(
    parsed(spec('initech', { network: { allowIngressFromNamespaces: [selector] } })),
  );
  assert.ok(!Object.isFrozen(open.network));
  assert.deepEqual(open.network.allowIngressFromNamespaces, [selector]);
});

test('a full pool starts over and still answers right', () => {
  const pool = new RecordPool(1);
  const first = pool.share({ cpu: '1' });
  pool.share({ cpu: '2' });
  const again = pool.share({ cpu: '1' });
  assert.notEqual(again, first);
  assert.deepEqual(again, first);
});
