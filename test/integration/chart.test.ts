import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { parseAllDocuments, stringify } from 'yaml';
import { registerLocalDatabaseServers } from '../../hack/database-servers.ts';
import { buildAdmissionGuard } from '../../src/admission/policies.ts';
import { tenantFinalizerPolicy } from '../../src/admission/tenant-finalizer.ts';
import { renderCrds } from '../../src/cli/gen-crds.ts';
import { LEASE_NAME } from '../../src/controller/leader.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import { alertRuleGroups } from '../../src/metrics/alerts.ts';
import {
  CLUSTER_RULES,
  EVENTS_NAMESPACE,
  EVENTS_NAMESPACE_RULES,
  OPERATOR_NAMESPACE_RULES,
} from '../../src/rbac/operator-permissions.ts';
import { requestOnDemandJob } from '../support/backup-job.ts';
import {
  adminClient,
  createTenant,
  eraseTenantAndWait,
  getTenant,
  kubectl,
  requireEnv,
  serviceAccountToken,
  waitForPhase,
} from '../support/cluster.ts';
import { OPERATOR_NAMESPACE, OperatorProcess } from '../support/operator.ts';
import { configureVault, removeTenantLeftovers } from '../support/tenant-data.ts';

// The Helm chart, checked by helm itself and by the real API server: `helm
// lint` and `helm template` with default and other values; what they render
// equals what src/ generates (CRDs, RBAC rules, admission guard, alerts);
// wrong values fail with the path named. Then the rendered manifests are
// applied server-side, and the operator, running as the chart's
// ServiceAccount with a token the API server issued for it, provisions a
// tenant with a database and a backup and erases it again: the API server's
// audit log shows it was refused nothing.

const CHART = join(import.meta.dirname, '..', '..', 'charts', 'tenant-operator');
const KUBE_VERSION = '1.36.3';
const RELEASE = 'chart';
const FULLNAME = `${RELEASE}-tenant-operator`;
/** What `helm install` finds in a 1.36 API server's discovery. */
const MUTATING_POLICY_API = 'admissionregistration.k8s.io/v1/MutatingAdmissionPolicy';
const SA_USER = `system:serviceaccount:${OPERATOR_NAMESPACE}:${FULLNAME}`;
const work = mkdtempSync(join(tmpdir(), 'chart-'));
after(() => rmSync(work, { recursive: true, force: true }));

function helm(args: string[]) {
  const result = spawnSync(requireEnv('HELM'), args, { encoding: 'utf8', timeout: 120_000 });
  // helm warns on stderr about the chart's symlinks (crds/, files/): expected.
  const stderr = result.stderr
    .split('\n')
    .filter((line) => !/found symbolic link in path/.test(line))
    .join('\n');
  return { status: result.status ?? -1, stdout: result.stdout, stderr };
}

function valuesFile(values: Record<string, unknown>): string {
  const file = join(work, `values-${Math.random().toString(16).slice(2)}.yaml`);
  writeFileSync(file, stringify(values));
  return file;
}

function render(values: Record<string, unknown> = {}, extra: string[] = []): KubeObject[] {
  const rendered = helm([
    'template',
    RELEASE,
    CHART,
    '--namespace',
    OPERATOR_NAMESPACE,
    '--kube-version',
    KUBE_VERSION,
    '--values',
    valuesFile(values),
    ...extra,
  ]);
  assert.equal(rendered.status, 0, rendered.stderr);
  return parseAllDocuments(rendered.stdout)
    .map((doc) => doc.toJS() as KubeObject | null)
    .filter((object): object is KubeObject => object !== null);
}

interface Container {
  image: string;
  args: string[];
  env: { name: string; value?: string }[];
  securityContext: unknown;
  livenessProbe: { httpGet: { path: string } };
  readinessProbe: { httpGet: { path: string } };
  resources: { requests: Record<string, string>; limits: Record<string, string> };
}
interface PodSpec {
  serviceAccountName: string;
  securityContext: { runAsNonRoot: boolean; seccompProfile: { type: string } };
  containers: [Container];
  volumes: { name: string; projected?: { sources: { serviceAccountToken?: unknown }[] } }[];
}
interface Deployment extends KubeObject {
  spec: { replicas: number; template: { spec: PodSpec } };
}
interface ServiceMonitor extends KubeObject {
  spec: { endpoints: { port: string }[] };
}
type WithSpec<T> = KubeObject & { spec: T };

