import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, afterEach, before, describe, test } from 'node:test';
import { EVENTS_NAMESPACE, FINALIZER, LABEL_TENANT } from '../../src/api/constants.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { collectionPath, objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import type { KubeList, KubeObject } from '../../src/k8s/types.ts';
import type { TenantObject } from '../../src/tenant/model.ts';
import {
  adminClient,
  breakGlassClient,
  createTenant,
  eraseTenantAndWait,
  getObject,
  getTenant,
  requireEnv,
  waitForPhase,
  tenantEvents,
} from '../support/cluster.ts';
import { OPERATOR_NAMESPACE, OperatorProcess } from '../support/operator.ts';
import { waitFor } from '../support/wait.ts';

// Crashes, paused and stopped leaders, replicas and an API server that goes
// away: the operator resumes and converges, only the leader ever writes, and
// /readyz says when the operator is not following the API server. Every
// verdict is read from the API server's own objects, not from the operator.

let client: KubeClient;
let breakGlass: KubeClient;
const created: string[] = [];
const operators: OperatorProcess[] = [];
const etcdKeys: string[] = [];

before(async () => {
  client = await adminClient();
  breakGlass = await breakGlassClient();
});

// A test that fails half-way must not leave a leader behind for the next one.
afterEach(async () => {
  for (const operator of operators.splice(0)) {
    // A paused operator ignores SIGTERM until it runs again.
    operator.signal('SIGCONT');
    await operator.stop();
  }
});

after(async () => {
  const cleaner = await OperatorProcess.start();
  // Long enough for a lease left behind by a failed test (the outage test's is 60 s).
  await cleaner.waitUntilLeader(90_000);
  await Promise.all(created.map((name) => eraseTenantAndWait(client, name, 120_000)));
  await cleaner.stop();
  // The Events about our tenants live outside their namespaces.
  for (const event of await tenantEvents(client, created)) {
    await client.delete(objectPath(RESOURCES.Event, event.metadata.name, EVENTS_NAMESPACE));
  }
  for (const key of etcdKeys) await etcd('/v3/kv/deleterange', { key: base64(key) });
  await breakGlass.close();
  await client.close();
});

async function startOperator(
  options: Parameters<typeof OperatorProcess.start>[0] = {},
): Promise<OperatorProcess> {
  const operator = await OperatorProcess.start(options);
  operators.push(operator);
  return operator;
}

async function newTenants(names: string[], spec: Record<string, unknown> = {}): Promise<void> {
  created.push(...names);
  await Promise.all(names.map((name) => createTenant(client, name, spec)));
}

async function assertFullyProvisioned(name: string): Promise<void> {
  const tenant = await waitForPhase(client, name, 'Ready', 60_000);
  assert.equal(tenant.metadata.finalizers?.filter((f) => f === FINALIZER).length, 1);
  const ns = `tenant-${name}`;
  for (const policy of ['default-deny', 'allow-dns', 'allow-same-namespace']) {
    assert.ok(await getObject(client, 'NetworkPolicy', policy, ns), `${policy} in ${ns}`);
  }
  assert.ok(await getObject(client, 'RoleBinding', 'tenant-admins', ns));
  assert.ok(await getObject(client, 'ResourceQuota', 'tenant-quota', ns));
  assert.ok(await getObject(client, 'LimitRange', 'tenant-limits', ns));
}

/** Tenants as the API server has them right now, with whether the operator has begun on each. */
async function tenantStates(names: string[]) {
  return Promise.all(
    names.map(async (name) => {
      const tenant = await getTenant(client, name);
      const namespace = await getObject(client, 'Namespace', `tenant-${name}`);
      return {
        name,
        ready: tenant?.status?.phase === 'Ready',
        begun: namespace !== undefined || (tenant?.metadata.finalizers ?? []).includes(FINALIZER),
      };
    }),
  );
}

/** Polls the API server until the operator has created the first of these namespaces. */
async function firstNamespaceOf(names: string[]): Promise<void> {
  await waitFor(
    'the operator to create a first tenant namespace',
    async () => {
      const list = await client.request<KubeList<KubeObject>>(
        'GET',
        collectionPath(RESOURCES.Namespace),
        { query: { labelSelector: `${LABEL_TENANT} in (${names.join(',')})` } },
      );
      return list.items.length > 0;
    },
    { intervalMs: 20, timeoutMs: 30_000 },
  );
}

