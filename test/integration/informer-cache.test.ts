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
