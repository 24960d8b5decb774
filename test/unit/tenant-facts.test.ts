import assert from 'node:assert/strict';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { test } from 'node:test';
import { scrapeSources } from '../../src/metrics/tenant-facts.ts';
import type { TenantObject } from '../../src/tenant/model.ts';

function tenant(name: string, phase?: string): TenantObject {
  return {
    apiVersion: 'tenancy.io/v1alpha1',
    kind: 'Tenant',
    metadata: { name },
    ...(phase ? { status: { phase } } : {}),
  } as TenantObject;
}

test('one walk per scrape, each cached Tenant derived once, a new version derived again', async () => {
  let cache = [tenant('a', 'Ready'), tenant('b'), tenant('c', 'Closed')];
  let walks = 0;
  const derivedFor: string[] = [];
  const sources = scrapeSources(
    () => {
      walks++;
      return cache;
    },
    {
      backup: (t) => {
        derivedFor.push(t.metadata.name);
        return t.metadata.name === 'a' ? { tenant: 'a', lastBytes: 7 } : undefined;
      },
      erasure: (t) =>
        t.status?.phase === 'Closed'
          ? { tenant: t.metadata.name, legalHold: false, purged: false }
          : undefined,
    },
  );
  // One scrape: every gauge asks within one turn of the event loop.
  assert.deepEqual([...sources.tenantPhases!()], ['Ready', 'Unknown', 'Closed']);
  assert.deepEqual([...sources.tenantBackups!()], [{ tenant: 'a', lastBytes: 7 }]);
  assert.deepEqual(
    [...sources.tenantErasures!()].map((f) => f.tenant),
    ['c'],
  );
  assert.equal(walks, 1);
  assert.deepEqual(derivedFor, ['a', 'b', 'c']);

  // The next scrape walks again, but derives nothing for unchanged objects.
  await nextTurn();
  assert.deepEqual([...sources.tenantPhases!()], ['Ready', 'Unknown', 'Closed']);
  assert.equal(walks, 2);
  assert.deepEqual(derivedFor, ['a', 'b', 'c']);

  // The watch replaced b: its new version is derived, and its new phase shows.
  cache = [cache[0]!, tenant('b', 'Ready'), cache[2]!];
  await nextTurn();
  assert.deepEqual([...sources.tenantPhases!()], ['Ready', 'Ready', 'Closed']);
  assert.deepEqual(derivedFor, ['a', 'b', 'c', 'b']);
});