/** The one object of a kind (and name) that was rendered. */
function only<T extends KubeObject = KubeObject>(
  objects: KubeObject[],
  kind: string,
  name?: string,
): T {
  const found = objects.filter(
    (o) => o.kind === kind && (name === undefined || o.metadata.name === name),
  );
  assert.equal(found.length, 1, `${kind} ${name ?? ''}: ${found.length} rendered`);
  return found[0] as T;
}

function envOf(container: Container): Record<string, string | undefined> {
  return Object.fromEntries(container.env.map((e) => [e.name, e.value]));
}

/** Values other than the defaults, touching every optional part of the chart. */
const NON_DEFAULT = {
  replicaCount: 3,
  image: { repository: 'registry.example.com/platform/tenant-operator', tag: '0.1.0-rc.1' },
  serviceAccount: { name: 'operator', annotations: { 'example.com/owner': 'platform' } },
  operator: {
    concurrency: 16,
    shards: 4,
    clusterCIDRs: ['10.0.0.0/8', 'fd00::/8'],
    purgedTenants: 'delete',
    extraArgs: ['--verify-concurrency=2'],
  },
  vault: {
    address: 'https://vault.vault.svc:8200',
    namespace: 'platform',
    auth: { method: 'approle', approle: { roleId: 'r-1', secretIdSecret: 'vault-approle' } },
    caConfigMap: 'vault-ca',
  },
  metrics: {
    serviceMonitor: { enabled: true, labels: { release: 'prometheus' } },
    prometheusRule: { enabled: true },
    dashboard: { enabled: true },
  },
  admissionGuard: { breakGlassGroups: ['oncall:break-glass'], additionalOperatorUsers: ['ci-bot'] },
  podDisruptionBudget: { enabled: false },
  networkPolicy: { metricsFrom: [{ namespaceSelector: { matchLabels: { team: 'sre' } } }] },
};

