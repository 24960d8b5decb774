import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { parse } from 'yaml';
import { renderCrds } from '../../src/cli/gen-crds.ts';

interface SchemaNode {
  description?: string;
  properties?: Record<string, SchemaNode>;
  items?: SchemaNode;
}

test('checked-in CRDs equal what gen:crds generates from the zod schemas', async () => {
  const generated = renderCrds();
  assert.ok(generated.size > 0);
  for (const [file, content] of generated) {
    const checkedIn = await readFile(new URL(`../../crds/${file}`, import.meta.url), 'utf8');
    assert.equal(checkedIn, content, `crds/${file} is stale: run npm run gen:crds`);
  }
});

test('the Tenant CRD is structural: no additionalProperties:false, status subresource, short name', () => {
  const content = [...renderCrds().values()].join('\n');
  assert.doesNotMatch(content, /additionalProperties: false/);
  assert.match(content, /shortNames:\n\s+- tn/);
  assert.match(content, /status: \{\}/);
  assert.match(content, /x-kubernetes-validations/);
});

test('BackupStore and TenantBackup CRDs are generated, with their short names', () => {
  const generated = renderCrds();
  const store = generated.get('tenancy.io_backupstores.yaml');
  const backup = generated.get('tenancy.io_tenantbackups.yaml');
  assert.ok(store && backup, [...generated.keys()].join(', '));
  assert.match(store, /shortNames:\n\s+- bst/);
  assert.match(store, /scope: Cluster/);
  assert.match(store, /rule: has\(self\.s3\) != has\(self\.filesystem\)/);
  assert.match(backup, /shortNames:\n\s+- tbk/);
  assert.match(backup, /rule: self == oldSelf/);
});

test('kubectl explain has text for every field of every kind', () => {
  for (const [file, content] of renderCrds()) {
    const crd = parse(content) as {
      spec: { versions: { schema: { openAPIV3Schema: SchemaNode } }[] };
    };
    const missing: string[] = [];
    const walk = (node: SchemaNode, path: string) => {
      for (const [key, child] of Object.entries(node.properties ?? {})) {
        // The API server refuses anything on metadata but its name's bounds.
        const allowedBare = path === '' && key === 'metadata';
        if (!child.description && !allowedBare) missing.push(`${path}.${key}`);
        walk(child, `${path}.${key}`);
      }
      if (node.items) walk(node.items, `${path}[]`);
    };
    for (const version of crd.spec.versions) walk(version.schema.openAPIV3Schema, '');
    assert.deepEqual(missing, [], `${file}: fields without a description`);
  }
});
