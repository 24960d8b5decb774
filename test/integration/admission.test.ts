import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { KubeClient } from '../../src/k8s/client.ts';
import { objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import {
  accessAllowed,
  adminClient,
  createTenant,
  eraseTenantAndWait,
  getObject,
  kubectl,
  waitForPhase,
  type CommandResult,
} from '../support/cluster.ts';
import { OperatorProcess } from '../support/operator.ts';
import { waitFor } from '../support/wait.ts';

// The admission guard and the owners' self-service, on the real API server:
// owners act through impersonation (`kubectl --as`), admins and break-glass
// through their own credentials. Writes that must pass are real; writes by
// break-glass are server-side dry runs, so the operator has nothing to repair.

const A = 'adm-a';
const B = 'adm-b';
const NS_A = `tenant-${A}`;
const NS_B = `tenant-${B}`;
const SCRATCH_NAMESPACE = 'adm-not-a-tenant';

let client: KubeClient;
let operator: OperatorProcess;

before(async () => {
  client = await adminClient();
  operator = await OperatorProcess.start();
  await operator.waitUntilLeader();
  await createTenant(client, A);
  await createTenant(client, B);
  await waitForPhase(client, A, 'Ready');
  await waitForPhase(client, B, 'Ready');
});

after(async () => {
  kubectl(['delete', 'namespace', SCRATCH_NAMESPACE, '--ignore-not-found', '--wait=false']);
  await eraseTenantAndWait(client, A);
  await eraseTenantAndWait(client, B);
  await operator.stop();
  await client.close();
});

/** kubectl as an owner of tenant A: user alice in group adm-a-admins. */
function asOwner(args: string[], input?: string): CommandResult {
  return kubectl(
    ['--as', 'alice', '--as-group', `${A}-admins`, '--as-group', 'system:authenticated', ...args],
    input,
  );
}

function apply(object: Record<string, unknown>, run = asOwner): CommandResult {
  return run(['apply', '-f', '-'], JSON.stringify(object));
}

function asBreakGlass(args: string[], input?: string): CommandResult {
  return kubectl(args, input, { as: 'break-glass' });
}

function assertRefused(result: CommandResult, pattern: RegExp, what: string): void {
  assert.notEqual(result.status, 0, `${what} was allowed: ${result.stdout}`);
  assert.match(result.stderr, pattern, what);
}

function assertAllowed(result: CommandResult, what: string): void {
  assert.equal(result.status, 0, `${what}: ${result.stderr}`);
}

const GUARD = /Forbidden.*ValidatingAdmissionPolicy 'tenancy\.io-managed-objects'/s;
const MANAGED = /is managed by tenant-operator; change the Tenant instead/;
const IMPERSONATED =
  /would carry the label app\.kubernetes\.io\/managed-by=tenant-operator, which only tenant-operator gives/;

function allowed(verb: string, resource: string, group = '', namespace = NS_A): Promise<boolean> {
  return accessAllowed(client, {
    user: 'alice',
    groups: [`${A}-admins`, 'system:authenticated'],
    verb,
    resource,
    group,
    namespace,
  });
}

describe('the policies themselves', () => {
  test('every policy is installed, bound, and type-checks without warnings', async () => {
    const policies = await client.request<{ items: KubeObject[] }>(
      'GET',
      '/apis/admissionregistration.k8s.io/v1/validatingadmissionpolicies',
    );
    const ours = policies.items.filter((p) => p.metadata.name.startsWith('tenancy.io-'));
    assert.deepEqual(ours.map((p) => p.metadata.name).sort(), [
      'tenancy.io-managed-namespaces',
      'tenancy.io-managed-objects',
      'tenancy.io-tenant-backups',
      'tenancy.io-tenant-finalizers',
      'tenancy.io-tenant-network-policies',
      'tenancy.io-tenant-role-bindings',
      'tenancy.io-tenant-services',
    ]);
    for (const policy of ours) {
      const status = policy.status as {
        observedGeneration?: number;
        typeChecking?: { expressionWarnings?: { fieldRef: string; warning: string }[] };
      };
      assert.equal(status.observedGeneration, policy.metadata.generation, policy.metadata.name);
      assert.deepEqual(status.typeChecking?.expressionWarnings ?? [], [], policy.metadata.name);
      const binding = await getObject(
        client,
        'ValidatingAdmissionPolicyBinding',
        policy.metadata.name,
      );
      assert.deepEqual((binding?.spec as { validationActions: string[] }).validationActions, [
        'Deny',
      ]);
    }
  });
});

describe('owners help themselves inside their namespace', () => {
  test('access reviews: Roles, RoleBindings and NetworkPolicies yes; Endpoints writes no', async () => {
    for (const [resource, group] of [
      ['roles', 'rbac.authorization.k8s.io'],
      ['rolebindings', 'rbac.authorization.k8s.io'],
      ['networkpolicies', 'networking.k8s.io'],
    ] as const) {
      for (const verb of ['create', 'update', 'delete']) {
        assert.equal(await allowed(verb, resource, group), true, `${verb} ${resource}`);
      }
      assert.equal(await allowed('create', resource, group, NS_B), false, `${resource} in B`);
    }
    for (const verb of ['bind', 'escalate']) {
      assert.equal(await allowed(verb, 'roles', 'rbac.authorization.k8s.io'), false, verb);
      assert.equal(await allowed(verb, 'clusterroles', 'rbac.authorization.k8s.io'), false, verb);
    }
    for (const [resource, group] of [
      ['endpoints', ''],
      ['endpointslices', 'discovery.k8s.io'],
    ] as const) {
      for (const verb of ['create', 'update', 'patch', 'delete']) {
        assert.equal(await allowed(verb, resource, group), false, `${verb} ${resource}`);
      }
      assert.equal(await allowed('list', resource, group), true, `list ${resource}`);
    }
  });

  test('an owner creates a Role and binds it to a colleague and to their own ServiceAccount', () => {
    assertAllowed(
      apply({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'Role',
        metadata: { name: 'config-reader', namespace: NS_A },
        rules: [{ apiGroups: [''], resources: ['configmaps'], verbs: ['get', 'list'] }],
      }),
      'owner creates a Role',
    );
    assertAllowed(
      apply({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: 'config-readers', namespace: NS_A },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'config-reader' },
        subjects: [
          { kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'carol' },
          { kind: 'ServiceAccount', name: 'default', namespace: NS_A },
          { kind: 'ServiceAccount', name: 'worker' },
          {
            kind: 'Group',
            apiGroup: 'rbac.authorization.k8s.io',
            name: `system:serviceaccounts:${NS_A}`,
          },
        ],
      }),
      'owner binds the Role inside the namespace',
    );
    const check = kubectl(['auth', 'can-i', 'list', 'configmaps', '-n', NS_A, '--as', 'carol']);
    assert.equal(check.stdout.trim(), 'yes', check.stderr);
  });

  test('an owner cannot grant what they do not hold (RBAC escalation check)', () => {
    const result = apply({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'Role',
      metadata: { name: 'quota-editor', namespace: NS_A },
      rules: [{ apiGroups: [''], resources: ['resourcequotas'], verbs: ['update', 'patch'] }],
    });
    assertRefused(result, /attempting to grant RBAC permissions not currently held/, 'escalation');
    const binding = apply({
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: 'make-me-admin', namespace: NS_A },
      roleRef: {
        apiGroup: 'rbac.authorization.k8s.io',
        kind: 'ClusterRole',
        name: 'cluster-admin',
      },
      subjects: [{ kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'alice' }],
    });
    assertRefused(binding, /forbidden/i, 'binding cluster-admin');
  });

  test('RoleBindings to system: groups or to other namespaces are refused', () => {
    const subjects: [
      string,
      { kind: string; name: string; apiGroup?: string; namespace?: string },
    ][] = [
      [
        'everyone',
        { kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: 'system:authenticated' },
      ],
      [
        'anonymous',
        { kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: 'system:unauthenticated' },
      ],
      [
        'all-pods',
        { kind: 'Group', apiGroup: 'rbac.authorization.k8s.io', name: 'system:serviceaccounts' },
      ],
      [
        'b-pods',
        {
          kind: 'Group',
          apiGroup: 'rbac.authorization.k8s.io',
          name: `system:serviceaccounts:${NS_B}`,
        },
      ],
      ['b-sa', { kind: 'ServiceAccount', name: 'default', namespace: NS_B }],
      [
        'b-sa-user',
        {
          kind: 'User',
          apiGroup: 'rbac.authorization.k8s.io',
          name: `system:serviceaccount:${NS_B}:default`,
        },
      ],
      [
        'anonymous-user',
        { kind: 'User', apiGroup: 'rbac.authorization.k8s.io', name: 'system:anonymous' },
      ],
    ];
    for (const [name, subject] of subjects) {
      const result = apply({
        apiVersion: 'rbac.authorization.k8s.io/v1',
        kind: 'RoleBinding',
        metadata: { name: `share-${name}`, namespace: NS_A },
        roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'Role', name: 'config-reader' },
        subjects: [subject],
      });
      assertRefused(
        result,
        /tenancy\.io-tenant-role-bindings.*would grant access beyond the tenant to/s,
        `binding ${subject.name}`,
      );
      assert.ok(result.stderr.includes(subject.name), result.stderr);
    }
  });

  test('an owner makes NetworkPolicies whose peers stay in the namespace', () => {
    assertAllowed(
      apply({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name: 'web-from-frontend', namespace: NS_A },
        spec: {
          podSelector: { matchLabels: { app: 'web' } },
          policyTypes: ['Ingress', 'Egress'],
          ingress: [
            {
              from: [
                { podSelector: { matchLabels: { app: 'frontend' } } },
                {
                  namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NS_A } },
                  podSelector: {},
                },
              ],
              ports: [{ protocol: 'TCP', port: 8080 }],
            },
          ],
          egress: [{ to: [{ podSelector: { matchLabels: { app: 'db' } } }] }],
        },
      }),
      'same-namespace NetworkPolicy',
    );
  });

  test('NetworkPolicy peers outside the namespace are refused', () => {
    const peers: [string, Record<string, unknown>, RegExp][] = [
      ['ip', { ipBlock: { cidr: '0.0.0.0/0' } }, /ipBlock peers are not allowed/],
      ['all-namespaces', { namespaceSelector: {} }, /may only select this namespace/],
      [
        'other-tenant',
        { namespaceSelector: { matchLabels: { 'kubernetes.io/metadata.name': NS_B } } },
        /may only select this namespace/,
      ],
      [
        'by-label',
        { namespaceSelector: { matchLabels: { 'tenancy.io/tenant': B } } },
        /may only select this namespace/,
      ],
      [
        'own-plus-expression',
        {
          namespaceSelector: {
            matchLabels: { 'kubernetes.io/metadata.name': NS_A },
            matchExpressions: [{ key: 'x', operator: 'DoesNotExist' }],
          },
        },
        /may only select this namespace/,
      ],
    ];
    const everywhere: [string, Record<string, unknown>][] = [
      ['ingress-from-anywhere', { ingress: [{}] }],
      ['ingress-port-from-anywhere', { ingress: [{ ports: [{ port: 80 }] }] }],
      ['ingress-empty-from', { ingress: [{ from: [] }] }],
      ['egress-to-anywhere', { egress: [{}], policyTypes: ['Egress'] }],
    ];
    for (const [name, rules] of everywhere) {
      const result = apply({
        apiVersion: 'networking.k8s.io/v1',
        kind: 'NetworkPolicy',
        metadata: { name, namespace: NS_A },
        spec: { podSelector: {}, ...rules },
      });
      assertRefused(result, /a rule without peers allows everything/, name);
    }
    for (const [name, peer, message] of peers) {
      for (const direction of ['ingress', 'egress'] as const) {
        const rule = direction === 'ingress' ? { from: [peer] } : { to: [peer] };
        const result = apply({
          apiVersion: 'networking.k8s.io/v1',
          kind: 'NetworkPolicy',
          metadata: { name: `open-${name}-${direction}`, namespace: NS_A },
          spec: { podSelector: {}, [direction]: [rule] },
        });
        assertRefused(result, message, `${direction} peer ${name}`);
        assert.match(result.stderr, /tenancy\.io-tenant-network-policies/);
      }
    }
  });

  test('an owner can neither write Endpoints nor EndpointSlices', () => {
    const endpoints = apply({
      apiVersion: 'v1',
      kind: 'Endpoints',
      metadata: { name: 'hijack', namespace: NS_A },
      subsets: [{ addresses: [{ ip: '10.0.0.10' }], ports: [{ port: 80 }] }],
    });
    assertRefused(endpoints, /forbidden.*endpoints/is, 'Endpoints');
    const slice = apply({
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'hijack', namespace: NS_A, labels: { 'kubernetes.io/service-name': 'x' } },
      addressType: 'IPv4',
      endpoints: [{ addresses: ['10.0.0.10'] }],
    });
    assertRefused(slice, /forbidden.*endpointslices/is, 'EndpointSlice');
  });

  test('an owner cannot hold the namespace with a finalizer nothing removes (it would block the erasure)', () => {
    const configMap = (name: string, finalizers: string[]) => ({
      apiVersion: 'v1',
      kind: 'ConfigMap',
      metadata: { name, namespace: NS_A, finalizers },
      data: { a: '1' },
    });
    const held = apply(configMap('hold', ['example.com/hold']));
    assertRefused(held, /tenancy\.io-tenant-finalizers/, 'a custom finalizer');
    assert.match(held.stderr, /finalizer\(s\) example\.com\/hold not allowed in tenant namespaces/);
    // Added later by an update: refused too.
    assertAllowed(apply(configMap('plain', [])), 'a ConfigMap without finalizers');
    assertRefused(
      asOwner([
        'patch',
        'configmap',
        'plain',
        '-n',
        NS_A,
        '--type=merge',
        '-p',
        '{"metadata":{"finalizers":["example.com/hold"]}}',
      ]),
      /tenancy\.io-tenant-finalizers/,
      'a finalizer added by an update',
    );
    // Those Kubernetes' own controllers clear are fine.
    assertAllowed(
      apply(
        configMap('kube', ['kubernetes.io/pvc-protection', 'batch.kubernetes.io/job-tracking']),
      ),
      'Kubernetes finalizers',
    );
    // One the object already had (made before the guard, or by break-glass) may stay.
    assertAllowed(apply(configMap('legacy', ['example.com/legacy']), asBreakGlass), 'break-glass');
    assertAllowed(
      asOwner(['label', 'configmap', 'legacy', '-n', NS_A, 'touched=yes']),
      'an update that keeps an existing finalizer',
    );
    assertAllowed(
      asBreakGlass([
        'patch',
        'configmap',
        'legacy',
        '-n',
        NS_A,
        '--type=json',
        '-p',
        '[{"op":"remove","path":"/metadata/finalizers"}]',
      ]),
      'removing the finalizer',
    );
    for (const name of ['plain', 'kube', 'legacy'])
      asBreakGlass([
        'patch',
        'configmap',
        name,
        '-n',
        NS_A,
        '--type=json',
        '-p',
        '[{"op":"remove","path":"/metadata/finalizers"}]',
      ]);
  });
});

