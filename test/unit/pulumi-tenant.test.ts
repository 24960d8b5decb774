import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { test } from 'node:test';
import * as k8s from '@pulumi/kubernetes';
import * as pulumi from '@pulumi/pulumi';
import type { Registered } from '../support/pulumi-mocks.ts';
import { recordResources, registration, settled } from '../support/pulumi-mocks.ts';

// The Tenant component under Pulumi's mock runtime (no CLI, no engine): the
// object it hands the provider, its outputs, the provider it is given, and
// bad input refused before anything is sent, whether written in the program
// or known only at deployment.

const TENANT_TYPE = 'kubernetes:tenancy.io/v1alpha1:Tenant';
const ROOT = join(import.meta.dirname, '..', '..');
const owners = [{ kind: 'Group' as const, name: 'acme-admins' }];

/** What the provider reports as status, by resource name (a stand-in for the operator). */
const statusByName = new Map<string, Record<string, unknown>>();
// An update, not a preview, so that a reported status resolves.
const sent = await recordResources({ preview: false, statusByName });
const { InvalidTenantError, Tenant } = await import('../../src/pulumi/index.ts');

function sentResource(type: string, name: string): Promise<Registered> {
  return registration(sent, type, name);
}

test('the Tenant object is sent as written: apiVersion, kind, metadata, spec, no status', async () => {
  const spec = {
    owners,
    displayName: 'Acme Corp',
    region: 'eu-west',
    retention: { afterClosure: '90d' },
  };
  const children: pulumi.ResourceTransformationArgs[] = [];
  const tenant = new Tenant(
    'acme',
    {
      name: 'acme',
      spec,
      labels: { team: 'billing' },
      annotations: { 'example.com/ticket': 'OPS-1' },
    },
    { transformations: [(child) => void children.push(child)] },
  );
  const object = await sentResource(TENANT_TYPE, 'acme');
  assert.deepEqual(object.inputs, {
    apiVersion: 'tenancy.io/v1alpha1',
    kind: 'Tenant',
    metadata: {
      name: 'acme',
      labels: { team: 'billing' },
      annotations: { 'example.com/ticket': 'OPS-1' },
    },
    spec,
  });
  // Transformations see the component itself too; the rest are its children.
  const [child, ...others] = children.filter((c) => c.resource !== tenant);
  assert.deepEqual(others, []);
  assert.equal(child?.type, TENANT_TYPE);
  assert.equal(child?.opts.parent, tenant, 'the Tenant object is parented to the component');
  assert.equal(await settled(tenant.tenantName), 'acme');
  assert.equal(await settled(tenant.namespace), 'tenant-acme');
});

test('phase comes from the status the provider reports, and is unset until there is one', async () => {
  statusByName.set('reconciled', { phase: 'Ready', namespace: 'tenant-reconciled' });
  const reconciled = new Tenant('reconciled', { name: 'reconciled', spec: { owners } });
  const fresh = new Tenant('fresh', { name: 'fresh', spec: { owners } });
  assert.equal(await settled(reconciled.phase), 'Ready');
  assert.equal(await settled(fresh.phase), undefined);
  assert.equal(await settled(fresh.namespace), 'tenant-fresh');
});

test('a provider given to the component is the one the Tenant object uses', async () => {
  const cluster = new k8s.Provider('staging', { kubeconfig: '{}' });
  new Tenant('on-staging', { name: 'on-staging', spec: { owners } }, { provider: cluster });
  const object = await sentResource(TENANT_TYPE, 'on-staging');
  const urn = await settled(cluster.urn);
  assert.equal(object.provider, `${urn}::staging-id`);
});

test('a bad value stops construction with the field named, and nothing is sent', () => {
  const cases: [string, Record<string, unknown>, RegExp][] = [
    ['unknown state', { owners, state: 'Deleted' }, /spec\.state: /],
    [
      'retention of zero days',
      { owners, retention: { afterClosure: '0d' } },
      /spec\.retention\.afterClosure: must be a whole number above 0/,
    ],
    [
      'retention beyond 100 years',
      { owners, retention: { afterClosure: '36501d' } },
      /spec\.retention\.afterClosure: must be at most 36500d/,
    ],
    ['a misspelt field', { owners, regoin: 'eu-west' }, /spec: .*regoin/],
    [
      'a system group as owner',
      { owners: [{ kind: 'Group', name: 'system:masters' }] },
      /spec\.owners\[0\]\.name: /,
    ],
  ];
  // Children are created synchronously in the constructor, so an empty list
  // right after the throw means the Tenant object was never even built.
  const children: string[] = [];
  const opts = {
    transformations: [
      (child: pulumi.ResourceTransformationArgs) =>
        void (child.type === TENANT_TYPE && children.push(child.name)),
    ],
  };
  for (const [label, spec, message] of cases) {
    assert.throws(
      () => new Tenant(`bad-${label}`, { name: 'acme', spec: spec as never }, opts),
      (err: unknown) =>
        err instanceof InvalidTenantError &&
        message.test(err.message) &&
        /^Tenant acme: /.test(err.message),
      label,
    );
  }
  assert.deepEqual(children, []);
});

