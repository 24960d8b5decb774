import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { CHART_FILES_DIR, renderChartFiles, STAND_IN } from '../../src/cli/gen-chart.ts';
import { parseInstallRbacArgs } from '../../src/cli/install-rbac.ts';
import { UsageError } from '../../src/cli/options.ts';
import {
  CLUSTER_RULES,
  EVENTS_NAMESPACE_RULES,
  OPERATOR_NAMESPACE_RULES,
} from '../../src/rbac/operator-permissions.ts';
import { operatorRbacObjects } from '../../src/rbac/operator-rbac.ts';

test("the chart's generated files equal what gen:crds writes from src/", async () => {
  const generated = renderChartFiles();
  assert.equal(generated.size, 2);
  for (const [file, content] of generated) {
    const checkedIn = await readFile(
      new URL(`../../${CHART_FILES_DIR}/${file}`, import.meta.url),
      'utf8',
    );
    assert.equal(checkedIn, content, `${CHART_FILES_DIR}/${file} is stale: run npm run gen:crds`);
  }
});

test("the chart's admission guard carries every stand-in in a form its template replaces", () => {
  const guard = renderChartFiles().get('admission-guard.yaml') ?? '';
  assert.ok(guard.includes(JSON.stringify(STAND_IN.operatorUser)));
  assert.ok(guard.includes(JSON.stringify(STAND_IN.breakGlassGroup)));
  assert.ok(guard.includes(`system:serviceaccount:${STAND_IN.namespace}:backup-`));
});

test('no rule grants a wildcard, and rules that name objects name at least one', () => {
  for (const rule of [...CLUSTER_RULES, ...OPERATOR_NAMESPACE_RULES, ...EVENTS_NAMESPACE_RULES]) {
    for (const list of [rule.apiGroups, rule.resources, rule.verbs])
      assert.ok(!list.includes('*'), JSON.stringify(rule));
    // An empty resourceNames list would allow every name.
    if (rule.resourceNames) assert.ok(rule.resourceNames.length > 0, JSON.stringify(rule));
    // RBAC cannot restrict these by name: such a rule would silently allow nothing.
    if (rule.resourceNames)
      for (const verb of ['create', 'deletecollection'])
        assert.ok(
          !rule.verbs.includes(verb),
          `${verb} with resourceNames: ${JSON.stringify(rule)}`,
        );
    // List and watch by name are allowed only with the field selector
    // metadata.name=<name> (the informer of the credentials Secret), which
    // names one object: such a rule names exactly one.
    if (rule.resourceNames && (rule.verbs.includes('list') || rule.verbs.includes('watch')))
      assert.equal(rule.resourceNames.length, 1, JSON.stringify(rule));
  }
});

test('install-rbac binds what it is given, in the operator namespace, a binding after its role', () => {
  const request = parseInstallRbacArgs([
    '--namespace',
    'ops',
    '--group',
    'tenancy.io:operators',
    '--service-account',
    'tenant-operator',
  ]);
  const objects = operatorRbacObjects(request);
  assert.deepEqual(
    objects.map((o) => `${o.kind} ${o.metadata.namespace ?? ''}/${o.metadata.name}`),
    [
      'ClusterRole /tenant-operator',
      'ClusterRoleBinding /tenant-operator',
      'Role ops/tenant-operator',
      'RoleBinding ops/tenant-operator',
      'Role default/tenant-operator',
      'RoleBinding default/tenant-operator',
    ],
  );
  assert.deepEqual((objects[1] as unknown as { subjects: unknown }).subjects, [
    { kind: 'ServiceAccount', name: 'tenant-operator', namespace: 'ops' },
    { kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: 'tenancy.io:operators' },
  ]);
});

test('install-rbac refuses to bind nobody, or a nameless subject', () => {
  assert.throws(() => parseInstallRbacArgs([]), UsageError);
  assert.throws(() => parseInstallRbacArgs(['--group', ' ']), /need a name/);
});
