import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import { registerLocalDatabaseServers } from '../../hack/database-servers.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import type { TenantObject } from '../../src/tenant/model.ts';
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

// A dependency outage, for real: the Vault process is stopped (SIGSTOP: it
// keeps its dev-mode data, and every request to it hangs until the client's
// 10 s timeout, the nastiest way for a server to fail). A provisioned tenant
// must say that Vault is the problem, stay in phase Ready (its isolation is
// still in force), warn once, and recover on its own with a `Recovered`
// event, never a second `Provisioned`.

const NAME = 'dep-outage';

let client: KubeClient;
let operator: OperatorProcess;
let vaultPid: number;
let vaultStopped = false;

function vault(signal: 'SIGSTOP' | 'SIGCONT'): void {
  process.kill(vaultPid, signal);
  vaultStopped = signal === 'SIGSTOP';
}

before(async () => {
  client = await adminClient();
  vaultPid = Number(
    readFileSync(join(requireEnv('TEST_CLUSTER_DIR'), 'pids', 'vault'), 'utf8').trim(),
  );
  assert.ok(vaultPid > 1, 'no Vault pid');
  const servers = await registerLocalDatabaseServers(client);
  operator = await OperatorProcess.start({ resyncSeconds: 300 });
  await operator.waitUntilLeader();
  await waitFor('the DatabaseServers to be reachable', async () => {
    for (const server of servers) {
      const live = await client.get<KubeObject & { status?: { reachable?: boolean } }>(
        objectPath(RESOURCES.DatabaseServer, server.name),
      );
      if (live?.status?.reachable !== true) return false;
    }
    return true;
  });
  await createTenant(client, NAME, { region: 'eu-west', database: { enabled: true } });
  await waitForPhase(client, NAME, 'Ready', 60_000);
});

after(async () => {
  // Never leave Vault stopped for the files that come after.
  if (vaultStopped) vault('SIGCONT');
  await eraseTenantAndWait(client, NAME).catch(() => undefined);
  await operator.stop();
  await client.close();
});

async function events(
  tenant: TenantObject,
): Promise<{ type: string; reason: string; message: string }[]> {
  const list = await client.request<{
    items: { type: string; reason: string; message: string; involvedObject: { uid?: string } }[];
  }>('GET', '/api/v1/namespaces/default/events');
  return list.items.filter((e) => e.involvedObject.uid === tenant.metadata.uid);
}

function ready(tenant: TenantObject | undefined) {
  return tenant?.status?.conditions?.find((c) => c.type === 'Ready');
}

describe('Vault outage', () => {
  test('a Ready tenant reports VaultUnavailable, keeps its phase, and recovers', async () => {
    const provisioned = await getTenant(client, NAME);
    assert.ok(provisioned);
    assert.equal((await events(provisioned)).filter((e) => e.reason === 'Provisioned').length, 1);

    // Every phase the tenant shows while Vault is down, sampled continuously.
    const phases = new Set<string>();
    let sampling = true;
    const sampler = (async () => {
      while (sampling) {
        phases.add((await getTenant(client, NAME))?.status?.phase ?? 'none');
        await sleep(100);
      }
    })();

    try {
      vault('SIGSTOP');
      // A spec change makes the operator reconcile now, and the database step reads Vault.
      await client.mergePatch(objectPath(RESOURCES.Tenant, NAME), {
        spec: { displayName: 'during the outage' },
      });
      const degraded = await waitFor(
        'Ready to turn False with reason VaultUnavailable',
        async () => {
          const tenant = await getTenant(client, NAME);
          return ready(tenant)?.reason === 'VaultUnavailable' ? tenant : undefined;
        },
        { timeoutMs: 45_000, intervalMs: 250 },
      );
      assert.equal(ready(degraded)?.status, 'False');
      assert.match(ready(degraded)?.message ?? '', /^Vault .*timed out after 10000 ms/);
      assert.equal(degraded.status?.phase, 'Ready');
      assert.equal(degraded.status?.observedGeneration, degraded.metadata.generation);
      const database = degraded.status?.conditions?.find((c) => c.type === 'DatabaseReady');
      assert.equal(database?.reason, 'VaultUnavailable');
      // Isolation is still enforced: the children were applied before Vault was needed.
      const deny = await client.get<KubeObject>(
        objectPath(RESOURCES.NetworkPolicy, 'default-deny', `tenant-${NAME}`),
      );
      assert.ok(deny);
      // Let at least one retry fail too: still one warning, not one per attempt.
      await sleep(12_000);
      const during = await events(degraded);
      assert.equal(
        during.filter((e) => e.type === 'Warning' && e.reason === 'VaultUnavailable').length,
        1,
        JSON.stringify(during.map((e) => e.reason)),
      );
    } finally {
      vault('SIGCONT');
    }

    const recovered = await waitFor(
      'Ready to be True again',
      async () => {
        const tenant = await getTenant(client, NAME);
        return ready(tenant)?.status === 'True' ? tenant : undefined;
      },
      { timeoutMs: 90_000, intervalMs: 250 },
    );
    sampling = false;
    await sampler;
    assert.deepEqual([...phases], ['Ready']);
    assert.equal(recovered.status?.phase, 'Ready');
    const all = await events(recovered);
    const reasons = all.map((e) => `${e.type}/${e.reason}`);
    assert.equal(reasons.filter((r) => r === 'Normal/Provisioned').length, 1, reasons.join(', '));
    assert.equal(reasons.filter((r) => r === 'Normal/Recovered').length, 1, reasons.join(', '));
    const tenantNamespace = await client.get<KubeObject>(
      objectPath(RESOURCES.Namespace, `tenant-${NAME}`),
    );
    assert.equal(
      tenantNamespace?.metadata.annotations?.['tenancy.io/display-name'],
      'during the outage',
    );
  });
});