test("a ServiceAccount owner from another tenant's namespace is refused; its own namespace is not", () => {
  const serviceAccount = (namespace: string) => ({
    owners: [owners[0]!, { kind: 'ServiceAccount' as const, name: 'ci', namespace }],
  });
  assert.throws(
    () => new Tenant('reach', { name: 'acme', spec: serviceAccount('tenant-globex') }),
    /spec\.owners\[1\]\.namespace: tenant-globex is another tenant's namespace/,
  );
  assert.doesNotThrow(
    () => new Tenant('own-sa', { name: 'acme', spec: serviceAccount('tenant-acme') }),
  );
  assert.doesNotThrow(() => new Tenant('ci-sa', { name: 'acme', spec: serviceAccount('ci') }));
});

test('a plain name is checked at construction even when the spec is an Output', () => {
  assert.throws(
    () => new Tenant('reserved', { name: 'operator', spec: pulumi.output({ owners }) }),
    /Tenant operator: metadata\.name: .*reserved/,
  );
});

test('Output-valued name and spec are sent once known, and checked', async () => {
  const name = pulumi.output('late-good');
  new Tenant('late-good', { name, spec: pulumi.output({ owners, region: 'eu-west' }) });
  const object = await sentResource(TENANT_TYPE, 'late-good');
  assert.deepEqual(object.inputs.metadata, { name: 'late-good' });
  assert.deepEqual(object.inputs.spec, { owners, region: 'eu-west' });
});

// A wrong Output ends the program (an unhandled rejection, as it would under
// `pulumi up`), so each case runs as its own program: it must fail with the
// message, and the provider must never have been sent the Tenant.
function runProgram(tenant: string): {
  status: number | null;
  stderr: string;
  sentTypes: string[];
} {
  const program = `
    import * as pulumi from '@pulumi/pulumi';
    const sent: string[] = [];
    await pulumi.runtime.setMocks(
      { newResource: (a) => (sent.push(a.type), { id: a.name, state: a.inputs }), call: () => ({}) },
      'p', 's', true,
    );
    process.on('exit', () => process.stdout.write('sent: ' + JSON.stringify(sent) + '\\n'));
    const { Tenant } = await import('./src/pulumi/index.ts');
    ${tenant};`;
  const run = spawnSync(process.execPath, ['--input-type=module-typescript', '--eval', program], {
    cwd: ROOT,
    encoding: 'utf8',
    timeout: 60_000,
  });
  const sentTypes = /sent: (.*)/.exec(run.stdout)?.[1];
  assert.ok(sentTypes !== undefined, `${run.stdout}\n${run.stderr}`);
  return { status: run.status, stderr: run.stderr, sentTypes: JSON.parse(sentTypes) as string[] };
}

test('a bad spec known only at deployment fails the program before the Tenant is sent', () => {
  const run = runProgram(`new Tenant('late', {
    name: 'late',
    spec: pulumi.output({ owners: [{ kind: 'Group', name: 'a' }], retention: { afterClosure: 'soon' } }),
  })`);
  assert.notEqual(run.status, 0);
  assert.match(run.stderr, /InvalidTenantError: .*Tenant late: spec\.retention\.afterClosure: /);
  assert.ok(
    run.sentTypes.includes('tenant-operator:index:Tenant'),
    'the component itself is registered',
  );
  assert.ok(
    !run.sentTypes.includes(TENANT_TYPE),
    `the provider got the Tenant: ${run.sentTypes.join(', ')}`,
  );
});

test('a bad name known only at deployment fails the program before the Tenant is sent', () => {
  const run = runProgram(`new Tenant('late', {
    name: pulumi.output('Late_Name'),
    spec: { owners: [{ kind: 'Group', name: 'a' }] },
  })`);
  assert.notEqual(run.status, 0);
  assert.match(
    run.stderr,
    /InvalidTenantError: .*Tenant Late_Name: metadata\.name: must be a tenant name/,
  );
  assert.ok(
    !run.sentTypes.includes(TENANT_TYPE),
    `the provider got the Tenant: ${run.sentTypes.join(', ')}`,
  );
});
