import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import { isDeepStrictEqual } from 'node:util';
import type { KubeClient } from '../../src/k8s/client.ts';
import {
  accessAllowed,
  adminClient,
  createTenant,
  eraseTenantAndWait,
  getObject,
  kubectl,
  waitForPhase,
  type AccessReview,
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
    // 2048Mi: the API server stores it as 2Gi, and so does the operator.
    quota: { cpu: '2', memory: '2048Mi', pods: 2, storage: '10Gi' },
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
    quota: { nodePorts: 1, loadBalancers: 1, configMaps: 3 },
  });
  await waitForPhase(client, 'iso-a', 'Ready');
  await waitForPhase(client, 'iso-b', 'Ready');
});

after(async () => {
  await eraseTenantAndWait(client, 'iso-a');
  await eraseTenantAndWait(client, 'iso-b');
  await operator.stop();
  await client.close();
});

type Review = Omit<AccessReview, 'user' | 'groups'> & { user?: string; groups?: string[] };

function allowed(review: Review): Promise<boolean> {
  return accessAllowed(client, {
    ...review,
    user: review.user ?? 'alice',
    groups: review.groups ?? ['system:authenticated'],
  });
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

  test('owners cannot weaken isolation: quota and limits are read-only, Endpoints too', async () => {
    const ns = 'tenant-iso-a';
    for (const verb of ['update', 'patch', 'delete', 'create']) {
      for (const [resource, group] of [
        ['resourcequotas', ''],
        ['limitranges', ''],
        // Hand-written endpoints would point a Service anywhere (CVE-2021-25740).
        ['endpoints', ''],
        ['endpointslices', 'discovery.k8s.io'],
      ] as const) {
        assert.equal(
          await allowed({ ...ownerOfA, verb, resource, group, namespace: ns }),
          false,
          `${verb} ${resource}`,
        );
      }
    }
    for (const verb of ['bind', 'escalate']) {
      assert.equal(
        await allowed({
          ...ownerOfA,
          verb,
          resource: 'roles',
          group: 'rbac.authorization.k8s.io',
          namespace: ns,
        }),
        false,
        verb,
      );
    }
  });

  test('owners help themselves: Roles, RoleBindings and NetworkPolicies (bounded by RBAC and the guard)', async () => {
    for (const [resource, group] of [
      ['roles', 'rbac.authorization.k8s.io'],
      ['rolebindings', 'rbac.authorization.k8s.io'],
      ['networkpolicies', 'networking.k8s.io'],
    ] as const) {
      assert.equal(
        await allowed({ ...ownerOfA, verb: 'create', resource, group, namespace: 'tenant-iso-a' }),
        true,
        resource,
      );
      assert.equal(
        await allowed({ ...ownerOfA, verb: 'create', resource, group, namespace: 'tenant-iso-b' }),
        false,
        `${resource} in another tenant`,
      );
    }
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
    // RBAC lets owners manage NetworkPolicies; the admission guard keeps ours.
    const del = kubectl([...as, '-n', 'tenant-iso-a', 'delete', 'networkpolicy', 'default-deny']);
    assert.notEqual(del.status, 0);
    assert.match(del.stderr, /forbidden/i);
    assert.match(del.stderr, /is managed by tenant-operator; change the Tenant instead/);
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

describe('quota and limits', () => {
  const ownerOfAArgs = ['--as', 'alice', '--as-group', 'iso-a-admins'];
  const ownerOfBArgs = ['--as', 'bob', '--as-group', 'iso-b-admins'];

  function createAs(as: string[], object: Record<string, unknown>) {
    return kubectl([...as, 'create', '-f', '-'], JSON.stringify(object));
  }

  function service(namespace: string, name: string, spec: Record<string, unknown>) {
    return {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace },
      spec: { selector: { app: name }, ports: [{ port: 80 }], ...spec },
    };
  }

  /** Admission refuses everything a quota covers until its controller has counted usage. */
  async function quotaCounted(namespace: string) {
    return waitFor(`the quota of ${namespace} to be counted`, async () => {
      const quota = await getObject(client, 'ResourceQuota', 'tenant-quota', namespace);
      const spec = quota?.spec as { hard: Record<string, string> } | undefined;
      const status = quota?.status as
        { hard?: Record<string, string>; used?: Record<string, string> } | undefined;
      return spec && status?.used && isDeepStrictEqual(status.hard, spec.hard) ? quota : undefined;
    });
  }

  test('the quota covers compute, storage, object counts, node ports and load balancers', async () => {
    const quota = await getObject(client, 'ResourceQuota', 'tenant-quota', 'tenant-iso-a');
    assert.deepEqual((quota?.spec as { hard: Record<string, string> }).hard, {
      'requests.cpu': '2',
      'limits.cpu': '2',
      'requests.memory': '2Gi',
      'limits.memory': '2Gi',
      'requests.storage': '10Gi',
      'requests.ephemeral-storage': '20Gi',
      'limits.ephemeral-storage': '20Gi',
      pods: '2',
      configmaps: '100',
      secrets: '100',
      services: '20',
      persistentvolumeclaims: '20',
      'count/jobs.batch': '50',
      'services.nodeports': '0',
      'services.loadbalancers': '0',
    });
  });

  test('NodePort and LoadBalancer Services are refused unless the spec grants them', async () => {
    await quotaCounted('tenant-iso-a');
    await quotaCounted('tenant-iso-b');
    const nodePortA = createAs(ownerOfAArgs, service('tenant-iso-a', 'np', { type: 'NodePort' }));
    assert.notEqual(nodePortA.status, 0, 'a NodePort Service was created without a grant');
    assert.match(nodePortA.stderr, /exceeded quota: tenant-quota.*services\.nodeports/);
    const lbA = createAs(
      ownerOfAArgs,
      service('tenant-iso-a', 'lb', { type: 'LoadBalancer', allocateLoadBalancerNodePorts: false }),
    );
    assert.notEqual(lbA.status, 0, 'a LoadBalancer Service was created without a grant');
    assert.match(lbA.stderr, /exceeded quota: tenant-quota.*services\.loadbalancers/);

    // iso-b is granted one of each.
    const np1 = createAs(ownerOfBArgs, service('tenant-iso-b', 'np1', { type: 'NodePort' }));
    assert.equal(np1.status, 0, np1.stderr);
    const np2 = createAs(ownerOfBArgs, service('tenant-iso-b', 'np2', { type: 'NodePort' }));
    assert.notEqual(np2.status, 0, 'a second NodePort Service was created');
    assert.match(np2.stderr, /exceeded quota: tenant-quota.*services\.nodeports/);
    const lb1 = createAs(
      ownerOfBArgs,
      service('tenant-iso-b', 'lb1', {
        type: 'LoadBalancer',
        allocateLoadBalancerNodePorts: false,
      }),
    );
    assert.equal(lb1.status, 0, lb1.stderr);
    const lb2 = createAs(
      ownerOfBArgs,
      service('tenant-iso-b', 'lb2', {
        type: 'LoadBalancer',
        allocateLoadBalancerNodePorts: false,
      }),
    );
    assert.notEqual(lb2.status, 0, 'a second LoadBalancer Service was created');
    assert.match(lb2.stderr, /exceeded quota: tenant-quota.*services\.loadbalancers/);
  });

  test('object counts are enforced', async () => {
    const quota = await quotaCounted('tenant-iso-b');
    // kube-root-ca.crt, published into every namespace, counts too.
    const used = Number((quota.status as { used: Record<string, string> }).used.configmaps);
    assert.ok(used >= 0 && used < 3, `configmaps used: ${used}`);
    for (let i = used; i < 3; i++) {
      const created = kubectl([
        ...ownerOfBArgs,
        '-n',
        'tenant-iso-b',
        'create',
        'configmap',
        `c${i}`,
      ]);
      assert.equal(created.status, 0, created.stderr);
    }
    const over = kubectl([
      ...ownerOfBArgs,
      '-n',
      'tenant-iso-b',
      'create',
      'configmap',
      'one-too-many',
    ]);
    assert.notEqual(over.status, 0, 'a ConfigMap over the quota was created');
    assert.match(over.stderr, /exceeded quota: tenant-quota.*configmaps/);
  });

  test('LimitRange defaults, ephemeral storage included, fill in a pod that states no resources', async () => {
    await quotaCounted('tenant-iso-b');
    const pod = {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'no-resources', namespace: 'tenant-iso-b' },
      spec: {
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
          },
        ],
      },
    };
    // Without the defaults the quota (requests and limits of cpu, memory and
    // ephemeral-storage) would refuse this pod.
    const result = kubectl(
      [...ownerOfBArgs, 'create', '--dry-run=server', '-o', 'json', '-f', '-'],
      JSON.stringify(pod),
    );
    assert.equal(result.status, 0, result.stderr);
    const admitted = JSON.parse(result.stdout) as {
      spec: { containers: { resources: Record<string, Record<string, string>> }[] };
    };
    assert.deepEqual(admitted.spec.containers[0]?.resources, {
      requests: { cpu: '100m', memory: '128Mi', 'ephemeral-storage': '128Mi' },
      limits: { cpu: '500m', memory: '512Mi', 'ephemeral-storage': '1Gi' },
    });
  });
});
