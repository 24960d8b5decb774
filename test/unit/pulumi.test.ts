import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import { recordResources, registrations, settled } from '../support/pulumi-mocks.ts';

// The Pulumi components under Pulumi's mock runtime: what they register, and
// that a bad Tenant stops the program before anything is sent.

const registered = await recordResources();
const { InvalidTenantError, Tenant, TenantOperator, crdFiles, CHART_DIR } =
  await import('../../src/pulumi/index.ts');

const TENANT_TYPE = 'kubernetes:tenancy.io/v1alpha1:Tenant';
const owners = [{ kind: 'Group' as const, name: 'acme-admins' }];

test('a Tenant registers the Tenant object as written, and its namespace', async () => {
  const spec = { owners, region: 'eu-west', database: { enabled: true } };
  const tenant = new Tenant('acme', { name: 'acme', spec, labels: { team: 'billing' } });
  assert.equal(await settled(tenant.namespace), 'tenant-acme');
  const [object] = (await registrations(registered, TENANT_TYPE, 1)).filter(
    (r) => r.name === 'acme',
  );
  assert.ok(object);
  assert.equal(object.inputs.apiVersion, 'tenancy.io/v1alpha1');
  assert.equal(object.inputs.kind, 'Tenant');
  assert.deepEqual(object.inputs.metadata, { name: 'acme', labels: { team: 'billing' } });
  assert.deepEqual(object.inputs.spec, spec);
});

test('a bad spec stops the program at construction, naming each field', () => {
  assert.throws(
    () => new Tenant('bad', { name: 'acme', spec: { owners: [], state: 'Gone' as 'Closed' } }),
    (err: unknown) =>
      err instanceof InvalidTenantError &&
      /spec\.owners: at least one owner is required/.test(err.message) &&
      /spec\.state: /.test(err.message),
  );
  assert.throws(
    () =>
      new Tenant('bad-retention', {
        name: 'acme',
        spec: { owners, retention: { afterClosure: 'soon' } },
      }),
    /spec\.retention\.afterClosure/,
  );
});

test('a name the cluster would refuse stops the program too', () => {
  assert.throws(
    () => new Tenant('reserved', { name: 'system', spec: { owners } }),
    /metadata\.name: .*reserved/,
  );
  assert.throws(
    () => new Tenant('upper', { name: 'Acme', spec: { owners } }),
    /metadata\.name: must be a tenant name/,
  );
});

test('a spec known only at deployment is checked before it is sent, and fails the program', () => {
  const program = join(import.meta.dirname, '..', 'fixtures', 'pulumi-late-bad-tenant.ts');
  const run = spawnSync(process.execPath, [program], { encoding: 'utf8', timeout: 60_000 });
  assert.notEqual(run.status, 0, run.stdout);
  assert.match(run.stderr, /InvalidTenantError: .*Tenant late: spec\.state: /);
  const sent = /registered: (.*)/.exec(run.stdout)?.[1];
  assert.ok(sent !== undefined, run.stdout);
  assert.ok(
    !(JSON.parse(sent) as string[]).includes(TENANT_TYPE),
    `the provider got the Tenant: ${sent}`,
  );
});

test('TenantOperator installs every CRD file, then the chart from this repository without its CRDs', async () => {
  new TenantOperator('ops', { namespace: 'platform-tenants', values: { replicaCount: 3 } });
  const [group] = await registrations(registered, 'kubernetes:yaml/v2:ConfigGroup', 1);
  assert.deepEqual(group?.inputs.files, crdFiles());
  assert.ok(crdFiles().length >= 4);
  const [namespace] = await registrations(registered, 'kubernetes:core/v1:Namespace', 1);
  assert.deepEqual(namespace?.inputs.metadata, { name: 'platform-tenants' });
  const [chart] = await registrations(registered, 'kubernetes:helm.sh/v4:Chart', 1);
  assert.equal(chart?.inputs.chart, CHART_DIR);
  assert.equal(chart?.inputs.skipCrds, true);
  assert.equal(chart?.inputs.namespace, 'platform-tenants');
  assert.deepEqual(chart?.inputs.values, { replicaCount: 3 });
});
