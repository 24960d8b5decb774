import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { stringify } from 'yaml';
import { KubeClient } from '../../src/k8s/client.ts';
import { kubectl, requireEnv, serviceAccountToken } from '../support/cluster.ts';
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';

// The API server's own fairness (APF) pushing back, for real: a FlowSchema
// puts one ServiceAccount's requests on a priority level with a single seat
// and no queue, so a burst of its requests is answered 429. The client
// retries those after the server's Retry-After and every request succeeds;
// under a client-side limit of one request at a time, none is refused at all.

const NAMESPACE = 'throttling-test';
const ACCOUNT = 'throttled';
const work = mkdtempSync(join(tmpdir(), 'throttling-'));
const manifests = join(work, 'apf.yaml');
const BURST = 60;

before(() => {
  const objects = [
    { apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } },
    { apiVersion: 'v1', kind: 'ServiceAccount', metadata: { name: ACCOUNT, namespace: NAMESPACE } },
    {
      apiVersion: 'rbac.authorization.k8s.io/v1',
      kind: 'RoleBinding',
      metadata: { name: ACCOUNT, namespace: NAMESPACE },
      roleRef: { apiGroup: 'rbac.authorization.k8s.io', kind: 'ClusterRole', name: 'view' },
      subjects: [{ kind: 'ServiceAccount', name: ACCOUNT, namespace: NAMESPACE }],
    },
    {
      apiVersion: 'flowcontrol.apiserver.k8s.io/v1',
      kind: 'PriorityLevelConfiguration',
      metadata: { name: 'tenancy-test-one-seat' },
      spec: {
        type: 'Limited',
        limited: {
          nominalConcurrencyShares: 1,
          lendablePercent: 0,
          limitResponse: { type: 'Reject' },
        },
      },
    },
    {
      apiVersion: 'flowcontrol.apiserver.k8s.io/v1',
      kind: 'FlowSchema',
      metadata: { name: 'tenancy-test-throttled' },
      spec: {
        priorityLevelConfiguration: { name: 'tenancy-test-one-seat' },
        matchingPrecedence: 100,
        distinguisherMethod: { type: 'ByUser' },
        rules: [
          {
            subjects: [
              { kind: 'ServiceAccount', serviceAccount: { name: ACCOUNT, namespace: NAMESPACE } },
            ],
            resourceRules: [
              {
                verbs: ['*'],
                apiGroups: ['*'],
                resources: ['*'],
                namespaces: ['*'],
                clusterScope: true,
              },
            ],
          },
        ],
      },
    },
  ];
  writeFileSync(manifests, objects.map((o) => stringify(o)).join('---\n'));
  const applied = kubectl(['apply', '-f', manifests]);
  assert.equal(applied.status, 0, applied.stderr);
});

after(() => {
  kubectl(['delete', '--ignore-not-found', '--wait=false', '-f', manifests]);
  rmSync(work, { recursive: true, force: true });
});

async function throttledClient(rateLimit?: { qps: number; concurrency: number }) {
  const token = serviceAccountToken(ACCOUNT, NAMESPACE);
  const server = kubectl([
    'config',
    'view',
    '--minify',
    '-o',
    'jsonpath={.clusters[0].cluster.server}',
  ]);
  const client = await KubeClient.create(
    {
      server: server.stdout.trim(),
      ca: readFileSync(join(requireEnv('TEST_CLUSTER_DIR'), 'certs', 'ca.crt'), 'utf8'),
      rejectUnauthorized: true,
      headers: () => Promise.resolve({ authorization: `Bearer ${token}` }),
      source: 'test',
    },
    rateLimit ? { rateLimit } : {},
  );
  const statuses: number[] = [];
  client.onRequest((_method, _path, status) => statuses.push(status));
  return { client, statuses };
}

function burst(client: KubeClient): Promise<unknown[]> {
  return Promise.all(
    Array.from({ length: BURST }, () =>
      client.request('GET', `/api/v1/namespaces/${NAMESPACE}/configmaps`),
    ),
  );
}

test('a burst beyond its share is answered 429 by the API server, and every request still succeeds', async () => {
  // The FlowSchema takes effect within moments of being created.
  let seen429 = false;
  for (let round = 0; round < 20 && !seen429; round++) {
    const { client, statuses } = await throttledClient();
    const answers = await burst(client);
    assert.equal(answers.length, BURST);
    seen429 = statuses.includes(429);
    if (seen429) {
      const succeeded = statuses.filter((s) => s === 200).length;
      assert.equal(succeeded, BURST, `each request answered 200 in the end: ${statuses.join(',')}`);
    }
    await client.close();
    if (!seen429) await new Promise((r) => setTimeout(r, 500));
  }
  assert.ok(seen429, 'the API server never refused the burst: the FlowSchema did not apply');
});

test('under a client-side limit of one request at a time, the same burst is never refused', async () => {
  const { client, statuses } = await throttledClient({ qps: 1000, concurrency: 1 });
  let most = 0;
  const watching = setInterval(() => (most = Math.max(most, client.queued.running)), 1);
  await burst(client);
  clearInterval(watching);
  await client.close();
  assert.equal(statuses.length, BURST, statuses.join(','));
  assert.ok(
    statuses.every((s) => s === 200),
    statuses.join(','),
  );
  assert.equal(most, 1);
});
