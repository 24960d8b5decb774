import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { tenantSpecSchema, type TenantStatus } from '../../src/api/tenant.ts';
import { ERROR_CODES, OperatorError } from '../../src/errors.ts';
import type { DatabaseOutcome } from '../../src/tenant/database.ts';
import type { TenantObject, ValidTenant } from '../../src/tenant/model.ts';
import {
  computeStatus,
  failureCondition,
  statusEvents,
  type NamespaceState,
  type StatusInput,
} from '../../src/tenant/status.ts';

// The rules of phase, Ready and Events, without a cluster: what a tenant
// reports when a dependency fails, when its namespace is someone else's,
// when its spec asks for what the operator refuses.

const now = new Date('2026-05-01T10:00:00Z');
const ours: NamespaceState = { kind: 'ours', phase: 'Active' };
const healthy: DatabaseOutcome = {
  ready: true,
  conditions: [{ type: 'DatabaseReady', status: 'True', reason: 'DatabaseReady', message: 'db' }],
};

function valid(spec: Record<string, unknown> = {}): ValidTenant {
  return {
    name: 'acme',
    uid: 'u-1',
    namespace: 'tenant-acme',
    spec: tenantSpecSchema.parse({ owners: [{ kind: 'Group', name: 'g' }], ...spec }),
  };
}

function tenantWith(status: TenantStatus | undefined): TenantObject {
  return {
    apiVersion: 'tenancy.io/v1alpha1',
    kind: 'Tenant',
    metadata: { name: 'acme', uid: 'u-1', generation: 2 },
    ...(status ? { status } : {}),
  };
}

function input(overrides: Partial<StatusInput>): StatusInput {
  return {
    tenant: tenantWith(undefined),
    valid: valid(),
    namespace: ours,
    database: healthy,
    specProblems: [],
    now,
    ...overrides,
  };
}

function ready(status: TenantStatus) {
  const condition = status.conditions?.find((c) => c.type === 'Ready');
  assert.ok(condition, 'no Ready condition');
  return condition;
}

const vaultDown = failureCondition(
  'DatabaseReady',
  new OperatorError(ERROR_CODES.NETWORK, 'Vault GET secret/data/x: timed out after 10000 ms', {
    origin: 'vault',
  }),
);

describe('failures are named by the system that failed', () => {
  test('Vault, PostgreSQL, Kubernetes and the operator itself', () => {
    assert.equal(vaultDown.reason, 'VaultUnavailable');
    assert.match(vaultDown.message, /timed out/);
    const denied = new OperatorError(ERROR_CODES.API_FORBIDDEN, 'Vault: permission denied', {
      origin: 'vault',
      httpStatus: 403,
    });
    assert.equal(failureCondition('X', denied).reason, 'VaultError');
    const sealed = new OperatorError(ERROR_CODES.API_ERROR, 'Vault: sealed', {
      origin: 'vault',
      httpStatus: 503,
    });
    assert.equal(failureCondition('X', sealed).reason, 'VaultUnavailable');
    const pg = new OperatorError(ERROR_CODES.NETWORK, 'connect ECONNREFUSED', {
      origin: 'postgres',
    });
    assert.equal(failureCondition('X', pg).reason, 'PostgresUnavailable');
    const sql = new OperatorError(ERROR_CODES.INTERNAL, 'syntax', { origin: 'postgres' });
    assert.equal(failureCondition('X', sql).reason, 'PostgresError');
    const kube = new OperatorError(ERROR_CODES.API_INVALID, 'bad', { origin: 'kubernetes' });
    assert.equal(failureCondition('X', kube).reason, 'KubernetesError');
    assert.equal(failureCondition('X', new Error('bug')).reason, 'DatabaseError');
  });
});

