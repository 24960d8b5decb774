import assert from 'node:assert/strict';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import * as k8s from '@pulumi/kubernetes';
import type * as pulumi from '@pulumi/pulumi';
import { parse } from 'yaml';
import type { Registered } from '../support/pulumi-mocks.ts';
import { recordResources, registration, settled } from '../support/pulumi-mocks.ts';

// The TenantOperator component under Pulumi's mock runtime: every CRD file
// of crds/ goes to the provider, then this repository's chart without its
// CRD step, in the release namespace, after the CRDs.

const ROOT = join(import.meta.dirname, '..', '..');
const CONFIG_GROUP = 'kubernetes:yaml/v2:ConfigGroup';
const CHART = 'kubernetes:helm.sh/v4:Chart';
const NAMESPACE = 'kubernetes:core/v1:Namespace';

const sent = await recordResources({ preview: false });
const { TenantOperator } = await import('../../src/pulumi/index.ts');

/** Each child's type, name and options, as the component creates it. */
function recordChildren(into: pulumi.ResourceTransformationArgs[]): pulumi.ResourceTransformation {
  return (child) => void into.push(child);
}

function sentResource(type: string, name: string): Promise<Registered> {
  return registration(sent, type, name);
}

test('every CRD file in crds/ is applied, by absolute path', async () => {
  const onDisk = readdirSync(join(ROOT, 'crds')).filter((f) => f.endsWith('.yaml'));
  assert.ok(onDisk.length > 0, 'crds/ has no CRD files');
  new TenantOperator('crds-only');
  const group = await sentResource(CONFIG_GROUP, 'crds-only-crds');
  const files = group.inputs.files as string[];
  assert.deepEqual([...files].sort(), onDisk.map((f) => join(ROOT, 'crds', f)).sort());
  for (const file of files) {
    const crd = parse(readFileSync(file, 'utf8')) as { kind?: string; spec?: { group?: string } };
    assert.equal(crd.kind, 'CustomResourceDefinition', file);
    assert.equal(crd.spec?.group, 'tenancy.io', file);
  }
});

test('the chart is this repository’s, without its CRDs, in the namespace, with the values, after the CRDs and the namespace', async () => {
  const children: pulumi.ResourceTransformationArgs[] = [];
  const operator = new TenantOperator(
    'ops',
    {
      namespace: 'platform-tenants',
      values: { replicaCount: 2, vault: { address: 'https://vault.example:8200' } },
    },
    { transformations: [recordChildren(children)] },
  );
  const chart = await sentResource(CHART, 'ops');
  assert.equal(chart.inputs.chart, join(ROOT, 'charts', 'tenant-operator'));
  assert.ok(existsSync(join(String(chart.inputs.chart), 'Chart.yaml')));
  assert.equal(chart.inputs.skipCrds, true);
  assert.equal(chart.inputs.namespace, 'platform-tenants');
  assert.deepEqual(chart.inputs.values, {
    replicaCount: 2,
    vault: { address: 'https://vault.example:8200' },
  });
  const namespace = await sentResource(NAMESPACE, 'ops-namespace');
  assert.deepEqual(namespace.inputs.metadata, { name: 'platform-tenants' });
  assert.equal(await settled(operator.namespaceName), 'platform-tenants');

  const chartOpts = children.find((c) => c.type === CHART)?.opts;
  assert.ok(chartOpts, `no chart among ${children.map((c) => c.type).join(', ')}`);
  assert.equal(chartOpts.parent, operator);
  assert.deepEqual(chartOpts.dependsOn, [operator.crds, operator.namespace]);
  assert.ok(operator.crds instanceof k8s.yaml.v2.ConfigGroup);
  for (const child of children.filter((c) => c.resource !== operator))
    assert.equal(child.opts.parent, operator, `${child.type} ${child.name}`);
});

test('by default the release goes to tenant-system, which is created', async () => {
  new TenantOperator('defaults');
  const chart = await sentResource(CHART, 'defaults');
  assert.equal(chart.inputs.namespace, 'tenant-system');
  assert.deepEqual(chart.inputs.values, {});
  const namespace = await sentResource(NAMESPACE, 'defaults-namespace');
  assert.deepEqual(namespace.inputs.metadata, { name: 'tenant-system' });
});

test('createNamespace: false creates none, and the chart waits for the CRDs only', async () => {
  const children: pulumi.ResourceTransformationArgs[] = [];
  const operator = new TenantOperator(
    'existing-ns',
    { namespace: 'platform', createNamespace: false },
    { transformations: [recordChildren(children)] },
  );
  const chart = await sentResource(CHART, 'existing-ns');
  assert.equal(chart.inputs.namespace, 'platform');
  assert.equal(operator.namespace, undefined);
  assert.deepEqual(
    children.filter((c) => c.type === NAMESPACE),
    [],
  );
  assert.deepEqual(children.find((c) => c.type === CHART)?.opts.dependsOn, [operator.crds]);
});

test('a version pin must match the chart this package carries', async () => {
  const { version } = parse(
    readFileSync(join(ROOT, 'charts', 'tenant-operator', 'Chart.yaml'), 'utf8'),
  ) as { version: string };
  assert.doesNotThrow(() => new TenantOperator('pinned', { version }));
  await sentResource(CHART, 'pinned');
  assert.throws(
    () => new TenantOperator('mispinned', { version: '999.0.0' }),
    new RegExp(
      `version 999\\.0\\.0 was asked for, but this package carries chart ${version.replaceAll('.', '\\.')}`,
    ),
  );
});

test('a provider given to the component is used for the CRDs, the namespace and the chart', async () => {
  const cluster = new k8s.Provider('prod', { kubeconfig: '{}' });
  new TenantOperator('on-prod', {}, { provider: cluster });
  const reference = `${await settled(cluster.urn)}::prod-id`;
  for (const [type, name] of [
    [CONFIG_GROUP, 'on-prod-crds'],
    [NAMESPACE, 'on-prod-namespace'],
    [CHART, 'on-prod'],
  ] as const)
    assert.equal((await sentResource(type, name)).provider, reference, `${type} ${name}`);
});
