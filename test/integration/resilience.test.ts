import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import type { KubeClient } from '../../src/k8s/client.ts';
import {
  adminClient,
  createTenant,
  deleteTenantAndWait,
  getObject,
  requireEnv,
  waitForPhase,
} from '../support/cluster.ts';
import { OperatorProcess } from '../support/operator.ts';
import { waitFor } from '../support/wait.ts';

// Crashes, replicas and a restarting API server: the operator resumes and
// converges, and only the leader ever writes.

let client: KubeClient;
const created: string[] = [];

before(async () => {
  client = await adminClient();
});

after(async () => {
  const cleaner = await OperatorProcess.start();
  await cleaner.waitUntilLeader();
  for (const name of created) await deleteTenantAndWait(client, name);
  await cleaner.stop();
  await client.close();
});

async function newTenant(name: string): Promise<void> {
  created.push(name);
  await createTenant(client, name);
}

async function assertFullyProvisioned(name: string): Promise<void> {
  const tenant = await waitForPhase(client, name, 'Ready');
  assert.equal(tenant.metadata.finalizers?.filter((f) => f === 'tenancy.io/finalizer').length, 1);
  const ns = `tenant-${name}`;
  for (const policy of ['default-deny', 'allow-dns', 'allow-same-namespace']) {
    assert.ok(await getObject(client, 'NetworkPolicy', policy, ns), `${policy} in ${ns}`);
  }
  assert.ok(await getObject(client, 'RoleBinding', 'tenant-admins', ns));
  assert.ok(await getObject(client, 'ResourceQuota', 'tenant-quota', ns));
  assert.ok(await getObject(client, 'LimitRange', 'tenant-limits', ns));
}

describe('crash and restart', () => {
  test('an operator killed mid-reconcile is replaced and every tenant converges', async () => {
    const first = await OperatorProcess.start();
    await first.waitUntilLeader();
    const names = ['crash-1', 'crash-2', 'crash-3', 'crash-4', 'crash-5'];
    await Promise.all(names.map((n) => newTenant(n)));
    // Kill as soon as the first writes land, while the rest are in flight.
    await waitFor('the first writes', async () => (await first.writes()) > 3, {
      intervalMs: 20,
    });
    await first.kill('SIGKILL');
    const second = await OperatorProcess.start();
    await second.waitUntilLeader(20_000);
    for (const name of names) await assertFullyProvisioned(name);
    await second.stop();
  });
});

describe('two replicas', () => {
  test('only the leader writes; the standby takes over when the leader dies', async () => {
    const a = await OperatorProcess.start({ identity: 'replica-a' });
    await a.waitUntilLeader();
    const b = await OperatorProcess.start({ identity: 'replica-b' });
    await b.waitUntilReady();
    await newTenant('replicas-1');
    await waitForPhase(client, 'replicas-1', 'Ready');
    assert.equal(await b.metric('tenant_operator_leader'), 0);
    assert.equal(await b.writes(), 0, 'the standby wrote to the API');
    assert.ok((await a.writes()) > 0);

    await a.kill('SIGKILL');
    await b.waitUntilLeader(20_000);
    await newTenant('replicas-2');
    await assertFullyProvisioned('replicas-2');
    await b.stop();
  });

  test('a replica stopped gracefully hands the lease over at once', async () => {
    const a = await OperatorProcess.start({ identity: 'graceful-a', leaseDurationSeconds: 30 });
    await a.waitUntilLeader();
    const b = await OperatorProcess.start({ identity: 'graceful-b', leaseDurationSeconds: 30 });
    await b.waitUntilReady();
    const stoppedAt = Date.now();
    await a.stop();
    await b.waitUntilLeader(15_000);
    assert.ok(
      Date.now() - stoppedAt < 15_000,
      'took over before the 30 s lease would have expired',
    );
    await b.stop();
  });
});

describe('API server restart', () => {
  test('watches reconnect and the operator keeps reconciling', async () => {
    // A lease that outlives the restart: with the production 15 s lease the
    // leader rides out a short API outage instead of stepping down.
    const operator = await OperatorProcess.start({ leaseDurationSeconds: 15 });
    await operator.waitUntilLeader();
    await operator.waitUntilReady();
    const dir = requireEnv('TEST_CLUSTER_DIR');
    const restart = spawnSync(
      'bash',
      [join(import.meta.dirname, '../../hack/cluster.sh'), 'restart-apiserver', dir],
      {
        encoding: 'utf8',
        timeout: 120_000,
      },
    );
    assert.equal(restart.status, 0, restart.stderr);
    // The watches broke; readiness must come back only once they are live again.
    await sleep(500);
    await operator.waitUntilReady(60_000);
    assert.ok(operator.alive, 'the operator exited during the API server restart');
    assert.ok(
      operator.output.some((line) => line.includes('watch failed; retrying')),
      'no watch failure was seen',
    );
    await newTenant('after-restart');
    await assertFullyProvisioned('after-restart');
    // Drift repair still works through the re-established watches.
    await client.delete(
      '/apis/networking.k8s.io/v1/namespaces/tenant-after-restart/networkpolicies/default-deny',
    );
    await waitFor(
      'default-deny back',
      () => getObject(client, 'NetworkPolicy', 'default-deny', 'tenant-after-restart'),
      {
        timeoutMs: 10_000,
      },
    );
    await operator.stop();
  });
});