describe('phase and Ready', () => {
  test('a healthy tenant is Ready', () => {
    const status = computeStatus(input({}));
    assert.equal(status.phase, 'Ready');
    assert.equal(ready(status).status, 'True');
    assert.equal(status.namespace, 'tenant-acme');
  });

  test('a Ready tenant whose Vault fails stays Ready, with Ready False naming Vault', () => {
    const before = computeStatus(input({}));
    const after = computeStatus(
      input({ tenant: tenantWith(before), database: { ready: false, conditions: [vaultDown] } }),
    );
    assert.equal(after.phase, 'Ready');
    assert.equal(ready(after).status, 'False');
    assert.equal(ready(after).reason, 'VaultUnavailable');
    assert.match(ready(after).message, /Vault GET .* timed out/);
  });

  test('a tenant still provisioning reports the failure but stays Provisioning', () => {
    const status = computeStatus(input({ database: { ready: false, conditions: [vaultDown] } }));
    assert.equal(status.phase, 'Provisioning');
    assert.equal(ready(status).reason, 'VaultUnavailable');
  });

  test('work in progress on a Ready tenant (not a failure) is Provisioning', () => {
    const before = computeStatus(input({}));
    const placing: DatabaseOutcome = {
      ready: false,
      conditions: [
        { type: 'DatabaseReady', status: 'False', reason: 'Provisioning', message: 'placed' },
      ],
    };
    const after = computeStatus(input({ tenant: tenantWith(before), database: placing }));
    assert.equal(after.phase, 'Provisioning');
    assert.equal(ready(after).reason, 'Provisioning');
  });

  test("someone else's namespace: Failed, NamespaceConflict, no namespace in status", () => {
    const before = computeStatus(input({}));
    const status = computeStatus(
      input({
        tenant: tenantWith(before),
        namespace: { kind: 'conflict', message: 'namespace tenant-acme is not ours' },
        database: { ready: false, conditions: [] },
      }),
    );
    assert.equal(status.phase, 'Failed');
    assert.equal(ready(status).reason, 'NamespaceConflict');
    assert.equal(
      status.conditions?.find((c) => c.type === 'NamespaceReady')?.reason,
      'NamespaceConflict',
    );
    assert.equal(status.namespace, undefined);
    assert.equal(
      status.conditions?.some((c) => c.type === 'NetworkIsolated'),
      false,
    );
  });

  test('spec problems from the builders or a step make the tenant Failed/InvalidSpec', () => {
    const fromBuilders = computeStatus(
      input({ specProblems: ['spec.network.allowEgressCIDRs[1]: inside the pod range', 'b'] }),
    );
    assert.equal(fromBuilders.phase, 'Failed');
    assert.equal(ready(fromBuilders).reason, 'InvalidSpec');
    assert.equal(
      ready(fromBuilders).message,
      'spec.network.allowEgressCIDRs[1]: inside the pod range; b',
    );
    const fromStep = computeStatus(
      input({
        database: {
          ready: false,
          conditions: [
            {
              type: 'DatabaseReady',
              status: 'False',
              reason: 'InvalidSpec',
              message: 'spec.database.rotationInterval: at least 1h',
            },
          ],
        },
      }),
    );
    assert.equal(fromStep.phase, 'Failed');
    assert.equal(ready(fromStep).message, 'spec.database.rotationInterval: at least 1h');
    // Suspension does not hide a spec problem.
    const suspended = computeStatus(
      input({ valid: valid({ state: 'Suspended' }), specProblems: ['x'] }),
    );
    assert.equal(suspended.phase, 'Failed');
  });
});

describe('events', () => {
  const reasons = (before: TenantStatus | undefined, after: TenantStatus) =>
    statusEvents(before, after).map((e) => `${e.type}/${e.reason}`);

  test('Provisioned once; a Vault outage warns once and recovers without a second Provisioned', () => {
    const provisioning = computeStatus(
      input({ database: { ready: false, conditions: [vaultDown] } }),
    );
    const readyStatus = computeStatus(input({ tenant: tenantWith(provisioning) }));
    assert.deepEqual(reasons(provisioning, readyStatus), ['Normal/Provisioned']);
    const degraded = computeStatus(
      input({
        tenant: tenantWith(readyStatus),
        database: { ready: false, conditions: [vaultDown] },
      }),
    );
    assert.deepEqual(reasons(readyStatus, degraded), ['Warning/VaultUnavailable']);
    const otherMessage = computeStatus(
      input({
        tenant: tenantWith(degraded),
        database: {
          ready: false,
          conditions: [{ ...vaultDown, message: 'Vault GET x: connection refused' }],
        },
      }),
    );
    assert.deepEqual(reasons(degraded, otherMessage), []);
    const recovered = computeStatus(input({ tenant: tenantWith(otherMessage) }));
    assert.deepEqual(reasons(otherMessage, recovered), ['Normal/Recovered']);
  });

  test('InvalidSpec warns once per distinct message', () => {
    const first = computeStatus(input({ specProblems: ['a'] }));
    assert.deepEqual(reasons(undefined, first), ['Warning/InvalidSpec']);
    const same = computeStatus(input({ tenant: tenantWith(first), specProblems: ['a'] }));
    assert.deepEqual(reasons(first, same), []);
    const other = computeStatus(input({ tenant: tenantWith(same), specProblems: ['b'] }));
    assert.deepEqual(reasons(same, other), ['Warning/InvalidSpec']);
  });

  test('a namespace conflict warns once', () => {
    const conflict = { kind: 'conflict', message: 'not ours' } as const;
    const empty = { ready: false, conditions: [] };
    const first = computeStatus(input({ namespace: conflict, database: empty }));
    assert.deepEqual(reasons(undefined, first), ['Warning/NamespaceConflict']);
    const again = computeStatus(
      input({ tenant: tenantWith(first), namespace: conflict, database: empty }),
    );
    assert.deepEqual(reasons(first, again), []);
  });
});