describe("nobody but the operator changes the operator's objects", () => {
  test('owners cannot edit or delete tenant-admins, default-deny, the quota or the limits', () => {
    const attempts: [string, string[]][] = [
      ['delete the owner binding', ['delete', 'rolebinding', 'tenant-admins']],
      [
        'add themselves to the owner binding',
        [
          'patch',
          'rolebinding',
          'tenant-admins',
          '--type=json',
          '-p',
          '[{"op":"add","path":"/subjects/-","value":{"kind":"Group","name":"system:authenticated","apiGroup":"rbac.authorization.k8s.io"}}]',
        ],
      ],
      ['delete default-deny', ['delete', 'networkpolicy', 'default-deny']],
      [
        'empty default-deny',
        [
          'patch',
          'networkpolicy',
          'default-deny',
          '--type=merge',
          '-p',
          '{"spec":{"policyTypes":["Ingress"]}}',
        ],
      ],
      ['delete the quota', ['delete', 'resourcequota', 'tenant-quota']],
      [
        'raise the quota',
        [
          'patch',
          'resourcequota',
          'tenant-quota',
          '--type=merge',
          '-p',
          '{"spec":{"hard":{"pods":"999"}}}',
        ],
      ],
      ['delete the limits', ['delete', 'limitrange', 'tenant-limits']],
    ];
    for (const [what, args] of attempts) {
      assertRefused(asOwner(['-n', NS_A, ...args]), /forbidden/i, what);
    }
    // RBAC lets owners write RoleBindings and NetworkPolicies: the guard is what refuses these.
    assertRefused(asOwner(['-n', NS_A, 'delete', 'networkpolicy', 'default-deny']), MANAGED, 'np');
    assertRefused(asOwner(['-n', NS_A, 'delete', 'rolebinding', 'tenant-admins']), MANAGED, 'rb');
  });

  test('an owner cannot pass their objects off as ours, or take ours over', () => {
    assertAllowed(
      asOwner(['-n', NS_A, 'create', 'configmap', 'mine', '--from-literal=a=b']),
      'plain ConfigMap',
    );
    assertRefused(
      asOwner([
        '-n',
        NS_A,
        'label',
        'configmap',
        'mine',
        'app.kubernetes.io/managed-by=tenant-operator',
      ]),
      IMPERSONATED,
      'relabelling to managed-by',
    );
    assertRefused(
      apply({
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: {
          name: 'impostor',
          namespace: NS_A,
          labels: { 'app.kubernetes.io/managed-by': 'tenant-operator', 'tenancy.io/tenant': A },
        },
      }),
      IMPERSONATED,
      'creating with our label',
    );
    assertRefused(
      asOwner([
        '-n',
        NS_A,
        'label',
        'networkpolicy',
        'default-deny',
        'app.kubernetes.io/managed-by-',
      ]),
      MANAGED,
      'removing our label',
    );
  });

  test('an admin outside break-glass is refused too', () => {
    const attempts: [string, string[]][] = [
      ['delete default-deny', ['-n', NS_A, 'delete', 'networkpolicy', 'default-deny']],
      [
        'raise the quota',
        [
          '-n',
          NS_A,
          'patch',
          'resourcequota',
          'tenant-quota',
          '--type=merge',
          '-p',
          '{"spec":{"hard":{"pods":"999"}}}',
        ],
      ],
      ['delete the owner binding', ['-n', NS_A, 'delete', 'rolebinding', 'tenant-admins']],
    ];
    for (const [what, args] of attempts) {
      const result = kubectl(args);
      assertRefused(result, GUARD, `admin: ${what}`);
      assert.match(result.stderr, MANAGED);
    }
  });

  test('tenant namespaces: not deleted, not relabelled, not impersonated', () => {
    const deletion = kubectl(['delete', 'namespace', NS_A, '--wait=false']);
    assertRefused(deletion, /tenancy\.io-managed-namespaces/, 'admin deletes the namespace');
    assert.match(deletion.stderr, new RegExp(`namespace ${NS_A} is managed by tenant-operator`));
    assertRefused(
      kubectl(['label', 'namespace', NS_A, 'app.kubernetes.io/managed-by-']),
      /tenancy\.io-managed-namespaces/,
      'admin takes our label off the namespace',
    );
    assertRefused(
      kubectl([
        'label',
        '--overwrite',
        'namespace',
        NS_A,
        'pod-security.kubernetes.io/enforce=privileged',
      ]),
      /tenancy\.io-managed-namespaces/,
      'admin weakens Pod Security',
    );
    assertAllowed(kubectl(['create', 'namespace', SCRATCH_NAMESPACE]), 'plain namespace');
    assertRefused(
      kubectl([
        'label',
        'namespace',
        SCRATCH_NAMESPACE,
        'app.kubernetes.io/managed-by=tenant-operator',
        'tenancy.io/tenant=fake',
      ]),
      /tenancy\.io-managed-namespaces.*would carry the label/s,
      'admin passes a namespace off as a tenant',
    );
    assertRefused(
      apply(
        {
          apiVersion: 'v1',
          kind: 'Namespace',
          metadata: {
            name: 'tenant-adm-fake',
            labels: { 'app.kubernetes.io/managed-by': 'tenant-operator' },
          },
        },
        (args, input) => kubectl(args, input),
      ),
      /tenancy\.io-managed-namespaces.*would carry the label/s,
      'admin creates a namespace with our label',
    );
  });

  test('break-glass passes the guard', () => {
    assertAllowed(
      asBreakGlass(['-n', NS_A, 'delete', 'networkpolicy', 'default-deny', '--dry-run=server']),
      'break-glass deletes default-deny',
    );
    assertAllowed(
      asBreakGlass([
        '-n',
        NS_A,
        'patch',
        'resourcequota',
        'tenant-quota',
        '--type=merge',
        '-p',
        '{"spec":{"hard":{"pods":"999"}}}',
        '--dry-run=server',
      ]),
      'break-glass raises the quota',
    );
    assertAllowed(
      asBreakGlass(['label', 'namespace', NS_A, 'example.com/incident=42', '--dry-run=server']),
      'break-glass labels the namespace',
    );
    assertAllowed(
      apply(
        {
          apiVersion: 'v1',
          kind: 'Service',
          metadata: { name: 'break-glass-external', namespace: NS_A },
          spec: { ports: [{ port: 80 }], externalIPs: ['192.0.2.10'] },
        },
        (args, input) => asBreakGlass([...args, '--dry-run=server'], input),
      ),
      'break-glass Service with externalIPs',
    );
  });

  test("Kubernetes' controllers keep working: quota status, garbage collection, namespace deletion", async () => {
    // The quota controller writes status, a subresource the guard does not match.
    await waitFor('the quota controller to report usage', async () => {
      const quota = await getObject(client, 'ResourceQuota', 'tenant-quota', NS_B);
      return (quota?.status as { used?: Record<string, string> } | undefined)?.used?.configmaps;
    });
    // Erasing the Tenant deletes its namespace; the namespace controller and
    // the garbage collector delete everything the operator made in it.
    await eraseTenantAndWait(client, B);
    assert.equal(await client.get(objectPath(RESOURCES.Namespace, NS_B)), undefined);
    await createTenant(client, B);
    await waitForPhase(client, B, 'Ready');
  });
});

