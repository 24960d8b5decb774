import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { VaultReadCache } from '../../src/vault/read-cache.ts';

// The cache's own rules, with a clock the test moves and reads it counts.
// That the operator's reconcile reads Vault through it, and that drift is
// still repaired, is tested against a real Vault (vault-cache.test.ts).

function clock(start = 1_000_000) {
  let now = start;
  return { now: () => now, advance: (ms: number) => (now += ms) };
}

function counter<T>(answer: () => T | undefined) {
  const reads = { count: 0 };
  const read = () => {
    reads.count += 1;
    return Promise.resolve(answer());
  };
  return { reads, read };
}

describe('Vault read cache', () => {
  test('without options every read asks Vault', async () => {
    const cache = new VaultReadCache();
    const { reads, read } = counter(() => 'a');
    await cache.read('k', undefined, read);
    await cache.read('k', { maxAgeMs: 0 }, read);
    assert.equal(reads.count, 2);
    assert.equal(cache.size, 0);
  });

  test('what `keep` makes of a fresh answer is what is answered and kept', async () => {
    const cache = new VaultReadCache();
    const { reads, read } = counter(() => ({ ca: 'PEM', version: 1 }));
    const shared = { ca: 'the one copy', version: 1 };
    const options = { maxAgeMs: 1000, keep: () => shared };
    assert.equal(await cache.read('k', options, read), shared);
    assert.equal(await cache.read('k', options, read), shared);
    assert.equal(reads.count, 1);
    // Nothing to keep: undefined is answered as it is.
    const missing = counter<{ ca: string }>(() => undefined);
    assert.equal(
      await cache.read('gone', { maxAgeMs: 1000, keep: () => assert.fail('kept') }, missing.read),
      undefined,
    );
  });

  test('an answer is reused until at least 80% of maxAgeMs, and never past it', async () => {
    const time = clock();
    const cache = new VaultReadCache(time.now);
    let value = 'first';
    const { reads, read } = counter(() => value);
    assert.equal(await cache.read('k', { maxAgeMs: 1000 }, read), 'first');
    value = 'second';
    time.advance(799);
    assert.equal(await cache.read('k', { maxAgeMs: 1000 }, read), 'first');
    assert.equal(reads.count, 1);
    time.advance(201);
    assert.equal(await cache.read('k', { maxAgeMs: 1000 }, read), 'second');
    assert.equal(reads.count, 2);
  });

  test('absence is cached too, and a failed freshness check reads again', async () => {
    const cache = new VaultReadCache();
    let value: string | undefined = undefined;
    const { reads, read } = counter(() => value);
    assert.equal(await cache.read('k', { maxAgeMs: 60_000 }, read), undefined);
    value = 'appeared';
    assert.equal(await cache.read('k', { maxAgeMs: 60_000, fresh: () => true }, read), undefined);
    assert.equal(reads.count, 1);
    const seen: (string | undefined)[] = [];
    const answer = await cache.read(
      'k',
      {
        maxAgeMs: 60_000,
        fresh: (cached) => {
          seen.push(cached);
          return false;
        },
      },
      read,
    );
    assert.deepEqual(seen, [undefined], 'the check is shown the cached answer');
    assert.equal(answer, 'appeared');
    assert.equal(reads.count, 2);
  });

  test('a write drops the answer, and a read in flight during a write is not kept', async () => {
    const cache = new VaultReadCache();
    let value = 'old';
    const { reads, read } = counter(() => value);
    await cache.read('k', { maxAgeMs: 60_000 }, read);
    await cache.writing(['k'], () => {
      value = 'new';
      return Promise.resolve();
    });
    assert.equal(await cache.read('k', { maxAgeMs: 60_000 }, read), 'new');
    assert.equal(reads.count, 2);

    // A read that started before a write and ends after it saw the old value.
    let release!: () => void;
    const slow = cache.read('other', { maxAgeMs: 60_000 }, async () => {
      const before = value;
      await new Promise<void>((resolve) => (release = resolve));
      return before;
    });
    await cache.writing(['other'], () => {
      value = 'newer';
      return Promise.resolve();
    });
    release();
    assert.equal(await slow, 'new');
    const { reads: again, read: readAgain } = counter(() => value);
    assert.equal(await cache.read('other', { maxAgeMs: 60_000 }, readAgain), 'newer');
    assert.equal(again.count, 1, 'the answer read across the write was not stored');
  });

  test('a failed write drops the answer as well (it may have taken effect)', async () => {
    const cache = new VaultReadCache();
    const { reads, read } = counter(() => 'x');
    await cache.read('k', { maxAgeMs: 60_000 }, read);
    await assert.rejects(
      cache.writing(['k'], () => Promise.reject(new Error('timeout'))),
      /timeout/,
    );
    await cache.read('k', { maxAgeMs: 60_000 }, read);
    assert.equal(reads.count, 2);
  });

  test('clear() trusts nothing read before', async () => {
    const cache = new VaultReadCache();
    const { reads, read } = counter(() => 'x');
    await cache.read('a', { maxAgeMs: 60_000 }, read);
    await cache.read('b', { maxAgeMs: 60_000 }, read);
    cache.clear();
    assert.equal(cache.size, 0);
    await cache.read('a', { maxAgeMs: 60_000 }, read);
    assert.equal(reads.count, 3);
  });

  test('answers of objects never read again are swept once expired', async () => {
    const time = clock();
    const cache = new VaultReadCache(time.now);
    const { read } = counter(() => 'x');
    for (let i = 0; i < 1000; i++) await cache.read(`old-${i}`, { maxAgeMs: 1000 }, read);
    time.advance(1001);
    for (let i = 0; i < 1048; i++) await cache.read(`new-${i}`, { maxAgeMs: 1000 }, read);
    assert.ok(cache.size <= 1048, `size ${cache.size}: the expired answers went`);
  });
});