describe('helm lint and template', () => {
  test('helm lint --strict passes with the default values and with others', () => {
    for (const extra of [[], ['--values', valuesFile(NON_DEFAULT)]]) {
      const linted = helm(['lint', '--strict', CHART, '--kube-version', KUBE_VERSION, ...extra]);
      assert.equal(linted.status, 0, linted.stdout + linted.stderr);
      assert.match(linted.stdout, /1 chart\(s\) linted, 0 chart\(s\) failed/);
    }
  });

  test('the default Deployment: two non-root, read-only replicas with probes, resources and its own ServiceAccount', () => {
    const objects = render();
    const deployment = only<Deployment>(objects, 'Deployment', FULLNAME);
    assert.equal(deployment.spec.replicas, 2);
    const pod = deployment.spec.template.spec;
    assert.equal(pod.serviceAccountName, FULLNAME);
    assert.equal(pod.securityContext.runAsNonRoot, true);
    assert.equal(pod.securityContext.seccompProfile.type, 'RuntimeDefault');
    const [container] = pod.containers;
    assert.deepEqual(container.securityContext, {
      allowPrivilegeEscalation: false,
      readOnlyRootFilesystem: true,
      privileged: false,
      capabilities: { drop: ['ALL'] },
    });
    assert.equal(container.livenessProbe.httpGet.path, '/healthz');
    assert.equal(container.readinessProbe.httpGet.path, '/readyz');
    assert.ok(container.resources.requests.memory && container.resources.limits.memory);
    assert.equal(container.image, 'ghcr.io/tenancy-io/tenant-operator:0.1.0');
    assert.ok(container.args.includes('--shards=1'), 'one leader unless asked');
    // Backup jobs run the very image the operator runs.
    const env = envOf(container);
    assert.equal(env.BACKUP_IMAGE, container.image);
    assert.equal(env.VAULT_ADDR, undefined);
    only(objects, 'ServiceAccount', FULLNAME);
    only(objects, 'PodDisruptionBudget', FULLNAME);
    only(objects, 'NetworkPolicy', FULLNAME);
    only(objects, 'Service', `${FULLNAME}-metrics`);
    for (const kind of ['ServiceMonitor', 'PrometheusRule', 'ConfigMap'])
      assert.equal(objects.filter((o) => o.kind === kind).length, 0, `${kind} is off by default`);
  });

  test('the RBAC is the rules of src/rbac, bound to the release ServiceAccount, and grants no wildcard', () => {
    const objects = render();
    const subject = { kind: 'ServiceAccount', name: FULLNAME, namespace: OPERATOR_NAMESPACE };
    type Role = KubeObject & { rules: unknown };
    type Binding = KubeObject & { subjects: unknown };
    assert.deepEqual(only<Role>(objects, 'ClusterRole', FULLNAME).rules, CLUSTER_RULES);
    assert.deepEqual(only<Binding>(objects, 'ClusterRoleBinding', FULLNAME).subjects, [subject]);
    const roles = objects.filter((o) => o.kind === 'Role') as Role[];
    const byNamespace: Record<string, unknown> = {};
    for (const role of roles) byNamespace[role.metadata.namespace ?? ''] = role.rules;
    assert.deepEqual(byNamespace, {
      [OPERATOR_NAMESPACE]: OPERATOR_NAMESPACE_RULES,
      [EVENTS_NAMESPACE]: EVENTS_NAMESPACE_RULES,
    });
    for (const binding of objects.filter((o) => o.kind === 'RoleBinding'))
      assert.deepEqual((binding as Binding).subjects, [subject]);
    const every = [...CLUSTER_RULES, ...OPERATOR_NAMESPACE_RULES, ...EVENTS_NAMESPACE_RULES];
    for (const rule of every)
      for (const field of [rule.apiGroups, rule.resources, rule.verbs])
        assert.ok(!field.includes('*'), JSON.stringify(rule));
    // Secrets of a tenant: only the one the operator makes, by name.
    const secretReads = CLUSTER_RULES.filter(
      (r) => r.resources.includes('secrets') && r.verbs.includes('get'),
    );
    assert.ok(
      secretReads.every((r) => r.resourceNames?.length === 1),
      JSON.stringify(secretReads),
    );
  });

  test('the CRDs are crds/ itself, as src/ generates them', () => {
    const crds = render({}, ['--include-crds']).filter(
      (o) => o.kind === 'CustomResourceDefinition',
    );
    const expected = [...renderCrds().values()].map(
      (text) => parseAllDocuments(text)[0]!.toJS() as KubeObject,
    );
    assert.equal(crds.length, expected.length);
    assert.deepEqual(
      crds.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)),
      expected.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name)),
    );
  });

  test('the admission guard is the one install-crds applies, for the release identities', () => {
    const objects = render(NON_DEFAULT);
    const guard = objects.filter((o) => o.kind.startsWith('ValidatingAdmissionPolicy'));
    const expected = buildAdmissionGuard({
      operatorUsers: [`system:serviceaccount:${OPERATOR_NAMESPACE}:operator`, 'ci-bot'],
      breakGlassGroups: ['oncall:break-glass'],
      operatorNamespace: OPERATOR_NAMESPACE,
    });
    // helm orders documents by kind; compare them by kind and name.
    const key = (o: KubeObject) => `${o.kind}/${o.metadata.name}`;
    const byKey = (a: KubeObject, b: KubeObject) => key(a).localeCompare(key(b));
    assert.equal(guard.length, expected.length);
    assert.deepEqual(guard.sort(byKey), expected.sort(byKey));
    assert.equal(
      render({ admissionGuard: { enabled: false } }).filter(
        (o) => o.apiVersion === 'admissionregistration.k8s.io/v1',
      ).length,
      0,
    );
  });

  test("the Tenant finalizer policy is install-crds' own, where the API server has MutatingAdmissionPolicy", () => {
    const mutating = (objects: KubeObject[]) =>
      objects.filter((o) => o.kind.startsWith('MutatingAdmissionPolicy'));
    assert.deepEqual(mutating(render({}, ['--api-versions', MUTATING_POLICY_API])), [
      ...tenantFinalizerPolicy(),
    ]);
    // Kubernetes before 1.36 (helm asks the cluster; template says what it is told).
    assert.deepEqual(mutating(render()), []);
  });

  test('other values: monitoring objects from monitoring/, AppRole and a Vault CA, the named ServiceAccount', () => {
    const objects = render(NON_DEFAULT);
    const rule = only<WithSpec<{ groups: unknown }>>(objects, 'PrometheusRule');
    assert.deepEqual(rule.spec.groups, alertRuleGroups());
    const dashboard = only<KubeObject & { data: Record<string, string> }>(
      objects,
      'ConfigMap',
      `${FULLNAME}-dashboard`,
    );
    assert.equal(dashboard.metadata.labels?.grafana_dashboard, '1');
    const checkedIn: unknown = JSON.parse(
      readFileSync(join(CHART, '..', '..', 'monitoring', 'grafana-dashboard.json'), 'utf8'),
    );
    assert.deepEqual(JSON.parse(dashboard.data['tenant-operator.json'] ?? ''), checkedIn);
    const monitor = only<ServiceMonitor>(objects, 'ServiceMonitor');
    assert.equal(monitor.metadata.labels?.release, 'prometheus');
    assert.equal(monitor.spec.endpoints[0]?.port, 'metrics');

    const deployment = only<Deployment>(objects, 'Deployment');
    assert.equal(deployment.spec.replicas, 3);
    const pod = deployment.spec.template.spec;
    assert.equal(pod.serviceAccountName, 'operator');
    const [container] = pod.containers;
    assert.equal(container.image, 'registry.example.com/platform/tenant-operator:0.1.0-rc.1');
    assert.ok(container.args.includes('--concurrency=16'));
    assert.ok(container.args.includes('--shards=4'));
    assert.ok(container.args.includes('--verify-concurrency=2'));
    const env = envOf(container);
    assert.equal(env.CLUSTER_CIDRS, '10.0.0.0/8,fd00::/8');
    assert.equal(env.PURGED_TENANTS, 'delete');
    assert.equal(env.VAULT_AUTH_METHOD, 'approle');
    assert.equal(env.VAULT_ROLE_ID, 'r-1');
    assert.equal(env.VAULT_NAMESPACE, 'platform');
    assert.equal(env.NODE_EXTRA_CA_CERTS, '/etc/tenant-operator/vault-ca/ca.crt');
    const volumes = pod.volumes.map((v) => v.name).sort();
    assert.deepEqual(volumes, ['tmp', 'vault-approle', 'vault-ca']);
    assert.equal(objects.filter((o) => o.kind === 'PodDisruptionBudget').length, 0);
  });

  test('with Vault and Kubernetes auth, the pod gets a projected token for Vault only', () => {
    const deployment = only<Deployment>(
      render({ vault: { address: 'http://vault:8200' } }),
      'Deployment',
    );
    const pod = deployment.spec.template.spec;
    const token = pod.volumes.find((v) => v.name === 'vault-token');
    assert.deepEqual(token?.projected?.sources[0]?.serviceAccountToken, {
      path: 'vault-token',
      audience: 'vault',
      expirationSeconds: 3600,
    });
    const env = envOf(pod.containers[0]);
    assert.equal(env.VAULT_K8S_TOKEN_FILE, '/var/run/secrets/tokens/vault-token');
    assert.equal(env.VAULT_AUTH_ROLE, 'tenant-operator');
  });

  test('wrong values fail at install with the path of each named', () => {
    const rendered = helm([
      'template',
      RELEASE,
      CHART,
      '--kube-version',
      KUBE_VERSION,
      '--values',
      valuesFile({
        replicaCount: 'two',
        operator: { purgedTenants: 'sometimes', concurency: 4, shards: 257 },
        admissionGuard: { breakGlassGroups: ['on call"] || true || ["'] },
        vault: { auth: { method: 'approle' } },
      }),
    ]);
    assert.notEqual(rendered.status, 0);
    for (const path of [
      '/replicaCount',
      '/operator/purgedTenants',
      "additional properties 'concurency' not allowed",
      '/operator/shards',
      '/admissionGuard/breakGlassGroups/0',
      '/vault/auth/approle',
    ])
      assert.ok(rendered.stderr.includes(path), `${path} not named in:\n${rendered.stderr}`);
  });
});

