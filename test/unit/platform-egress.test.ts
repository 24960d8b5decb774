import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import type { Informer } from '../../src/controller/informer.ts';
import type { DatabaseServerObject } from '../../src/tenant/database-servers.ts';
import { metadataRanges } from '../../src/tenant/egress-blocks.ts';
import { platformEgress, type EgressConfig } from '../../src/tenant/egress.ts';
import { HostResolver } from '../../src/tenant/host-resolver.ts';
import type { TenantObject } from '../../src/tenant/model.ts';

// Where a tenant's pods must reach (database, Vault), from the spec of the
// DatabaseServer it is placed on. Host names go through the real resolver.

function serversWith(spec: Record<string, unknown>): Informer<DatabaseServerObject> {
  const server: DatabaseServerObject = {
    apiVersion: 'tenancy.io/v1alpha1',
    kind: 'DatabaseServer',
    metadata: { name: 'pg-x' },
    spec: {
      port: 6432,
      tls: { caSecretRef: { name: 'ca', namespace: 'tenant-system' } },
      adminCredentialsVaultPath: 'database-servers/pg-x',
      ...spec,
    },
  };
  // Only get() is read; a whole Informer would need an API server.
  return {
    get: (name: string) => (name === 'pg-x' ? server : undefined),
  } as unknown as Informer<DatabaseServerObject>;
}

const placed: TenantObject = {
  apiVersion: 'tenancy.io/v1alpha1',
  kind: 'Tenant',
  metadata: { name: 'acme' },
  status: { database: { server: 'pg-x' } },
};

const egress = (vault?: EgressConfig['vault']): EgressConfig => ({
  resolver: new HostResolver(),
  forbidden: metadataRanges(),
  ...(vault ? { vault } : {}),
});

describe('platform egress', () => {
  test('explicit egressCIDRs are used as given, never the metadata range', async () => {
    const result = await platformEgress(
      {
        egress: egress(),
        servers: serversWith({ host: 'db.invalid', egressCIDRs: ['10.20.0.0/24', '0.0.0.0/0'] }),
      },
      placed,
    );
    assert.deepEqual(result.unreachable, []);
    assert.deepEqual(result.targets, [
      {
        blocks: [{ cidr: '0.0.0.0/0', except: ['169.254.0.0/16'] }, { cidr: '10.20.0.0/24' }],
        port: 6432,
      },
    ]);
  });

  test('a database host in the metadata range gets no rule, and says why', async () => {
    const result = await platformEgress(
      { egress: egress(), servers: serversWith({ host: '169.254.169.254' }) },
      placed,
    );
    assert.deepEqual(result.targets, []);
    assert.match(
      result.unreachable[0] ?? '',
      /DatabaseServer pg-x host 169\.254\.169\.254 resolves to no address tenants may reach/,
    );
  });

  test('Vault by name is resolved too; an unresolvable Vault is reported', async () => {
    const ok = await platformEgress({ egress: egress({ host: 'localhost', port: 8200 }) }, placed);
    assert.deepEqual(ok.unreachable, []);
    assert.equal(ok.targets.length, 1);
    assert.equal(ok.targets[0]?.port, 8200);
    assert.ok(ok.targets[0]?.blocks.some((b) => b.cidr === '127.0.0.1/32'));
    const bad = await platformEgress(
      { egress: egress({ host: 'vault.invalid', port: 8200 }) },
      placed,
    );
    assert.deepEqual(bad.targets, []);
    assert.deepEqual(bad.unreachable, [
      'Vault host vault.invalid does not resolve (no such host); no egress rule can reach it',
    ]);
  });
});
