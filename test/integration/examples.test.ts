import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { parse } from 'yaml';
import { backupStoreSpecSchema } from '../../src/api/backupstore.ts';
import { databaseServerSpecSchema } from '../../src/api/databaseserver.ts';
import { tenantSpecSchema } from '../../src/api/tenant.ts';
import { tenantBackupSpecSchema } from '../../src/api/tenantbackup.ts';
import { kubectl } from '../support/cluster.ts';

// The manifests under examples/ apply as they are: the real API server
// accepts each (CRD schema, CEL rules, admission guard) in a server-side
// dry run, and the operator's own schemas accept each spec.

const DIR = join(import.meta.dirname, '..', '..', 'examples');
const files = readdirSync(DIR).filter((f) => f.endsWith('.yaml'));
const SCHEMAS = {
  Tenant: tenantSpecSchema,
  DatabaseServer: databaseServerSpecSchema,
  BackupStore: backupStoreSpecSchema,
  TenantBackup: tenantBackupSpecSchema,
} as const;

test('there are examples of every kind', () => {
  const kinds = new Set(
    files.map((f) => (parse(readFileSync(join(DIR, f), 'utf8')) as { kind: string }).kind),
  );
  assert.deepEqual([...kinds].sort(), Object.keys(SCHEMAS).sort());
});

for (const file of files) {
  test(`examples/${file} applies as it is`, () => {
    const object = parse(readFileSync(join(DIR, file), 'utf8')) as {
      kind: keyof typeof SCHEMAS;
      spec: unknown;
    };
    const parsed = SCHEMAS[object.kind].safeParse(object.spec);
    assert.ok(parsed.success, JSON.stringify(parsed.error?.issues));
    const applied = kubectl([
      'apply',
      '--server-side',
      '--dry-run=server',
      '--field-manager',
      'examples-test',
      '-f',
      join(DIR, file),
    ]);
    assert.equal(applied.status, 0, applied.stderr);
    assert.match(applied.stdout, /serverside-applied \(server dry run\)/);
  });
}
