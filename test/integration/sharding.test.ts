import assert from 'node:assert/strict';
import { after, afterEach, before, test } from 'node:test';
import { pino } from 'pino';
import { EVENTS_NAMESPACE } from '../../src/api/constants.ts';
import { LABEL_MEMBER } from '../../src/controller/membership.ts';
import { ShardSet } from '../../src/controller/shard-set.ts';
import { shardLeaseName, shardOf } from '../../src/controller/shards.ts';
import { ERROR_CODES, OperatorError } from '../../src/errors.ts';
import { KubeClient } from '../../src/k8s/client.ts';
import { kubeconfigFileAccess } from '../../src/k8s/cluster-access.ts';
import { collectionPath, objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import type { KubeList, KubeObject } from '../../src/k8s/types.ts';
import {
  adminClient,
  breakGlassClient,
  createTenant,
  eraseTenantAndWait,
  getObject,
  requireEnv,
  waitForPhase,
  tenantEvents,
} from '../support/cluster.ts';
import { OPERATOR_NAMESPACE, OperatorProcess } from '../support/operator.ts';
import { waitFor } from '../support/wait.ts';

// Two replicas with --shards 2: each holds one shard's Lease, reconciles
// only that shard's tenants, and when one is killed (SIGKILL: no hand-over)
// the other takes its Lease once it has expired and repairs its tenants.
// Who holds what is read from the Lease objects; who wrote what from the
// Events' reportingInstance and the replicas' own logs.

const SHARDS = 2;
const LEASE_SECONDS = 4;
const TENANTS = 20;

let client: KubeClient;
let breakGlass: KubeClient;
const created: string[] = [];
const operators: OperatorProcess[] = [];

type Lease = KubeObject & { spec?: { holderIdentity?: string | null } };

before(async () => {
  client = await adminClient();
  breakGlass = await breakGlassClient();
  await removeShardLeases();
});

afterEach(async () => {
  for (const operator of operators.splice(0)) await operator.stop();
});

after(async () => {
  const cleaner = await OperatorProcess.start();
  await cleaner.waitUntilLeader(60_000);
  await Promise.all(created.map((name) => eraseTenantAndWait(client, name, 120_000)));
  await cleaner.stop();
  for (const event of await tenantEvents(client, created))
    await client.delete(objectPath(RESOURCES.Event, event.metadata.name, EVENTS_NAMESPACE));
  await removeShardLeases();
  await breakGlass.close();
  await client.close();
});

/** Shard and member Leases of earlier runs: a test starts from none. */
async function removeShardLeases(): Promise<void> {
  const list = await client.request<KubeList<Lease>>(
    'GET',
    collectionPath(RESOURCES.Lease, OPERATOR_NAMESPACE),
  );
  for (const lease of list.items) {
    const name = lease.metadata.name;
    if (name.startsWith('tenant-operator-shard-') || lease.metadata.labels?.[LABEL_MEMBER])
      await client.delete(objectPath(RESOURCES.Lease, name, OPERATOR_NAMESPACE));
  }
}

async function startReplica(identity: string): Promise<OperatorProcess> {
  const operator = await OperatorProcess.start({
    identity,
    leaseDurationSeconds: LEASE_SECONDS,
    extraArgs: ['--shards', String(SHARDS)],
  });
  operators.push(operator);
  return operator;
}

/** The holder of each shard's Lease, as the API server has it. */
async function holders(): Promise<(string | undefined)[]> {
  return Promise.all(
    Array.from({ length: SHARDS }, async (_, shard) => {
      const lease = await client.get<Lease>(
        objectPath(RESOURCES.Lease, shardLeaseName(shard, SHARDS), OPERATOR_NAMESPACE),
      );
      return lease?.spec?.holderIdentity ?? undefined;
    }),
  );
}

function repairedBy(operator: OperatorProcess, tenant: string): boolean {
  return operator.output.some(
    (line) => line.includes('repaired drift') && line.includes(`"tenant":"${tenant}"`),
  );
}

/** Deletes a tenant's default-deny policy as the break-glass user: drift the operator must repair. */
async function makeDrift(tenant: string): Promise<void> {
  await breakGlass.delete(objectPath(RESOURCES.NetworkPolicy, 'default-deny', `tenant-${tenant}`));
}

async function waitForRepair(tenant: string, timeoutMs: number): Promise<void> {
  await waitFor(
    `default-deny of ${tenant} to be put back`,
    () => getObject(client, 'NetworkPolicy', 'default-deny', `tenant-${tenant}`),
    { timeoutMs, intervalMs: 50 },
  );
}

test('two replicas share the shards, and the survivor of a SIGKILL takes over the dead one’s', async () => {
  const a = await startReplica(`shard-a-${process.pid}`);
  // Alone, the first replica's fair share is both shards.
  await waitFor('replica a to hold both shards', async () => {
    const held = await holders();
    return held.every((holder) => holder === a.identity);
  });
  const b = await startReplica(`shard-b-${process.pid}`);
  // With two alive, a hands one shard back and b takes it.
  const split = await waitFor(
    'the shards to be held by different replicas',
    async () => {
      const held = await holders();
      return new Set(held).size === SHARDS &&
        held.every((h) => h === a.identity || h === b.identity)
        ? held
        : undefined;
    },
    { timeoutMs: 4 * LEASE_SECONDS * 1000 },
  );
  const replicaOf = (shard: number) => (split[shard] === a.identity ? a : b);
  // What the alert reads: each says how many shards there are, and holds one.
  for (const replica of [a, b]) {
    assert.equal(await replica.metric('tenant_operator_shards'), SHARDS);
    await waitFor(`${replica.identity} to report one shard held`, async () =>
      (await replica.metric('tenant_operator_shards_held')) === 1 ? true : undefined,
    );
  }

  const names = Array.from({ length: TENANTS }, (_, i) => `shard-${process.pid}-${i}`);
  const byShard = (shard: number) => names.filter((name) => shardOf(name, SHARDS) === shard);
  assert.ok(byShard(0).length > 0 && byShard(1).length > 0, 'both shards have tenants');
  created.push(...names);
  await Promise.all(names.map((name) => createTenant(client, name)));
  await Promise.all(names.map((name) => waitForPhase(client, name, 'Ready', 60_000)));

  // Every Event about a tenant was written by the holder of its shard.
  const events = await tenantEvents(client, names);
  assert.ok(events.length >= names.length, 'each tenant has its events');
  for (const event of events) {
    const tenant = (event.involvedObject as { name: string }).name;
    assert.equal(
      event.reportingInstance,
      split[shardOf(tenant, SHARDS)],
      `event ${String(event.reason)} about ${tenant} (shard ${shardOf(tenant, SHARDS)})`,
    );
  }

  // Drift on a tenant of each shard is repaired by that shard's holder alone.
  for (const shard of [0, 1]) {
    const tenant = byShard(shard)[0] ?? '';
    await makeDrift(tenant);
    await waitForRepair(tenant, 10_000);
    await waitFor(`the repair of ${tenant} to be logged`, () =>
      repairedBy(replicaOf(shard), tenant),
    );
    assert.ok(!repairedBy(replicaOf(1 - shard), tenant), `only shard ${shard}'s holder repairs`);
  }

  // SIGKILL the holder of shard 1: nothing is handed over, its Lease must expire.
  const dead = replicaOf(1);
  const survivor = replicaOf(0);
  const orphan = byShard(1)[1] ?? byShard(1)[0] ?? '';
  const killedAt = Date.now();
  await dead.kill('SIGKILL');
  await makeDrift(orphan);
  await waitFor(
    'the survivor to hold both shard leases',
    async () => (await holders()).every((holder) => holder === survivor.identity),
    { timeoutMs: 4 * LEASE_SECONDS * 1000, intervalMs: 50 },
  );
  const takeoverMs = Date.now() - killedAt;
  await waitFor('the survivor to report both shards held', async () =>
    (await survivor.metric('tenant_operator_shards_held')) === SHARDS ? true : undefined,
  );
  await waitForRepair(orphan, 4 * LEASE_SECONDS * 1000);
  const repairMs = Date.now() - killedAt;
  // Its log line may reach us a moment after the object is back.
  await waitFor(`the survivor's repair of ${orphan} to be logged`, () =>
    repairedBy(survivor, orphan),
  );
  // One lease duration, plus the retry period in which it is noticed and
  // the time to reconcile: well under two.
  const bound = 2 * LEASE_SECONDS * 1000;
  assert.ok(takeoverMs < bound, `lease taken over ${takeoverMs} ms after the kill (< ${bound})`);
  assert.ok(repairMs < bound, `drift repaired ${repairMs} ms after the kill (< ${bound})`);
  // And not before the dead replica's lease could have run out.
  assert.ok(takeoverMs >= LEASE_SECONDS * 1000 * (2 / 3), `takeover waited (${takeoverMs} ms)`);
  process.stderr.write(`takeover ${takeoverMs} ms, repair ${repairMs} ms after SIGKILL\n`);
});

/** Refused by the fence (NOT_LEADER) rather than answered by the API server. */
function fenced(err: unknown): boolean {
  return err instanceof OperatorError && err.code === ERROR_CODES.NOT_LEADER;
}

test('the fence judges each write by the shard it is made for, through the rate limiter', async () => {
  const access = kubeconfigFileAccess(requireEnv('KUBECONFIG'));
  assert.ok(access);
  const leases = await KubeClient.create(access);
  const shardSet = (identity: string) =>
    new ShardSet(leases, {
      shards: SHARDS,
      namespace: OPERATOR_NAMESPACE,
      identity,
      leaseDurationSeconds: LEASE_SECONDS,
      renewDeadlineMs: (LEASE_SECONDS * 1000 * 2) / 3,
      retryPeriodMs: 500,
      drainTimeoutMs: 5_000,
      log: pino({ level: 'silent' }),
      onAcquired: () => undefined,
      onReleased: () => undefined,
      onLostAll: () => assert.fail('more than one shard: a lost lease never ends the process'),
    });
  const identities = [`fence-a-${process.pid}`, `fence-b-${process.pid}`] as const;
  const first = shardSet(identities[0]);
  const second = shardSet(identities[1]);
  // One request at a time: the second write is started by the first one's
  // completion. The fence must still judge it by its own caller's shard (the
  // client's rate limiter, p-queue, binds each task to its caller's context).
  const writer = await KubeClient.create(access, { rateLimit: { qps: 1000, concurrency: 1 } });
  writer.setWriteGuard(() => first.assertHolds());
  try {
    await first.start();
    await waitFor('the first replica to hold both shards', () => first.heldShards().length === 2);
    await second.start();
    await waitFor(
      'the shards to be split',
      () => first.heldShards().join() === '0' && second.heldShards().join() === '1',
      { timeoutMs: 4 * LEASE_SECONDS * 1000 },
    );
    assert.deepEqual(await holders(), identities);
    // Outside any tenant's context a write is shard 0's (shared work).
    first.assertHolds();
    assert.throws(() => second.assertHolds(), fenced);
    await first.runInShard(0, () => Promise.resolve(first.assertHolds()));
    await assert.rejects(
      first.runInShard(1, () => Promise.resolve(first.assertHolds())),
      fenced,
    );
    const write = () =>
      writer.request('POST', `/api/v1/namespaces/${OPERATOR_NAMESPACE}/configmaps`, {
        query: { dryRun: 'All' },
        body: {
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { generateName: 'fence-', namespace: OPERATOR_NAMESPACE },
        },
      });
    const [allowed, refused] = await Promise.allSettled([
      first.runInShard(0, write),
      first.runInShard(1, write),
    ]);
    assert.equal(allowed.status, 'fulfilled', String((allowed as PromiseRejectedResult).reason));
    assert.ok(refused.status === 'rejected' && fenced(refused.reason), 'shard 1 write refused');
  } finally {
    await second.stop(() => Promise.resolve());
    await first.stop(() => Promise.resolve());
    await writer.close();
    await leases.close();
  }
  // Both stopped: the leases were handed back, nobody holds a shard.
  assert.deepEqual(await holders(), [undefined, undefined]);
});
