import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ConditionPool, cachedConditions } from '../../src/k8s/shared-conditions.ts';
import { StringPool } from '../../src/k8s/shared-strings.ts';

const ready = (time: string, message = 'tenant is provisioned and isolated') => ({
  lastTransitionTime: time,
  message,
  observedGeneration: 1,
  reason: 'Reconciled',
  status: 'True',
  type: 'Ready',
});

// As the informer sees them: each from its own JSON.parse.
const parsed = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

test('equal conditions of two tenants become one frozen instance', () => {
  const pool = new ConditionPool();
  const first = { status: { conditions: [parsed(ready('2026-12-07T10:00:00Z'))] } };
  const second = { status: { conditions: [parsed(ready('2026-12-07T10:00:00Z'))] } };
  pool.shareConditions(first);
  pool.shareConditions(second);
  assert.equal(second.status.conditions[0], first.status.conditions[0]);
  assert.ok(Object.isFrozen(first.status.conditions[0]));
  // Shared means read-only: a write throws instead of changing both tenants.
  assert.throws(() => {
    (second.status.conditions[0] as { message: string }).message = 'changed';
  }, TypeError);
  assert.equal(first.status.conditions[0]?.message, 'tenant is provisioned and isolated');
});

test('conditions that differ in any field, or only in key order, are compared by value', () => {
  const pool = new ConditionPool();
  const base = pool.share(parsed(ready('2026-12-07T10:00:00Z')));
  const variants = [
    ready('2026-12-07T10:00:01Z'),
    ready('2026-12-07T10:00:00Z', 'namespace tenant-a is active'),
    { ...ready('2026-12-07T10:00:00Z'), status: 'False' },
    { ...ready('2026-12-07T10:00:00Z'), observedGeneration: 2 },
    { ...ready('2026-12-07T10:00:00Z'), extra: 'field' },
  ];
  for (const variant of variants) {
    const shared = pool.share(parsed(variant));
    assert.notEqual(shared, base);
    assert.deepEqual(shared, variant);
  }
  // Same fields in another order: the same condition.
  const { type, ...rest } = ready('2026-12-07T10:00:00Z');
  assert.equal(pool.share({ type, ...rest }), base);
});

test('a condition with no time or a nested value is kept as it is', () => {
  const pool = new ConditionPool();
  const untimed = { type: 'Ready', status: 'True' };
  const nested = { ...ready('2026-12-07T10:00:00Z'), details: { a: 1 } };
  assert.equal(pool.share(untimed), untimed);
  assert.equal(pool.share(nested), nested);
  assert.ok(!Object.isFrozen(untimed) && !Object.isFrozen(nested));
  // Objects without conditions pass through.
  const plain = { status: { phase: 'Ready' } };
  assert.equal(pool.shareConditions(plain), plain);
  const bare = {};
  assert.equal(pool.shareConditions(bare), bare);
});

test('a pool full of seconds starts over and still answers right', () => {
  const pool = new ConditionPool(2);
  const seconds = ['10:00:00', '10:00:01', '10:00:02'].map((s) => `2026-12-07T${s}Z`);
  const firsts = seconds.map((time) => pool.share(parsed(ready(time))));
  assert.equal(pool.size, 1);
  // The first second was forgotten: an equal condition becomes the new instance.
  const again = pool.share(parsed(ready(seconds[0]!)));
  assert.notEqual(again, firsts[0]);
  assert.deepEqual(again, firsts[0]);
});

test('the informers share strings first, then conditions, so that equal means ===', () => {
  const strings = new StringPool();
  const tenants = [0, 1].map(() =>
    strings.shareAll({ status: { conditions: [parsed(ready('2026-12-07T11:00:00Z'))] } }),
  );
  for (const tenant of tenants) cachedConditions.shareConditions(tenant);
  assert.equal(tenants[0]?.status.conditions[0], tenants[1]?.status.conditions[0]);
});