/**
 * Freezes the operator (SIGSTOP) at a moment when at least one of these
 * tenants is mid-reconcile, and answers their states as frozen. A reconcile
 * without a database takes a few milliseconds, so a single look can fall
 * between two of them: look, freeze, look again, and thaw to retry when the
 * freeze came too late. Each freeze is far shorter than the lease.
 */
async function freezeMidReconcile(operator: OperatorProcess, names: string[]) {
  for (;;) {
    await waitFor(
      'a tenant to be mid-reconcile',
      async () => (await tenantStates(names)).some((t) => t.begun && !t.ready),
      { intervalMs: 5, timeoutMs: 30_000 },
    );
    operator.signal('SIGSTOP');
    const frozen = await tenantStates(names);
    if (frozen.some((t) => t.begun && !t.ready)) return frozen;
    operator.signal('SIGCONT');
    if (frozen.every((t) => t.ready)) {
      throw new Error(`every tenant was ready before one could be frozen mid-reconcile`);
    }
  }
}

interface ManagedFieldsEntry {
  manager?: string;
  operation?: string;
  time?: string;
}

function managedFields(object: KubeObject): ManagedFieldsEntry[] {
  return (object.metadata as { managedFields?: ManagedFieldsEntry[] }).managedFields ?? [];
}

const CHILD_TYPES = ['NetworkPolicy', 'RoleBinding', 'ResourceQuota', 'LimitRange'] as const;

/**
 * resourceVersion and managedFields of every object the operator writes for
 * these tenants (the Tenant, its namespace and children) and of every Event
 * about them: any write that changes anything changes this.
 */
async function snapshot(names: string[]): Promise<Map<string, string>> {
  const state = new Map<string, string>();
  const record = (key: string, object: KubeObject | undefined) =>
    state.set(
      key,
      object ? JSON.stringify([object.metadata.resourceVersion, managedFields(object)]) : 'absent',
    );
  for (const name of names) {
    const ns = `tenant-${name}`;
    record(`Tenant/${name}`, await getTenant(client, name));
    record(`Namespace/${ns}`, await getObject(client, 'Namespace', ns));
    for (const kind of CHILD_TYPES) {
      const list = await client.request<KubeList<KubeObject>>(
        'GET',
        collectionPath(RESOURCES[kind], ns),
      );
      for (const item of list.items) record(`${kind}/${ns}/${item.metadata.name}`, item);
    }
  }
  for (const event of await tenantEvents(client, names))
    record(`Event/${event.metadata.name}`, event);
  return state;
}

/** Waits until nothing about these tenants changes for a few seconds (quota status included). */
async function settled(names: string[]): Promise<Map<string, string>> {
  let previous = await snapshot(names);
  return waitFor(
    'the tenants to settle',
    async () => {
      await sleep(3_000);
      const next = await snapshot(names);
      const same = JSON.stringify([...next]) === JSON.stringify([...previous]);
      previous = next;
      return same ? next : undefined;
    },
    { timeoutMs: 60_000, intervalMs: 0 },
  );
}

function changes(before: Map<string, string>, after: Map<string, string>): string[] {
  const keys = new Set([...before.keys(), ...after.keys()]);
  return [...keys].filter((key) => before.get(key) !== after.get(key));
}

interface LeaseSpec {
  holderIdentity?: string | null;
  acquireTime?: string | null;
}

function leasePath(): string {
  return objectPath(RESOURCES.Lease, 'tenant-operator', OPERATOR_NAMESPACE);
}

async function leaseHolder(): Promise<string | null | undefined> {
  const lease = await client.get<KubeObject & { spec?: LeaseSpec }>(leasePath());
  return lease?.spec?.holderIdentity;
}

/**
 * Follows the Lease from now on and answers the resourceVersion of the first
 * write that made `identity` its holder. resourceVersions are etcd revisions:
 * one counter for the whole cluster, so they order writes to different objects
 * (an implementation property of the real API server this test runs against).
 */
