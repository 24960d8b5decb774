import assert from 'node:assert/strict';
import { test } from 'node:test';
import { databaseServerSpecSchema } from '../../src/api/databaseserver.ts';
import type { TenantObject } from '../../src/tenant/model.ts';
import { choosePlacement, type ServerView, waitsForDatabase } from '../../src/tenant/placement.ts';

function server(
  name: string,
  region: string | undefined,
  max: number,
  placed: number,
  reachable = true,
): ServerView {
  const spec = databaseServerSpecSchema.parse({
    host: `${name}.db`,
    ...(region ? { region } : {}),
    tls: { caSecretRef: { name: 'database-ca', namespace: 'tenant-system' } },
    adminCredentialsVaultPath: `database-servers/${name}`,
    capacity: { maxDatabases: max },
  });
  return { name, spec, status: { reachable }, placed };
}

test('same region, most free capacity wins', () => {
  const servers = [
    server('eu-1', 'eu-west', 10, 8),
    server('eu-2', 'eu-west', 10, 3),
    server('us-1', 'us-east', 100, 0),
  ];
  const placement = choosePlacement(servers, 'eu-west');
  assert.equal(placement.server?.name, 'eu-2');
});

test('no server in the region says so', () => {
  const placement = choosePlacement([server('us-1', 'us-east', 10, 0)], 'eu-west');
  assert.equal(placement.server, undefined);
  assert.ok(!placement.server && placement.reason === 'NoServerInRegion');
  assert.match(!placement.server ? placement.message : '', /no DatabaseServer in region eu-west/);
});

test('full and unreachable servers are skipped, with the reason named', () => {
  const full = choosePlacement([server('eu-1', 'eu-west', 2, 2)], 'eu-west');
  assert.ok(!full.server && full.reason === 'NoCapacity');
  const down = choosePlacement([server('eu-1', 'eu-west', 2, 0, false)], 'eu-west');
  assert.ok(!down.server && down.reason === 'NoServerReachable');
  const mixed = choosePlacement(
    [server('eu-1', 'eu-west', 2, 0, false), server('eu-2', 'eu-west', 1, 0)],
    'eu-west',
  );
  assert.equal(mixed.server?.name, 'eu-2');
});

test('a tenant without a region may go anywhere', () => {
  const placement = choosePlacement(
    [server('us-1', 'us-east', 5, 4), server('eu-1', 'eu-west', 5, 1)],
    undefined,
  );
  assert.equal(placement.server?.name, 'eu-1');
});

test('a server change wakes only tenants still waiting for their database', () => {
  const tenant = (spec: unknown, status?: TenantObject['status']): TenantObject => ({
    apiVersion: 'tenancy.io/v1alpha1',
    kind: 'Tenant',
    metadata: { name: 't' },
    spec,
    ...(status ? { status } : {}),
  });
  // The database is on by default: a spec that does not mention it waits too.
  assert.equal(waitsForDatabase(tenant({})), true);
  assert.equal(waitsForDatabase(tenant({ database: { enabled: true } })), true);
  assert.equal(
    waitsForDatabase(tenant({ database: { enabled: true } }, { database: { server: 'pg-1' } })),
    true,
  );
  assert.equal(waitsForDatabase(tenant({ database: { enabled: false } })), false);
  assert.equal(
    waitsForDatabase(
      tenant({ database: { enabled: true } }, { database: { server: 'pg-1', name: 'tenant_t' } }),
    ),
    false,
  );
});