describe('the retention clock', () => {
  const closed = valid({ state: 'Closed', retention: { afterClosure: '60d' } });
  const annotated = (value: string, status?: TenantStatus): TenantObject => ({
    ...tenantWith(status),
    metadata: { ...tenantWith(status).metadata, annotations: { 'tenancy.io/closed-at': value } },
  });

  test('a lost status is rebuilt from the closed-at annotation, never restarted', () => {
    const status = computeStatus(
      input({ tenant: annotated('2026-03-01T00:00:00Z'), valid: closed }),
    );
    assert.equal(status.closedAt, '2026-03-01T00:00:00Z');
    assert.equal(status.purgeAfter, '2026-04-30T00:00:00Z');
  });

  test('the annotation wins over status; a value that is not a time does not count', () => {
    const fromStatus = { closedAt: '2026-02-01T00:00:00Z' } as TenantStatus;
    assert.equal(
      computeStatus(input({ tenant: annotated('2026-03-01T00:00:00Z', fromStatus), valid: closed }))
        .closedAt,
      '2026-03-01T00:00:00Z',
    );
    assert.equal(
      computeStatus(input({ tenant: annotated('yesterday', fromStatus), valid: closed })).closedAt,
      '2026-02-01T00:00:00Z',
    );
  });

  test('a 60-day clock is 60 days, not a timer that overflows', () => {
    const status = computeStatus(input({ valid: closed }));
    assert.equal(status.closedAt, '2026-05-01T10:00:00Z');
    assert.equal(
      Date.parse(status.purgeAfter ?? '') - Date.parse(status.closedAt ?? ''),
      60 * 86_400_000,
    );
  });
});

describe('a closed tenant says when its data goes, or why not', () => {
  const purgeCondition = (status: TenantStatus) =>
    status.conditions?.find((c) => c.type === 'PurgeScheduled');

  test('scheduled, then held; stable from one reconcile to the next', () => {
    const closed = valid({ state: 'Closed', retention: { afterClosure: '60d' } });
    const first = computeStatus(input({ valid: closed }));
    assert.equal(purgeCondition(first)?.status, 'True');
    assert.match(purgeCondition(first)?.message ?? '', /erased at 2026-06-30T10:00:00Z/);
    const later = computeStatus(
      input({ tenant: tenantWith(first), valid: closed, now: new Date('2026-05-02T00:00:00Z') }),
    );
    assert.deepEqual(later.conditions, first.conditions, 'a resync changed the conditions');
    const held = valid({ state: 'Closed', retention: { afterClosure: '60d', legalHold: true } });
    const heldStatus = computeStatus(input({ tenant: tenantWith(first), valid: held }));
    assert.deepEqual(
      [purgeCondition(heldStatus)?.status, purgeCondition(heldStatus)?.reason],
      ['False', 'LegalHold'],
    );
    assert.equal(purgeCondition(computeStatus(input({ valid: valid() }))), undefined);
  });
});

describe('a deleted tenant is a closed one, held until its erasure', () => {
  test('closed since its deletion; says it is released after the erasure; a gone namespace is not its', () => {
    const deletedAt = '2026-05-01T09:00:00Z';
    const tenant: TenantObject = {
      ...tenantWith(undefined),
      metadata: {
        ...tenantWith(undefined).metadata,
        deletionTimestamp: deletedAt,
        annotations: { 'tenancy.io/closed-at': deletedAt },
      },
    };
    const status = computeStatus(
      input({
        tenant,
        valid: valid({ state: 'Closed', retention: { afterClosure: '20d' } }),
        namespace: { kind: 'absent' },
      }),
    );
    assert.equal(status.phase, 'Closed');
    assert.equal(status.closedAt, deletedAt);
    assert.equal(status.purgeAfter, '2026-05-21T09:00:00Z');
    assert.match(ready(status).message, /deleted at 2026-05-01T09:00:00Z: closed, and held/);
    const purge = status.conditions?.find((c) => c.type === 'PurgeScheduled');
    assert.match(
      purge?.message ?? '',
      /erased at 2026-05-21T09:00:00Z, then the deleted Tenant is released/,
    );
    const namespace = status.conditions?.find((c) => c.type === 'NamespaceReady');
    assert.deepEqual([namespace?.status, namespace?.reason], ['False', 'NamespaceMissing']);
    assert.equal(status.namespace, undefined);
  });
});
