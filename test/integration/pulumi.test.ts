import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { stringify } from 'yaml';
import { kubectl } from '../support/cluster.ts';
import { recordResources, registrations } from '../support/pulumi-mocks.ts';

// The kubernetes provider cannot be had here (the module proxy serves no
// github.com/pulumi/pulumi-kubernetes/provider/v4), so `pulumi up` cannot
// run. What the Tenant component would send the provider is recorded under
// Pulumi's mock runtime and applied to the real API server by this test
// (server-side dry run): the CRD schema, its CEL rules and the admission
// guard accept it as it is.

const registered = await recordResources();
const { Tenant } = await import('../../src/pulumi/index.ts');
const work = mkdtempSync(join(tmpdir(), 'pulumi-'));
after(() => rmSync(work, { recursive: true, force: true }));

test('what a Tenant component sends is a Tenant the API server accepts', async () => {
  new Tenant('acme', {
    name: 'pulumi-acme',
    spec: {
      owners: [{ kind: 'Group', name: 'acme-admins' }],
      region: 'eu-west',
      database: { enabled: true },
      backup: { schedule: 'H 2 * * *' },
      retention: { afterClosure: '60d' },
    },
    labels: { 'example.com/team': 'billing' },
  });
  const [object] = await registrations(registered, 'kubernetes:tenancy.io/v1alpha1:Tenant', 1);
  assert.ok(object);
  const file = join(work, 'tenant.yaml');
  writeFileSync(file, stringify(object.inputs));
  const applied = kubectl([
    'apply',
    '--server-side',
    '--dry-run=server',
    '--field-manager',
    'pulumi-test',
    '-f',
    file,
  ]);
  assert.equal(applied.status, 0, applied.stderr);
  assert.match(
    applied.stdout,
    /tenant\.tenancy\.io\/pulumi-acme serverside-applied \(server dry run\)/,
  );
});