function leaseAcquisition(identity: string, signal: AbortSignal) {
  return (async () => {
    const path = collectionPath(RESOURCES.Lease, OPERATOR_NAMESPACE);
    const events = await client.watch<KubeObject & { spec?: LeaseSpec }>(
      path,
      { fieldSelector: 'metadata.name=tenant-operator', timeoutSeconds: 120 },
      signal,
    );
    for await (const event of events) {
      const lease = event.object as KubeObject & { spec?: LeaseSpec };
      if (lease.spec?.holderIdentity === identity) {
        return { revision: Number(lease.metadata.resourceVersion), lease };
      }
    }
    throw new Error(`the Lease watch ended before ${identity} acquired it`);
  })();
}

function clusterScript(
  command: 'stop-apiserver' | 'start-apiserver' | 'pause-apiserver' | 'resume-apiserver',
): void {
  const script = join(import.meta.dirname, '../../hack/cluster.sh');
  const result = spawnSync('bash', [script, command, requireEnv('TEST_CLUSTER_DIR')], {
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(result.status, 0, `${command}: ${result.stderr}`);
}

function base64(text: string): string {
  return Buffer.from(text).toString('base64');
}

/** etcd's JSON gateway (v3 API over HTTP), straight to the API server's storage. */
async function etcd<T>(path: string, body: unknown): Promise<T> {
  const response = await fetch(requireEnv('ETCD_ENDPOINT') + path, {
    method: 'POST',
    body: JSON.stringify(body),
  });
  const text = await response.text();
  assert.equal(response.status, 200, `etcd ${path}: ${text}`);
  return JSON.parse(text) as T;
}

describe('crash and restart', () => {
  test('an operator killed mid-reconcile is replaced and every tenant converges', async () => {
    // Two at a time, so most tenants are still to do when the kill comes.
    const first = await startOperator({ extraArgs: ['--concurrency', '2'] });
    await first.waitUntilLeader();
    const names = Array.from({ length: 8 }, (_, i) => `crash-${i + 1}`);
    await newTenants(names);
    // Frozen, then killed: nothing else writes these tenants, so this is their state at the kill.
    const atKill = await freezeMidReconcile(first, names);
    await first.kill('SIGKILL');
    assert.ok(
      atKill.some((t) => t.begun && !t.ready),
      `no tenant was mid-reconcile at the kill: ${JSON.stringify(atKill)}`,
    );
    assert.ok(
      atKill.filter((t) => t.ready).length < names.length / 2,
      `the kill came after most tenants were done: ${JSON.stringify(atKill)}`,
    );

    const second = await startOperator();
    await second.waitUntilLeader(20_000);
    for (const name of names) await assertFullyProvisioned(name);
    await second.stop();
  });
});

describe('a leader that loses its lease', () => {
  test('a leader paused past its lease writes nothing once it wakes, and steps down', async () => {
    const names = Array.from({ length: 8 }, (_, i) => `fenced-${i + 1}`);
    const a = await startOperator({ identity: 'fenced-a', extraArgs: ['--concurrency', '2'] });
    await a.waitUntilLeader();
    const b = await startOperator({ identity: 'fenced-b' });
    await b.waitUntilReady();
    await newTenants(names, { quota: { pods: 50 } });
    const atPause = await freezeMidReconcile(a, names);
    try {
      assert.ok(
        atPause.some((t) => t.begun && !t.ready),
        `no reconcile was under way at the pause: ${JSON.stringify(atPause)}`,
      );
      // New desired state while A sleeps: a stale leader would write the old one back.
      for (const name of names) {
        await client.mergePatch(objectPath(RESOURCES.Tenant, name), {
          spec: { quota: { pods: 40 } },
        });
      }
      // A's 4 s lease runs out; B takes over and settles every tenant.
      await b.waitUntilLeader(30_000);
      for (const name of names) await assertFullyProvisioned(name);
      for (const name of names) {
        const quota = await getObject(client, 'ResourceQuota', 'tenant-quota', `tenant-${name}`);
        assert.equal((quota?.spec as { hard?: { pods?: string } }).hard?.pods, '40');
      }
      const before = await settled(names);
      assert.equal(await leaseHolder(), 'fenced-b');

      a.signal('SIGCONT');
      // A must see its lease is gone and exit (the Deployment restarts it as a standby).
      await waitFor('the paused leader to exit', () => !a.alive, { timeoutMs: 20_000 });
      assert.equal(a.exitCode, 1, 'the paused leader did not step down as a lost leader');
      await sleep(2_000);
      const after = await snapshot(names);
      const changed = changes(before, after);
      assert.deepEqual(
        changed,
        [],
        `objects changed after the paused leader woke: ${changed
          .map((key) => `${key}: ${before.get(key)} -> ${after.get(key)}`)
          .join('; ')}`,
      );
      assert.equal(await leaseHolder(), 'fenced-b');
      assert.ok(
        a.output.some((line) => line.includes('lost leadership')),
        'the woken leader did not report its lost lease',
      );
    } finally {
      a.signal('SIGCONT');
    }
    await b.stop();
  });

  test('a leader whose API server hangs stops leading by its renew deadline', async () => {
    // Lease 4 s: renew deadline 2.7 s. A hung lease call must not keep the
    // leader believing in its lease for the client's 30 s request timeout.
    const operator = await startOperator({ identity: 'hung-api' });
    await operator.waitUntilLeader();
    clusterScript('pause-apiserver');
    const pausedAt = Date.now();
    try {
      await waitFor('the leader to give up', () => !operator.alive, { timeoutMs: 20_000 });
    } finally {
      clusterScript('resume-apiserver');
    }
    const elapsed = Date.now() - pausedAt;
    assert.equal(operator.exitCode, 1);
    assert.ok(
      operator.output.some((line) => line.includes('lost leadership')),
      'no lost-leadership report',
    );
    // Before the lease itself could have expired for another replica.
    assert.ok(elapsed < 4_000, `still leading ${elapsed} ms into the outage`);
  });

  test('a leader stopped mid-reconcile finishes its work before the standby takes the lease', async () => {
    const names = Array.from({ length: 6 }, (_, i) => `drain-${i + 1}`);
    // A long lease: a hand-over within it can only come from A releasing the lease.
    const a = await startOperator({ identity: 'drain-a', leaseDurationSeconds: 15 });
    await a.waitUntilLeader();
    const b = await startOperator({ identity: 'drain-b', leaseDurationSeconds: 15 });
    await b.waitUntilReady();
    const watching = new AbortController();
    const acquired = leaseAcquisition('drain-b', watching.signal);
    acquired.catch(() => undefined);
    try {
      await newTenants(names);
      await firstNamespaceOf(names);
      const atStop = await tenantStates(names);
      const stoppedAt = Date.now();
      a.signal('SIGTERM');
      const inFlight = atStop.filter((t) => t.begun && !t.ready).map((t) => t.name);
      assert.ok(inFlight.length > 0, `no reconcile was under way: ${JSON.stringify(atStop)}`);

      await b.waitUntilLeader(30_000);
      assert.ok(Date.now() - stoppedAt < 15_000, 'B waited for the lease to expire');
      await waitFor('A to exit', () => !a.alive, { timeoutMs: 30_000 });
      assert.equal(a.exitCode, 0);
      for (const name of names) await assertFullyProvisioned(name);
      await b.waitUntilIdle();

      const { revision, lease } = await acquired;
      const acquireTime = Date.parse(lease.spec?.acquireTime ?? '');
      const events = await tenantEvents(client, inFlight);
      for (const name of inFlight) {
        // A finished it: the Tenant's last write came before B held the lease,
        // and the Provisioned event is A's.
        const tenant = (await getTenant(client, name)) as TenantObject;
        assert.ok(
          Number(tenant.metadata.resourceVersion) < revision,
          `${name} was last written at revision ${tenant.metadata.resourceVersion}, after B took the lease at ${revision}`,
        );
        for (const entry of managedFields(tenant)) {
          // managedFields times have whole seconds.
          assert.ok(Date.parse(entry.time ?? '') <= acquireTime, `${name}: ${entry.time}`);
        }
        const provisioned = events.filter(
          (e) =>
            (e.involvedObject as { name?: string }).name === name && e.reason === 'Provisioned',
        );
        assert.deepEqual(
          provisioned.map((e) => e.reportingInstance),
          ['drain-a'],
          `${name}: who reported it provisioned`,
        );
        assert.ok(Number(provisioned[0]?.metadata.resourceVersion) < revision);
      }
    } finally {
      watching.abort();
    }
    await b.stop();
  });
});

describe('two replicas', () => {
  test('only the leader writes; the standby takes over when the leader dies', async () => {
    const a = await startOperator({ identity: 'replica-a' });
    await a.waitUntilLeader();
    const b = await startOperator({ identity: 'replica-b' });
    await b.waitUntilReady();
    await newTenants(['replicas-1']);
    await waitForPhase(client, 'replicas-1', 'Ready');
    assert.equal(await b.metric('tenant_operator_leader'), 0);
    assert.equal(await b.writes(), 0, 'the standby wrote to the API');
    assert.ok((await a.writes()) > 0);

    await a.kill('SIGKILL');
    await b.waitUntilLeader(20_000);
    await newTenants(['replicas-2']);
    await assertFullyProvisioned('replicas-2');
    await b.stop();
  });

  test('a replica stopped gracefully hands the lease over at once', async () => {
    const a = await startOperator({ identity: 'graceful-a', leaseDurationSeconds: 30 });
    await a.waitUntilLeader();
    const b = await startOperator({ identity: 'graceful-b', leaseDurationSeconds: 30 });
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

describe('API server outage', () => {
  test('/readyz is 503 while the API server is down, a 410 forces a relist, and drift repair resumes', async () => {
    // A lease that outlives the outage, so the leader rides it out instead of stepping down.
    const operator = await startOperator({ leaseDurationSeconds: 60 });
    await operator.waitUntilLeader();
    await newTenants(['outage-1']);
    await assertFullyProvisioned('outage-1');
    await operator.waitUntilReady();

    const linesBefore = operator.output.length;
    clusterScript('stop-apiserver');
    const stoppedAt = Date.now();
    try {
      // Every watch the operator has is now from a resourceVersion that etcd
      // will no longer serve: new writes, then a compaction past them.
      const bumpKey = `/tenant-operator-test/resilience-${process.pid}`;
      etcdKeys.push(bumpKey);
      let revision = 0;
      for (let i = 0; i < 3; i++) {
        const put = await etcd<{ header: { revision: string } }>('/v3/kv/put', {
          key: base64(bumpKey),
          value: base64(String(i)),
        });
        revision = Number(put.header.revision);
      }
      await etcd('/v3/kv/compaction', { revision, physical: true });

      const firstUnready = await waitFor(
        '/readyz to report the outage',
        async () => ((await operator.get('/readyz')).status === 503 ? Date.now() : undefined),
        { timeoutMs: 10_000, intervalMs: 100 },
      );
      assert.ok(firstUnready - stoppedAt < 5_000, `503 only after ${firstUnready - stoppedAt} ms`);
      // And it stays so for the whole outage.
      while (Date.now() - stoppedAt < 20_000) {
        const { status, body } = await operator.get('/readyz');
        assert.equal(status, 503, `ready during the outage: ${body}`);
        await sleep(500);
      }
    } finally {
      // Whatever happened, the next tests need their API server back.
      clusterScript('start-apiserver');
    }
    await operator.waitUntilReady(60_000);
    assert.ok(operator.alive, 'the operator exited during the outage');
    const since = operator.output.slice(linesBefore);
    assert.ok(
      // The API server's own 410 ("too old resource version"), not a guess of the operator's.
      since.some(
        (line) =>
          line.includes('resourceVersion expired; listing again') &&
          line.includes('too old resource version'),
      ),
      'no relist after the compaction',
    );

    // Drift repair still works through the re-established watches (break-glass:
    // the admission guard refuses this edit to anyone else).
    await breakGlass.delete(objectPath(RESOURCES.NetworkPolicy, 'default-deny', 'tenant-outage-1'));
    await waitFor(
      'default-deny back',
      () => getObject(client, 'NetworkPolicy', 'default-deny', 'tenant-outage-1'),
      { timeoutMs: 15_000 },
    );
    await operator.stop();
  });
});
