import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import type { KubeClient } from '../../src/k8s/client.ts';
import { objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import {
  adminClient,
  createTenant,
  eraseTenantAndWait,
  getTenant,
  requireEnv,
  waitForPhase,
} from '../support/cluster.ts';
import { OperatorProcess } from '../support/operator.ts';
import { waitFor } from '../support/wait.ts';

// A tenant's own egress rules never open the cloud metadata service or the
// cluster: the operator runs with the cluster's ranges (as the chart passes
// them), and the NetworkPolicies it writes are read back from the real API
// server, which also proves it accepted every `except`.

const POD_RANGE = '10.244.0.0/16';
const SERVICE_RANGE = '10.0.0.0/24'; // hack/cluster.sh's --service-cluster-ip-range
const NODE_RANGE = '192.168.49.0/24';
const POD_RANGE_V6 = 'fd00:10:244::/56';

let client: KubeClient;
let operator: OperatorProcess;
const tenants: string[] = [];

interface IpBlockPeer {
  ipBlock: { cidr: string; except?: string[] };
}
type Policy = KubeObject & {
  spec: { egress?: { to?: IpBlockPeer[] }[] };
  metadata: { managedFields?: { manager?: string }[] };
};

async function egressPolicy(tenant: string): Promise<Policy | undefined> {
  return client.get<Policy>(
    objectPath(RESOURCES.NetworkPolicy, 'allow-egress-cidrs', `tenant-${tenant}`),
  );
}

async function newTenant(name: string, allowEgressCIDRs: string[]): Promise<void> {
  tenants.push(name);
  await createTenant(client, name, { network: { allowEgressCIDRs } });
}

function readyCondition(tenant: Awaited<ReturnType<typeof getTenant>>) {
  return tenant?.status?.conditions?.find((c) => c.type === 'Ready');
}

before(async () => {
  client = await adminClient();
  operator = await OperatorProcess.start({
    resyncSeconds: 3,
    // Both ways the chart may pass them: repeated flags and the environment.
    extraArgs: ['--cluster-cidr', POD_RANGE, '--cluster-cidr', SERVICE_RANGE],
    env: { CLUSTER_CIDRS: `${NODE_RANGE}, ${POD_RANGE_V6}` },
  });
  await operator.waitUntilLeader();
});

after(async () => {
  for (const name of tenants) await eraseTenantAndWait(client, name).catch(() => undefined);
  await operator.stop();
  await client.close();
});

describe('allowEgressCIDRs', () => {
  test('0.0.0.0/0, ::/0 and a range holding the pod range open the internet only', async () => {
    await newTenant('net-open', ['0.0.0.0/0', '::/0', '10.0.0.0/8']);
    await waitForPhase(client, 'net-open', 'Ready');
    const policy = await egressPolicy('net-open');
    assert.ok(policy, 'the egress policy exists: the API server accepted it');
    assert.deepEqual(policy.spec.egress, [
      {
        to: [
          {
            ipBlock: {
              cidr: '0.0.0.0/0',
              except: [SERVICE_RANGE, POD_RANGE, '169.254.0.0/16', NODE_RANGE],
            },
          },
          { ipBlock: { cidr: '::/0', except: [POD_RANGE_V6, 'fd00:ec2::254/128', 'fe80::/10'] } },
          { ipBlock: { cidr: '10.0.0.0/8', except: [SERVICE_RANGE, POD_RANGE] } },
        ],
      },
    ]);
    assert.ok(
      policy.metadata.managedFields?.some((f) => f.manager === 'tenant-operator'),
      'written by the operator',
    );
  });

  test('a range inside the cluster or the metadata range opens nothing and is reported', async () => {
    await newTenant('net-inside', ['203.0.113.0/24', '10.244.5.0/24', '169.254.169.254/32']);
    const tenant = await waitFor('the refusal in status', async () => {
      const t = await getTenant(client, 'net-inside');
      return readyCondition(t)?.reason === 'InvalidSpec' ? t : undefined;
    });
    assert.equal(tenant.status?.phase, 'Failed');
    assert.equal(
      readyCondition(tenant)?.message,
      'spec.network.allowEgressCIDRs[1]: 10.244.5.0/24 lies inside the cluster range 10.244.0.0/16; tenants cannot open egress into the cluster; ' +
        'spec.network.allowEgressCIDRs[2]: 169.254.169.254/32 lies inside the link-local or metadata range 169.254.0.0/16; tenants cannot open egress to the metadata service or the node',
    );
    // The rest is applied: default deny stays, the good range is open.
    const policy = await waitFor('the egress policy', () => egressPolicy('net-inside'));
    assert.deepEqual(policy.spec.egress, [{ to: [{ ipBlock: { cidr: '203.0.113.0/24' } }] }]);
    assert.ok(
      await client.get(objectPath(RESOURCES.NetworkPolicy, 'default-deny', 'tenant-net-inside')),
    );
    await waitFor('a Warning event naming the field', async () => {
      const events = await client.request<{
        items: { reason: string; type: string; message: string }[];
      }>('GET', '/api/v1/namespaces/default/events', {
        query: { fieldSelector: 'involvedObject.kind=Tenant,involvedObject.name=net-inside' },
      });
      return events.items.some(
        (e) =>
          e.type === 'Warning' &&
          e.reason === 'InvalidSpec' &&
          e.message.includes('spec.network.allowEgressCIDRs[1]'),
      );
    });
  });

  test('a refused spec costs no writes on resync; fixing it makes the tenant Ready', async () => {
    await operator.waitUntilIdle();
    const before = await operator.writes();
    await sleep(7_000); // two resyncs
    await operator.waitUntilIdle();
    assert.equal(await operator.writes(), before, 'steady state writes nothing');

    await client.mergePatch(objectPath(RESOURCES.Tenant, 'net-inside'), {
      spec: { network: { allowEgressCIDRs: ['203.0.113.0/24'] } },
    });
    const tenant = await waitForPhase(client, 'net-inside', 'Ready');
    assert.equal(readyCondition(tenant)?.status, 'True');
  });
});

describe('the cluster ranges given to the operator', () => {
  test('a malformed range stops the operator instead of opening the cluster', () => {
    const main = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
    const result = spawnSync(
      process.execPath,
      [main, 'operator', '--metrics-port', '0', '--cluster-cidr', '10.244.0.1/16'],
      {
        encoding: 'utf8',
        timeout: 30_000,
        env: { ...process.env, KUBECONFIG: requireEnv('OPERATOR_KUBECONFIG') },
      },
    );
    // Bad input, like every other flag: status 2 before anything starts.
    assert.equal(result.status, 2, result.stderr);
    assert.match(result.stderr, /cluster CIDR 10\.244\.0\.1\/16: write it as 10\.244\.0\.0\/16/);
  });
});
