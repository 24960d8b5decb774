import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { KubeClient } from '../../src/k8s/client.ts';
import {
  adminClient,
  createTenant,
  deleteTenantAndWait,
  getObject,
  kubectl,
  waitForPhase,
} from '../support/cluster.ts';
import { OperatorProcess } from '../support/operator.ts';
import { waitFor } from '../support/wait.ts';

// Isolation, checked through the API server itself: access reviews,
// impersonation and server-side dry-run against admission.

let client: KubeClient;
let operator: OperatorProcess;

before(async () => {
  client = await adminClient();
  operator = await OperatorProcess.start();
  await operator.waitUntilLeader();
  await createTenant(client, 'iso-a', {
    quota: { cpu: '2', memory: '2Gi', pods: 2, storage: '10Gi' },
  });
  await createTenant(client, 'iso-b', {
    owners: [
      { kind: 'Group', name: 'iso-b-admins' },
      { kind: 'ServiceAccount', name: 'deployer', namespace: 'ci' },
    ],
    network: {
      allowIngressFromNamespaces: [
        { matchLabels: { 'kubernetes.io/metadata.name': 'ingress-nginx' } },
      ],
      allowEgressCIDRs: ['203.0.113.0/24'],
    },
  });
  await waitForPhase(client, 'iso-a', 'Ready');
  await waitForPhase(client, 'iso-b', 'Ready');
});

after(async () => {
  await deleteTenantAndWait(client, 'iso-a');
  await deleteTenantAndWait(client, 'iso-b');
  await operator.stop();
  await client.close();
});

interface Review {
  user?: string;
  groups?: string[];
  verb: string;
  resource: string;
  group?: string;
  namespace?: string;
  name?: string;
}

async function allowed(review: Review): Promise<boolean> {
  const result = await client.request<{ status: { allowed: boolean } }>(
    'POST',
    '/apis/authorization.k8s.io/v1/subjectaccessreviews',
    {
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user: review.user ?? 'alice',
          groups: review.groups ?? ['system:authenticated'],
          resourceAttributes: {
            verb: review.verb,
            resource: review.resource,
            group: review.group ?? '',
            ...(review.namespace ? { namespace: review.namespace } : {}),
            ...(review.name ? { name: review.name } : {}),
          },
        },
      },
    },
  );
  return result.status.allowed;
}

const ownerOfA = { user: 'alice', groups: ['iso-a-admins', 'system:authenticated'] };
const ownerOfB = { user: 'bob', groups: ['iso-b-admins', 'system:authenticated'] };
const podOfA = {
  user: 'system:serviceaccount:tenant-iso-a:default',
  groups: ['system:serviceaccounts', 'system:serviceaccounts:tenant-iso-a', 'system:authenticated'],
};

describe('the namespace and its children', () => {
  test('namespace carries Pod Security restricted and our labels', async () => {
    const ns = await getObject(client, 'Namespace', 'tenant-iso-a');
    assert.ok(ns);
    assert.equal(ns.metadata.labels?.['pod-security.kubernetes.io/enforce'], 'restricted');
    assert.equal(ns.metadata.labels?.['app.kubernetes.io/managed-by'], 'tenant-operator');
    assert.equal(ns.metadata.labels?.['tenancy.io/tenant'], 'iso-a');
    assert.equal(ns.metadata.ownerReferences?.[0]?.kind, 'Tenant');
  });

  test("network policies: default deny, DNS, same namespace, and the spec's allowances", async () => {
    const deny = await getObject(client, 'NetworkPolicy', 'default-deny', 'tenant-iso-a');
    assert.deepEqual((deny?.spec as { policyTypes: string[] }).policyTypes, ['Ingress', 'Egress']);
    assert.ok(await getObject(client, 'NetworkPolicy', 'allow-dns', 'tenant-iso-a'));
    assert.ok(await getObject(client, 'NetworkPolicy', 'allow-same-namespace', 'tenant-iso-a'));
    assert.equal(
      await getObject(client, 'NetworkPolicy', 'allow-egress-cidrs', 'tenant-iso-a'),
      undefined,
    );
    const egress = await getObject(client, 'NetworkPolicy', 'allow-egress-cidrs', 'tenant-iso-b');
    assert.match(JSON.stringify(egress?.spec), /203\.0\.113\.0\/24/);
    assert.ok(
      await getObject(client, 'NetworkPolicy', 'allow-ingress-from-namespaces', 'tenant-iso-b'),
    );
  });

  test('status reports every condition True with the observed generation', async () => {
    const tenant = await waitForPhase(client, 'iso-a', 'Ready');
    const conditions = tenant.status?.conditions ?? [];
    for (const type of [
      'Ready',
      'NamespaceReady',
      'NetworkIsolated',
      'OwnersBound',
      'QuotaApplied',
    ]) {
      const condition = conditions.find((c) => c.type === type);
      assert.equal(condition?.status, 'True', `${type}: ${JSON.stringify(condition)}`);
      assert.equal(condition?.observedGeneration, tenant.metadata.generation);
    }
    assert.equal(tenant.status?.namespace, 'tenant-iso-a');
    assert.deepEqual(tenant.metadata.finalizers, ['tenancy.io/finalizer']);
  });

  test('events tell the story', async () => {
    const events = await client.request<{
      items: { reason: string; involvedObject: { name: string } }[];
    }>('GET', '/api/v1/namespaces/default/events', {
      query: { fieldSelector: 'involvedObject.kind=Tenant,involvedObject.name=iso-a' },
    });
    assert.ok(
      events.items.some((e) => e.reason === 'Provisioned'),
      JSON.stringify(events.items.map((e) => e.reason)),
    );
  });
});