describe('Services in tenant namespaces', () => {
  test('externalIPs are refused, for owners and admins alike (CVE-2020-8554)', () => {
    const service = {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'mitm', namespace: NS_A },
      spec: { ports: [{ port: 80 }], externalIPs: ['192.0.2.10'] },
    };
    for (const run of [asOwner, (args: string[], input?: string) => kubectl(args, input)]) {
      const result = apply(service, run);
      assertRefused(result, /tenancy\.io-tenant-services/, 'externalIPs');
      assert.match(result.stderr, /spec\.externalIPs is not allowed.*CVE-2020-8554/);
    }
  });

  test('ExternalName Services are refused; a ClusterIP Service is fine', () => {
    const externalName = apply({
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name: 'to-b', namespace: NS_A },
      spec: { type: 'ExternalName', externalName: `db.${NS_B}.svc.cluster.local` },
    });
    assertRefused(externalName, /type ExternalName is not allowed/, 'ExternalName');
    assertAllowed(
      apply({
        apiVersion: 'v1',
        kind: 'Service',
        metadata: { name: 'web', namespace: NS_A },
        spec: { selector: { app: 'web' }, ports: [{ port: 80 }] },
      }),
      'ClusterIP Service',
    );
    // ... and cannot be turned into one afterwards.
    assertRefused(
      asOwner([
        '-n',
        NS_A,
        'patch',
        'service',
        'web',
        '--type=merge',
        '-p',
        '{"spec":{"externalIPs":["192.0.2.11"]}}',
      ]),
      /spec\.externalIPs is not allowed/,
      'adding externalIPs later',
    );
  });
});
