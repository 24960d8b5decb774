import assert from 'node:assert/strict';
import { test } from 'node:test';
import { ObjectIndex } from '../../src/controller/object-index.ts';
import type { KubeObject } from '../../src/k8s/types.ts';

// The informer's store: by namespace, then name, with small namespaces kept
// as arrays and large ones as Maps; both must answer the same.

const object = (name: string, namespace?: string, version = '1'): KubeObject => ({
  apiVersion: 'v1',
  kind: 'ConfigMap',
  metadata: { name, ...(namespace ? { namespace } : {}), resourceVersion: version },
});

test('objects are found by name and namespace, replaced in place, and deleted', () => {
  const index = new ObjectIndex<KubeObject>();
  index.set(object('a', 'ns1'));
  index.set(object('a', 'ns2'));
  index.set(object('cluster-wide'));
  index.set(object('a', 'ns1', '2'));
  assert.equal(index.size, 3);
  assert.equal(index.get('a', 'ns1')?.metadata.resourceVersion, '2');
  assert.equal(index.get('a', 'ns2')?.metadata.resourceVersion, '1');
  assert.equal(index.get('cluster-wide', undefined)?.metadata.name, 'cluster-wide');
  assert.equal(index.get('a', undefined), undefined);
  assert.deepEqual(
    index.inNamespace('ns1').map((o) => o.metadata.name),
    ['a'],
  );
  index.delete('a', 'ns1');
  index.delete('missing', 'ns1');
  assert.equal(index.size, 2);
  assert.deepEqual(index.inNamespace('ns1'), []);
  assert.equal(index.get('a', 'ns1'), undefined);
});

test('a namespace that outgrows its array keeps every object, and shrinks back to empty', () => {
  const index = new ObjectIndex<KubeObject>();
  const names = Array.from({ length: 50 }, (_, i) => `o${i}`);
  for (const name of names) index.set(object(name, 'big'));
  index.set(object('o7', 'big', '9'));
  assert.equal(index.size, 50);
  assert.equal(index.get('o7', 'big')?.metadata.resourceVersion, '9');
  assert.deepEqual(
    index
      .inNamespace('big')
      .map((o) => o.metadata.name)
      .sort(),
    [...names].sort(),
  );
  assert.equal(index.values().length, 50);
  for (const name of names) index.delete(name, 'big');
  assert.equal(index.size, 0);
  assert.deepEqual(index.values(), []);
  index.clear();
  assert.equal(index.size, 0);
});