describe('the rendered chart on the real API server', () => {
  let client: KubeClient;
  let operator: OperatorProcess | undefined;
  let storeDir: string;
  const STORE = 'chart-store';
  const TENANT = 'chart-a';
  const applied: KubeObject[] = [];

  /** Server-side apply, as `helm install --server-side` or a GitOps tool would. */
  function applyServerSide(objects: KubeObject[]) {
    const file = join(work, 'manifests.yaml');
    writeFileSync(file, objects.map((o) => stringify(o)).join('---\n'));
    // The chart takes over what install-crds applied (the guard, the CRDs).
    const result = kubectl([
      'apply',
      '--server-side',
      '--force-conflicts',
      '--field-manager',
      'helm',
      '-f',
      file,
    ]);
    assert.equal(result.status, 0, result.stderr);
  }

  before(async () => {
    configureVault();
    client = await adminClient();
    await registerLocalDatabaseServers(client);
    await removeTenantLeftovers(TENANT);
    storeDir = mkdtempSync(join(tmpdir(), 'chart-store-'));
    await client.apply({
      apiVersion: 'tenancy.io/v1alpha1',
      kind: 'BackupStore',
      metadata: { name: STORE },
      spec: { region: 'eu-west', default: true, filesystem: { path: storeDir } },
    });
  });

  after(async () => {
    // A failed run leaves its tenant: erase it (with any operator) before the roles go.
    if (await getTenant(client, TENANT)) {
      operator ??= await OperatorProcess.start();
      await operator.waitUntilLeader();
      await eraseTenantAndWait(client, TENANT, 120_000);
    }
    await operator?.stop();
    for (const object of applied.reverse()) {
      if (object.kind === 'CustomResourceDefinition' || object.kind === 'Namespace') continue;
      const type = Object.values(RESOURCES).find(
        (r) => r.kind === object.kind && r.apiVersion === object.apiVersion,
      );
      if (type)
        await client.delete(objectPath(type, object.metadata.name, object.metadata.namespace));
      else
        kubectl([
          'delete',
          '--ignore-not-found',
          object.kind,
          object.metadata.name,
          '-n',
          object.metadata.namespace ?? OPERATOR_NAMESPACE,
        ]);
    }
    // The suite's own guard (install-crds), as the next test files expect it.
    const restored = spawnSync(
      process.execPath,
      [
        join(CHART, '..', '..', 'src', 'cli', 'main.ts'),
        'install-crds',
        '--operator-user',
        'tenant-operator',
        '--break-glass-group',
        'tenancy.io:break-glass',
      ],
      { encoding: 'utf8', timeout: 120_000 },
    );
    assert.equal(restored.status, 0, restored.stderr);
    await client.delete(objectPath(RESOURCES.BackupStore, STORE));
    await removeTenantLeftovers(TENANT);
    rmSync(storeDir, { recursive: true, force: true });
    await client.close();
  });

  test('applied server-side, the operator runs as its ServiceAccount, provisions, backs up and erases a tenant, and is refused nothing', async () => {
    const objects = render(
      {
        vault: { address: requireEnv('VAULT_ADDR') },
        // The suite's test identities keep their place in the guard.
        admissionGuard: {
          additionalOperatorUsers: ['tenant-operator'],
          breakGlassGroups: ['tenancy.io:break-glass'],
        },
      },
      ['--include-crds', '--api-versions', MUTATING_POLICY_API],
    );
    applied.push(...objects);
    applyServerSide(objects);

    const deployment = await client.get<KubeObject & { spec: { replicas: number } }>(
      `/apis/apps/v1/namespaces/${OPERATOR_NAMESPACE}/deployments/${FULLNAME}`,
    );
    assert.equal(deployment?.spec.replicas, 2);

    // The pod's identity: a token the API server issues for the ServiceAccount.
    const kubeconfig = join(work, 'operator.kubeconfig');
    const admin = readFileSync(requireEnv('KUBECONFIG'), 'utf8');
    const server = /server: (\S+)/.exec(admin)?.[1];
    const ca = /certificate-authority: (\S+)/.exec(admin)?.[1];
    assert.ok(server && ca, 'the admin kubeconfig names a server and a CA file');
    writeFileSync(
      kubeconfig,
      stringify({
        apiVersion: 'v1',
        kind: 'Config',
        clusters: [{ name: 'local', cluster: { server, 'certificate-authority': ca } }],
        users: [{ name: 'sa', user: { token: serviceAccountToken(FULLNAME, OPERATOR_NAMESPACE) } }],
        contexts: [{ name: 'local', context: { cluster: 'local', user: 'sa' } }],
        'current-context': 'local',
      }),
    );
    const auditStart = Date.now();
    operator = await OperatorProcess.start({ env: { KUBECONFIG: kubeconfig } });
    await operator.waitUntilLeader();

    await createTenant(client, TENANT, { region: 'eu-west', database: { enabled: true } });
    const ready = await waitForPhase(client, TENANT, 'Ready', 90_000);
    assert.ok(ready.status?.database, JSON.stringify(ready.status));

    // The chart's guard knows the chart's ServiceAccount as the operator: a
    // change to what the operator made passes admission for it (server-side
    // dry run, nothing stored) and is refused for the tenant's owner.
    const namespace = `tenant-${TENANT}`;
    const policy = kubectl(['get', 'networkpolicy', 'default-deny', '-n', namespace, '-o', 'json']);
    assert.equal(policy.status, 0, policy.stderr);
    const changed = JSON.parse(policy.stdout) as KubeObject;
    changed.metadata.labels = { ...changed.metadata.labels, 'example.com/edited': 'yes' };
    const replaceAs = (...identity: string[]) =>
      kubectl(['replace', '--dry-run=server', '-f', '-', ...identity], JSON.stringify(changed));
    const asOperator = replaceAs('--as', SA_USER);
    assert.equal(asOperator.status, 0, asOperator.stderr);
    const asOwner = replaceAs('--as', 'alice', '--as-group', `${TENANT}-admins`);
    assert.notEqual(asOwner.status, 0, asOwner.stdout);
    assert.match(asOwner.stderr, /tenancy\.io-managed-objects.*managed by tenant-operator/);
    // The backup job's CronJob, ServiceAccount and RBAC, and an on-demand Job.
    const job = await requestOnDemandJob(client, TENANT, `${TENANT}-now`);
    assert.equal(job.metadata.namespace, OPERATOR_NAMESPACE);
    await eraseTenantAndWait(client, TENANT, 120_000);

    // Judged by the API server: every request of the ServiceAccount allowed.
    const audit = readFileSync(join(requireEnv('TEST_CLUSTER_DIR'), 'logs', 'audit.log'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map(
        (line) =>
          JSON.parse(line) as {
            user: { username: string };
            verb: string;
            requestURI: string;
            responseStatus?: { code: number };
            stageTimestamp: string;
          },
      )
      .filter(
        (e) => e.user.username === SA_USER && Date.parse(e.stageTimestamp) >= auditStart - 1000,
      );
    assert.ok(audit.length > 50, `only ${audit.length} requests of ${SA_USER} in the audit log`);
    const refused = audit.filter((e) => e.responseStatus?.code === 403);
    assert.deepEqual(
      refused.map((e) => `${e.verb} ${e.requestURI}`),
      [],
      'the chart ServiceAccount was refused',
    );
    assert.ok(
      operator.output.every((line) => !/forbidden/i.test(line)),
      operator.output.filter((line) => /forbidden/i.test(line)).join('\n'),
    );
  });

  test("the ServiceAccount's Lease requests are on the API server's leader-election priority level, its other requests are not", () => {
    // APF names the flow schema and priority level of each request in the
    // response headers (kubectl -v=8 prints them), whatever the answer.
    const levelOf = (args: string[]): string => {
      const asked = kubectl([...args, '-n', OPERATOR_NAMESPACE, '--as', SA_USER, '-v=8']);
      const uid = /X-Kubernetes-Pf-Prioritylevel-Uid: (\S+)/i.exec(asked.stderr)?.[1];
      assert.ok(
        uid,
        `no priority level in the answer to ${args.join(' ')}: ${asked.stderr.slice(-2000)}`,
      );
      return uid;
    };
    const leaderElection = kubectl([
      'get',
      'prioritylevelconfiguration',
      'leader-election',
      '-o',
      'jsonpath={.metadata.uid}',
    ]).stdout.trim();
    assert.ok(leaderElection, 'the API server has a leader-election priority level');
    assert.equal(levelOf(['get', 'lease', LEASE_NAME]), leaderElection);
    assert.notEqual(levelOf(['get', 'configmaps']), leaderElection);
  });

  test("the chart's ServiceMonitor and PrometheusRule are what the Prometheus Operator's CRDs accept", () => {
    // Its CRDs from its Go module (hack/fetch-monitoring-crds.sh), installed
    // for this test only; the monitoring objects then in a server-side dry run.
    const crdsDir = requireEnv('MONITORING_CRDS_DIR');
    const crds = ['servicemonitors', 'prometheusrules'].map((plural) =>
      join(crdsDir, `monitoring.coreos.com_${plural}.yaml`),
    );
    try {
      for (const file of crds) {
        const installed = kubectl(['apply', '--server-side', '-f', file]);
        assert.equal(installed.status, 0, installed.stderr);
      }
      const established = kubectl([
        'wait',
        '--for=condition=Established',
        '--timeout=60s',
        'crd/servicemonitors.monitoring.coreos.com',
        'crd/prometheusrules.monitoring.coreos.com',
      ]);
      assert.equal(established.status, 0, established.stderr);
      const monitoring = render(NON_DEFAULT).filter((o) =>
        o.apiVersion.startsWith('monitoring.coreos.com/'),
      );
      assert.deepEqual(monitoring.map((o) => o.kind).sort(), ['PrometheusRule', 'ServiceMonitor']);
      const file = join(work, 'monitoring.yaml');
      writeFileSync(file, monitoring.map((o) => stringify(o)).join('---\n'));
      const applied = kubectl([
        'apply',
        '--server-side',
        '--dry-run=server',
        '--field-manager',
        'helm',
        '-f',
        file,
      ]);
      assert.equal(applied.status, 0, applied.stderr);
      assert.equal(applied.stdout.match(/serverside-applied \(server dry run\)/g)?.length, 2);
      // The same check refuses a rule the CRD's schema does not allow.
      const broken = structuredClone(monitoring.find((o) => o.kind === 'PrometheusRule'));
      assert.ok(broken);
      (broken as unknown as { spec: { groups: { rules: object[] }[] } }).spec.groups[0]!.rules[0] =
        {
          alert: 'NoExpression',
        };
      writeFileSync(file, stringify(broken));
      const refused = kubectl(['apply', '--server-side', '--dry-run=server', '-f', file]);
      assert.notEqual(refused.status, 0, refused.stdout);
      assert.match(refused.stderr, /expr/);
    } finally {
      for (const file of crds) kubectl(['delete', '--ignore-not-found', '-f', file]);
    }
  });

  test("the chart's ServiceAccount may not do what the operator never does", () => {
    const cannot: [string, string, string?][] = [
      ['create', 'pods', 'default'],
      ['create', 'pods/exec', 'default'],
      ['get', 'secrets', 'kube-system'],
      ['list', 'secrets', 'default'],
      ['create', 'serviceaccounts/token', 'default'],
      ['delete', 'customresourcedefinitions'],
      ['update', 'validatingadmissionpolicies'],
      ['impersonate', 'users'],
      ['escalate', 'clusterroles'],
      ['bind', 'clusterroles'],
      ['create', 'deployments.apps', OPERATOR_NAMESPACE],
    ];
    for (const [verb, resource, namespace] of cannot) {
      const asked = kubectl([
        'auth',
        'can-i',
        verb,
        resource,
        '--as',
        SA_USER,
        ...(namespace ? ['-n', namespace] : []),
      ]);
      assert.equal(
        asked.stdout.trim(),
        'no',
        `${verb} ${resource} ${namespace ?? ''}: ${asked.stdout}${asked.stderr}`,
      );
    }
    // And what it must: bind the tenant-admin role, escalate only the shared roles.
    const can = kubectl([
      'auth',
      'can-i',
      'bind',
      'clusterroles/tenancy.io:tenant-admin',
      '--as',
      SA_USER,
    ]);
    assert.equal(can.stdout.trim(), 'yes', can.stderr);
  });
});
