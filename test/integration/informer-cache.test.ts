import assert from 'node:assert/strict';
import { after, before, test } from 'node:test';
import { pino } from 'pino';
import { Informer } from '../../src/controller/informer.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import { adminClient } from '../support/cluster.ts';
import { waitFor } from '../support/wait.ts';

// What an informer keeps, against the real API server: objects as the server
// has them, minus managedFields (which the operator never reads), whether
// they came by the list, the watch, or the operator's own write.

const NAME = `informer-cache-${process.pid}`;
let client: KubeClient;
let informer: Informer<KubeObject>;
const stop = new AbortController();

before(async () => {
  client = await adminClient();
  informer = new Informer<KubeObject>(client, RESOURCES.Namespace, {
    log: pino({ level: 'silent' }),
  });
  void informer.run(stop.signal);
  await informer.waitForSync();
});

after(async () => {
  stop.abort();
  await client.delete(objectPath(RESOURCES.Namespace, NAME));
  await client.close();
});

async function fromServer(name: string): Promise<KubeObject> {
  const live = await client.get<KubeObject>(objectPath(RESOURCES.Namespace, name));
  assert.ok(live, `namespace ${name} on the server`);
  return live;
}

test('a listed object is cached without managedFields, and otherwise as the server has it', async () => {
  const live = await fromServer('kube-system');
  assert.ok((live.metadata.managedFields?.length ?? 0) > 0, 'the server records managed fields');
  const cached = informer.get('kube-system');
  assert.ok(cached);
  assert.equal(cached.metadata.managedFields, undefined);
  const expected = { ...live.metadata };
  delete expected.managedFields;
  assert.deepEqual(cached.metadata, expected);
  assert.equal(cached.kind, 'Namespace');
  assert.equal(cached.apiVersion, 'v1');
});

test('a watched object and an upserted one are cached without managedFields', async () => {
  // A label to own: an apply that sets no field leaves no managedFields entry.
  await client.apply({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: NAME, labels: { 'example.com/test': 'informer-cache' } },
  });
  const watched = await waitFor('the watch to deliver the namespace', () => informer.get(NAME));
  assert.equal(watched.metadata.managedFields, undefined);
  const live = await fromServer(NAME);
  assert.ok((live.metadata.managedFields?.length ?? 0) > 0);
  informer.upsert(live);
  assert.equal(informer.get(NAME)?.metadata.managedFields, undefined);
  assert.equal(informer.get(NAME)?.metadata.resourceVersion, live.metadata.resourceVersion);
});

test('an index follows its objects through the watch: added, moved to another value, deleted', async () => {
  const LABEL = 'example.com/index';
  const name = `${NAME}-indexed`;
  const indexed = new Informer<KubeObject>(client, RESOURCES.Namespace, {
    log: pino({ level: 'silent' }),
    indexBy: (object) => object.metadata.labels?.[LABEL],
  });
  const stopIndexed = new AbortController();
  void indexed.run(stopIndexed.signal);
  await indexed.waitForSync();
  const names = (value: string) => indexed.byIndex(value).map((o) => o.metadata.name);
  try {
    assert.throws(() => informer.byIndex('a'), /has no index/);
    await client.apply({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name, labels: { [LABEL]: 'first' } },
    });
    await waitFor('indexed under first', () => names('first').includes(name));
    await client.mergePatch(objectPath(RESOURCES.Namespace, name), {
      metadata: { labels: { [LABEL]: 'second' } },
    });
    await waitFor('moved to second', () => names('second').includes(name));
    assert.deepEqual(names('first'), [], 'nothing left under the old value');
    await client.delete(objectPath(RESOURCES.Namespace, name));
    await waitFor('gone', () => indexed.get(name) === undefined);
    assert.deepEqual(names('second'), []);
  } finally {
    stopIndexed.abort();
    await client.delete(objectPath(RESOURCES.Namespace, name));
  }
});

test('a streamed list and a paged one fill the same cache, and both then follow the watch', async () => {
  const LABEL = 'example.com/informer-mode';
  const names = [0, 1, 2, 3].map((i) => `${NAME}-mode-${i}`);
  const labelled = (name: string) => ({
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name, labels: { [LABEL]: 'yes' } },
  });
  const stopBoth = new AbortController();
  try {
    for (const name of names.slice(0, 3)) await client.apply(labelled(name));
    const [streamed, paged] = (['stream', 'pages'] as const).map((initialList) => {
      const cache = new Informer<KubeObject>(client, RESOURCES.Namespace, {
        log: pino({ level: 'silent' }),
        labelSelector: LABEL,
        initialList,
      });
      void cache.run(stopBoth.signal);
      return cache;
    }) as [Informer<KubeObject>, Informer<KubeObject>];
    await Promise.all([streamed.waitForSync(), paged.waitForSync()]);
    const versions = (cache: Informer<KubeObject>) =>
      Object.fromEntries(
        cache
          .list()
          .filter((o) => o.metadata.deletionTimestamp === undefined)
          .map((o) => [o.metadata.name, o.metadata.resourceVersion]),
      );
    const expected: Record<string, string | undefined> = {};
    for (const n of names.slice(0, 3)) expected[n] = (await fromServer(n)).metadata.resourceVersion;
    assert.deepEqual(versions(streamed), expected, 'streamed: the server state at the start');
    assert.deepEqual(versions(paged), expected, 'paged: the same');
    assert.equal(streamed.live && paged.live, true);

    // After the list, both follow changes: one added, one being deleted.
    await client.apply(labelled(names[3]!));
    await client.delete(objectPath(RESOURCES.Namespace, names[0]!));
    for (const cache of [streamed, paged]) {
      await waitFor('the new namespace', () => cache.get(names[3]!));
      await waitFor(
        'the deletion',
        () =>
          cache.get(names[0]!)?.metadata.deletionTimestamp !== undefined || !cache.get(names[0]!),
      );
    }
  } finally {
    stopBoth.abort();
    for (const name of names) await client.delete(objectPath(RESOURCES.Namespace, name));
  }
});
