import assert from 'node:assert/strict';
import { lookup } from 'node:dns/promises';
import { describe, test } from 'node:test';
import { HostResolver } from '../../src/tenant/host-resolver.ts';

// The cache in front of DNS. Lookups go to the real system resolver; the
// wrapper only counts them (and holds a clock the test moves).

function counting() {
  const calls: string[] = [];
  const lookupAll = async (host: string) => {
    calls.push(host);
    return (await lookup(host, { all: true })).map((a) => a.address);
  };
  return { calls, lookupAll };
}

describe('host resolver', () => {
  test('localhost resolves to its loopback addresses, sorted, once for many asks', async () => {
    const { calls, lookupAll } = counting();
    const resolver = new HostResolver({ lookupAll });
    const answers = await Promise.all(
      Array.from({ length: 50 }, () => resolver.resolve('localhost')),
    );
    assert.equal(calls.length, 1, 'concurrent asks share one lookup');
    const first = answers[0];
    assert.ok(first?.ok);
    assert.ok(first.addresses.includes('127.0.0.1'), first.addresses.join(','));
    assert.deepEqual(first.addresses, [...first.addresses].sort());
    for (const answer of answers) assert.deepEqual(answer, first);
    await resolver.resolve('localhost');
    assert.equal(calls.length, 1, 'a fresh answer comes from the cache');
  });

  test('an answer expires after its TTL; a failure sooner', async () => {
    let now = 1_000_000;
    const { calls, lookupAll } = counting();
    const resolver = new HostResolver({
      lookupAll,
      ttlMs: 30_000,
      failureTtlMs: 5_000,
      now: () => now,
    });
    await resolver.resolve('localhost');
    now += 29_000;
    await resolver.resolve('localhost');
    assert.equal(calls.length, 1);
    now += 2_000;
    await resolver.resolve('localhost');
    assert.equal(calls.length, 2, 'looked up again after the TTL');

    const failed = await resolver.resolve('db.invalid');
    assert.deepEqual(failed, { ok: false, error: 'db.invalid does not resolve (no such host)' });
    now += 4_000;
    await resolver.resolve('db.invalid');
    assert.equal(calls.filter((h) => h === 'db.invalid').length, 1);
    now += 2_000;
    await resolver.resolve('db.invalid');
    assert.equal(
      calls.filter((h) => h === 'db.invalid').length,
      2,
      'a failure is retried after its shorter TTL',
    );
  });

  test('refresh looks again at once and tells whether the answer changed', async () => {
    const { calls, lookupAll } = counting();
    const resolver = new HostResolver({ lookupAll });
    const first = await resolver.refresh('localhost');
    assert.equal(first.changed, false, 'nothing to compare with yet');
    const second = await resolver.refresh('localhost');
    assert.equal(second.changed, false);
    assert.equal(calls.length, 2);
    // The same name now failing is a change the caller must act on.
    let broken = false;
    const flaky = new HostResolver({
      lookupAll: async (host) => {
        if (broken) return lookupAll('db.invalid');
        return lookupAll(host);
      },
    });
    await flaky.refresh('localhost');
    broken = true;
    const after = await flaky.refresh('localhost');
    assert.equal(after.changed, true);
    assert.equal(after.resolution.ok, false);
  });

  test('an IP address needs no lookup', async () => {
    const { calls, lookupAll } = counting();
    const resolver = new HostResolver({ lookupAll });
    assert.deepEqual(await resolver.resolve('10.1.2.3'), { ok: true, addresses: ['10.1.2.3'] });
    assert.deepEqual(await resolver.resolve('::1'), { ok: true, addresses: ['::1'] });
    assert.equal(calls.length, 0);
  });
});

describe('a DNS server failing for a moment', () => {
  test('the last good answer is served for a while; a name that is gone is believed', async () => {
    let now = 0;
    let mode: 'ok' | 'timeout' | 'gone' = 'ok';
    const resolver = new HostResolver({
      now: () => now,
      staleMaxMs: 60_000,
      lookupAll: async (host) => {
        if (mode === 'ok') return (await lookup(host, { all: true })).map((a) => a.address);
        if (mode === 'gone')
          return (await lookup('db.invalid', { all: true })).map((a) => a.address);
        // A timeout cannot be made on demand with the system resolver.
        throw Object.assign(new Error(`queryA ETIMEOUT ${host}`), { code: 'ETIMEOUT' });
      },
    });
    const good = await resolver.refresh('localhost');
    assert.ok(good.resolution.ok);
    mode = 'timeout';
    now += 30_000;
    const stale = await resolver.refresh('localhost');
    assert.deepEqual(stale, { resolution: good.resolution, changed: false });
    now += 31_000;
    const expired = await resolver.refresh('localhost');
    assert.equal(expired.resolution.ok, false, 'not past staleMaxMs');
    assert.match(
      expired.resolution.ok ? '' : expired.resolution.error,
      /could not be resolved \(ETIMEOUT\)/,
    );
    mode = 'ok';
    await resolver.refresh('localhost');
    mode = 'gone';
    const gone = await resolver.refresh('localhost');
    assert.equal(gone.resolution.ok, false);
    assert.equal(gone.changed, true);
  });
});