describe('access reviews', () => {
  test('an owner may work in their own namespace', async () => {
    assert.equal(
      await allowed({ ...ownerOfA, verb: 'create', resource: 'pods', namespace: 'tenant-iso-a' }),
      true,
    );
    assert.equal(
      await allowed({
        ...ownerOfA,
        verb: 'create',
        resource: 'deployments',
        group: 'apps',
        namespace: 'tenant-iso-a',
      }),
      true,
    );
    assert.equal(
      await allowed({ ...ownerOfA, verb: 'get', resource: 'secrets', namespace: 'tenant-iso-a' }),
      true,
    );
  });

  test('the tenant-admin role was filled by the cluster-role aggregation controller', async () => {
    const role = await getObject(client, 'ClusterRole', 'tenancy.io:tenant-admin');
    assert.ok(Array.isArray(role?.rules) && role.rules.length > 0, 'aggregated rules are empty');
  });

  test("owners of A are denied B's namespace, and the other way round", async () => {
    for (const verb of ['get', 'list', 'create', 'delete']) {
      assert.equal(
        await allowed({ ...ownerOfA, verb, resource: 'pods', namespace: 'tenant-iso-b' }),
        false,
      );
      assert.equal(
        await allowed({ ...ownerOfB, verb, resource: 'pods', namespace: 'tenant-iso-a' }),
        false,
      );
      assert.equal(
        await allowed({ ...ownerOfA, verb, resource: 'secrets', namespace: 'tenant-iso-b' }),
        false,
      );
    }
  });

  test('a ServiceAccount owner is bound too', async () => {
    const deployer = {
      user: 'system:serviceaccount:ci:deployer',
      groups: ['system:serviceaccounts', 'system:authenticated'],
    };
    assert.equal(
      await allowed({ ...deployer, verb: 'create', resource: 'pods', namespace: 'tenant-iso-b' }),
      true,
    );
    assert.equal(
      await allowed({ ...deployer, verb: 'create', resource: 'pods', namespace: 'tenant-iso-a' }),
      false,
    );
  });

  test('tenant service accounts cannot read another tenant or their own secrets', async () => {
    assert.equal(
      await allowed({ ...podOfA, verb: 'get', resource: 'secrets', namespace: 'tenant-iso-b' }),
      false,
    );
    assert.equal(
      await allowed({ ...podOfA, verb: 'list', resource: 'pods', namespace: 'tenant-iso-b' }),
      false,
    );
    assert.equal(
      await allowed({ ...podOfA, verb: 'get', resource: 'secrets', namespace: 'tenant-iso-a' }),
      false,
    );
  });

  test('owners get nothing cluster-scoped', async () => {
    for (const [verb, resource, group] of [
      ['list', 'namespaces', ''],
      ['create', 'namespaces', ''],
      ['list', 'nodes', ''],
      ['create', 'clusterroles', 'rbac.authorization.k8s.io'],
      ['create', 'clusterrolebindings', 'rbac.authorization.k8s.io'],
      ['update', 'tenants', 'tenancy.io'],
      ['list', 'secrets', ''],
    ] as const) {
      assert.equal(
        await allowed({ ...ownerOfA, verb, resource, group }),
        false,
        `${verb} ${resource}`,
      );
    }
  });

  test('owners cannot weaken isolation: network policies, quota, limits, role bindings', async () => {
    const ns = 'tenant-iso-a';
    for (const verb of ['update', 'patch', 'delete', 'create']) {
      assert.equal(
        await allowed({
          ...ownerOfA,
          verb,
          resource: 'networkpolicies',
          group: 'networking.k8s.io',
          namespace: ns,
        }),
        false,
      );
      assert.equal(
        await allowed({ ...ownerOfA, verb, resource: 'resourcequotas', namespace: ns }),
        false,
      );
      assert.equal(
        await allowed({ ...ownerOfA, verb, resource: 'limitranges', namespace: ns }),
        false,
      );
      assert.equal(
        await allowed({
          ...ownerOfA,
          verb,
          resource: 'rolebindings',
          group: 'rbac.authorization.k8s.io',
          namespace: ns,
        }),
        false,
      );
    }
    assert.equal(
      await allowed({
        ...ownerOfA,
        verb: 'get',
        resource: 'networkpolicies',
        group: 'networking.k8s.io',
        namespace: ns,
      }),
      true,
    );
  });
});

