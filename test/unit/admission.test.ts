import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { parseAllDocuments } from 'yaml';
import { buildAdmissionGuard } from '../../src/admission/policies.ts';
import { tenantFinalizerPolicy } from '../../src/admission/tenant-finalizer.ts';
import { renderAdmissionGuard } from '../../src/cli/gen-crds.ts';
import type { KubeObject } from '../../src/k8s/types.ts';

// The admission guard as built from code; what it does is tested against the
// real API server in test/integration/admission.test.ts.

test('checked-in admission/ equals what gen:crds generates', async () => {
  const kindsOf: Record<string, string[]> = {};
  for (const [file, content] of renderAdmissionGuard()) {
    const checkedIn = await readFile(new URL(`../../admission/${file}`, import.meta.url), 'utf8');
    assert.equal(checkedIn, content, `admission/${file} is stale: run npm run gen:crds`);
    kindsOf[file] = parseAllDocuments(content).map((d) => (d.toJS() as KubeObject).kind);
  }
  assert.deepEqual(new Set(kindsOf['admission-guard.yaml']), new Set(GUARD_KINDS));
  assert.deepEqual(kindsOf['tenant-finalizer.yaml'], [
    'MutatingAdmissionPolicy',
    'MutatingAdmissionPolicyBinding',
  ]);
  // The chart reads the same file.
  const chartCopy = await readFile(
    new URL('../../charts/tenant-operator/files/tenant-finalizer.yaml', import.meta.url),
    'utf8',
  );
  assert.equal(chartCopy, renderAdmissionGuard().get('tenant-finalizer.yaml'));
});

const GUARD_KINDS = ['ValidatingAdmissionPolicy', 'ValidatingAdmissionPolicyBinding'];

test("the finalizer policy adds tenancy.io/finalizer to Tenants, alongside others' finalizers", () => {
  const [policy, binding] = tenantFinalizerPolicy() as [
    KubeObject & { spec: MutatingSpec },
    KubeObject & { spec: { policyName: string } },
  ];
  assert.equal(binding.spec.policyName, policy.metadata.name);
  assert.equal(policy.spec.failurePolicy, 'Fail');
  assert.deepEqual(policy.spec.matchConstraints.resourceRules, [
    {
      apiGroups: ['tenancy.io'],
      apiVersions: ['v1alpha1'],
      resources: ['tenants'],
      operations: ['CREATE', 'UPDATE'],
    },
  ]);
  const conditions = policy.spec.matchConditions.map((c) => c.expression);
  assert.ok(conditions.includes('!has(object.metadata.deletionTimestamp)'));
  assert.ok(conditions.some((c) => c.includes('"tenancy.io/finalizer" in object.metadata')));
  const [mutation] = policy.spec.mutations;
  assert.match(mutation!.jsonPatch.expression, /path: "\/metadata\/finalizers\/-"/);
});

interface MutatingSpec {
  failurePolicy: string;
  matchConstraints: { resourceRules: unknown[] };
  matchConditions: { expression: string }[];
  mutations: { jsonPatch: { expression: string } }[];
}

interface PolicySpec {
  failurePolicy: string;
  matchConstraints: { resourceRules: { resources: string[] }[] };
  matchConditions: { expression: string }[];
  validations: { expression: string }[];
}

test('every policy has its binding, fails closed and leaves subresources alone (but TenantBackup status)', () => {
  const objects = buildAdmissionGuard({ operatorUsers: ['op'], breakGlassGroups: ['bg'] });
  const policies = objects.filter((o) => o.kind === 'ValidatingAdmissionPolicy');
  const bindings = objects.filter((o) => o.kind === 'ValidatingAdmissionPolicyBinding');
  assert.equal(policies.length, 7);
  assert.deepEqual(
    bindings.map((b) => (b.spec as { policyName: string }).policyName),
    policies.map((p) => p.metadata.name),
  );
  for (const policy of policies) {
    const spec = policy.spec as PolicySpec;
    assert.equal(spec.failurePolicy, 'Fail');
    for (const rule of spec.matchConstraints.resourceRules) {
      // 'status' and other subresources (the quota controller's writes) are never matched,
      // except TenantBackup status, whose writers are what that policy is about.
      const allowed =
        policy.metadata.name === 'tenancy.io-tenant-backups' ? ['tenantbackups/status'] : [];
      assert.ok(
        rule.resources.every((r) => !r.includes('/') || allowed.includes(r)),
        JSON.stringify(rule),
      );
    }
  }
});

test('identities become CEL literals, quoted so no name can break out', () => {
  const objects = buildAdmissionGuard({
    operatorUsers: ['tenant-operator', 'evil" || true || "'],
    breakGlassGroups: ['tenancy.io:break-glass'],
  });
  const text = JSON.stringify(objects);
  assert.match(text, /\\"tenant-operator\\"/);
  assert.match(text, /\\"tenancy\.io:break-glass\\"/);
  // The quote inside the name stays escaped inside its CEL string literal.
  assert.match(text, /evil\\\\\\" \|\| true/);
  const managed = objects.find((o) => o.metadata.name === 'tenancy.io-managed-objects');
  const expression = (managed?.spec as PolicySpec).validations.map((v) => v.expression).join('\n');
  assert.match(expression, /system:serviceaccount:kube-system:generic-garbage-collector/);
  assert.match(expression, /system:serviceaccount:kube-system:namespace-controller/);
  assert.match(expression, /system:kube-controller-manager/);
});

test('without break-glass groups nobody but the operator and the controllers is exempt', () => {
  const objects = buildAdmissionGuard({ operatorUsers: ['op'], breakGlassGroups: [] });
  const text = JSON.stringify(objects);
  assert.doesNotMatch(text, /groups\.exists/);
  assert.doesNotMatch(text, /\|\| false/);
});

test("tenant-backups: a backup job's user name must be backup-<spec.tenant> in the operator's namespace", () => {
  const objects = buildAdmissionGuard({
    operatorUsers: ['op'],
    breakGlassGroups: ['bg'],
    operatorNamespace: 'ops',
  });
  const policy = objects.find((o) => o.metadata.name === 'tenancy.io-tenant-backups');
  assert.ok(policy);
  const spec = policy.spec as PolicySpec;
  const expressions = spec.validations.map((v) => v.expression);
  assert.ok(
    expressions.some((e) =>
      e.includes(
        `request.userInfo.username == "system:serviceaccount:ops:backup-" + object.spec.?tenant.orValue('')`,
      ),
    ),
    expressions.join('\n'),
  );
  assert.ok(expressions.some((e) => e.startsWith("request.?subResource.orValue('') != 'status'")));
  // The operator and break-glass are not subject to it at all.
  assert.match(spec.matchConditions[0]!.expression, /"op"/);
  assert.match(spec.matchConditions[0]!.expression, /"bg"/);
  const defaults = buildAdmissionGuard({ operatorUsers: ['op'], breakGlassGroups: [] });
  assert.match(JSON.stringify(defaults), /system:serviceaccount:tenant-system:backup-/);
});