describe('impersonation and admission', () => {
  test('an impersonated owner cannot delete or edit the network policy or the quota', () => {
    const as = [
      '--as',
      'alice',
      '--as-group',
      'iso-a-admins',
      '--as-group',
      'system:authenticated',
    ];
    const del = kubectl([...as, '-n', 'tenant-iso-a', 'delete', 'networkpolicy', 'default-deny']);
    assert.notEqual(del.status, 0);
    assert.match(del.stderr, /forbidden/i);
    const edit = kubectl([
      ...as,
      '-n',
      'tenant-iso-a',
      'patch',
      'resourcequota',
      'tenant-quota',
      '--type=merge',
      '-p',
      '{"spec":{"hard":{"pods":"999"}}}',
    ]);
    assert.notEqual(edit.status, 0);
    assert.match(edit.stderr, /forbidden/i);
    const cross = kubectl([...as, '-n', 'tenant-iso-b', 'get', 'pods']);
    assert.notEqual(cross.status, 0);
    assert.match(cross.stderr, /forbidden/i);
  });

  const compliant = {
    securityContext: {
      runAsNonRoot: true,
      runAsUser: 1000,
      seccompProfile: { type: 'RuntimeDefault' },
    },
    containers: [
      {
        name: 'app',
        image: 'registry.example/app:1',
        securityContext: { allowPrivilegeEscalation: false, capabilities: { drop: ['ALL'] } },
        resources: {
          requests: { cpu: '100m', memory: '64Mi' },
          limits: { cpu: '100m', memory: '64Mi' },
        },
      },
    ],
  };

  function dryRunPod(name: string, spec: Record<string, unknown>) {
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name, namespace: 'tenant-iso-a' },
      spec,
    };
    return kubectl(['apply', '--dry-run=server', '-f', '-'], JSON.stringify(pod));
  }

  test('a compliant pod passes admission', () => {
    const result = dryRunPod('ok', compliant);
    assert.equal(result.status, 0, result.stderr);
  });

  test('privileged, hostPath, hostNetwork, hostPID and root pods are refused by Pod Security', () => {
    const container = compliant.containers[0]!;
    const variants: Record<string, Record<string, unknown>> = {
      privileged: {
        ...compliant,
        // allowPrivilegeEscalation:false would make the API refuse this before Pod Security looks.
        containers: [
          { ...container, securityContext: { privileged: true, capabilities: { drop: ['ALL'] } } },
        ],
      },
      hostpath: { ...compliant, volumes: [{ name: 'root', hostPath: { path: '/' } }] },
      hostnetwork: { ...compliant, hostNetwork: true },
      hostpid: { ...compliant, hostPID: true },
      root: {
        ...compliant,
        securityContext: {
          runAsNonRoot: false,
          runAsUser: 0,
          seccompProfile: { type: 'RuntimeDefault' },
        },
      },
    };
    for (const [name, spec] of Object.entries(variants)) {
      const result = dryRunPod(name, spec);
      assert.notEqual(result.status, 0, `${name} pod was admitted`);
      assert.match(result.stderr, /violates PodSecurity "restricted/, name);
    }
  });

  test('the quota exists and is enforced', async () => {
    await waitFor('the quota controller to fill in usage', async () => {
      const quota = await getObject(client, 'ResourceQuota', 'tenant-quota', 'tenant-iso-a');
      return (
        (quota?.status as { used?: Record<string, string> } | undefined)?.used?.pods !== undefined
      );
    });
    for (const name of ['p1', 'p2']) {
      const pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: 'tenant-iso-a' },
        spec: compliant,
      };
      const created = kubectl(['create', '-f', '-'], JSON.stringify(pod));
      assert.equal(created.status, 0, created.stderr);
    }
    const third = kubectl(
      ['create', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'p3', namespace: 'tenant-iso-a' },
        spec: compliant,
      }),
    );
    assert.notEqual(third.status, 0);
    assert.match(third.stderr, /exceeded quota: tenant-quota/);
  });
});
