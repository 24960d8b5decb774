import assert from 'node:assert/strict';
import { test } from 'node:test';
import { memberLeaseName } from '../../src/controller/membership.ts';
import { nameHash } from '../../src/controller/name-hash.ts';
import { slotOf } from '../../src/controller/resync.ts';
import {
  fairShare,
  MEMBER_LEASE_PREFIX,
  shardLeaseName,
  shardOf,
} from '../../src/controller/shards.ts';

// Which replica reconciles a tenant follows from these alone: every replica
// must compute the same, release after release.

const names = Array.from({ length: 20_000 }, (_, i) => `tenant-${i}`);

test('the name hash is FNV-1a: fixed values, so replicas of different versions agree', () => {
  assert.equal(nameHash(''), 0x811c9dc5);
  assert.equal(nameHash('a'), 0xe40c292c);
  assert.equal(nameHash('foobar'), 0xbf9cf968);
});

test('each tenant is in exactly one shard, in range, and the shards are about even', () => {
  for (const shards of [1, 2, 3, 16, 256]) {
    const counts = new Array<number>(shards).fill(0);
    for (const name of names) {
      const shard = shardOf(name, shards);
      assert.ok(Number.isInteger(shard) && shard >= 0 && shard < shards, `${name}: ${shard}`);
      counts[shard] = (counts[shard] ?? 0) + 1;
    }
    const even = names.length / shards;
    for (const count of counts) assert.ok(Math.abs(count - even) < even * 0.25 + 10, counts.join());
  }
});

test('names that differ only in their last characters still spread over the shards', () => {
  for (const prefix of ['k', 'kmxc2d1jc-', 'acme-', 'customer-0']) {
    const batch = Array.from({ length: 50 }, (_, i) => `${prefix}${i}`);
    const inFirst = batch.filter((name) => shardOf(name, 2) === 0).length;
    assert.ok(inFirst >= 15 && inFirst <= 35, `${prefix}*: ${inFirst} of 50 in shard 0`);
    const ofFour = new Set(batch.map((name) => shardOf(name, 4)));
    assert.equal(ofFour.size, 4, `${prefix}*: every one of four shards used`);
  }
});

test('doubling the shards splits each range in two: shard i becomes 2i or 2i+1', () => {
  for (const shards of [1, 2, 8]) {
    for (const name of names.slice(0, 2_000)) {
      assert.equal(Math.floor(shardOf(name, 2 * shards) / 2), shardOf(name, shards), name);
    }
  }
});

test("a shard's tenants still spread over the resync period (ranges and slots do not line up)", () => {
  const shardZero = names.filter((name) => shardOf(name, 2) === 0);
  const slots = new Set(shardZero.map((name) => slotOf(name, 300)));
  assert.equal(slots.size, 300);
});

test('one shard keeps the single leader Lease; more get one Lease each', () => {
  assert.equal(shardLeaseName(0, 1), 'tenant-operator');
  assert.equal(shardLeaseName(0, 4), 'tenant-operator-shard-0');
  assert.equal(shardLeaseName(3, 4), 'tenant-operator-shard-3');
});

test('the fair share is ceil(shards / live replicas), and all of them for a lone replica', () => {
  assert.equal(fairShare(16, 1), 16);
  assert.equal(fairShare(16, 3), 6);
  assert.equal(fairShare(2, 2), 1);
  assert.equal(fairShare(2, 5), 1);
  assert.equal(fairShare(3, 2), 2);
  // No replica counted (cannot happen: a replica counts itself) still leaves one.
  assert.equal(fairShare(4, 0), 4);
  // Shares add up to at least every shard, whatever the count.
  for (let live = 1; live <= 20; live++) assert.ok(fairShare(16, live) * live >= 16);
});

test("a replica's member Lease name is a valid object name, whatever its identity", () => {
  assert.equal(
    memberLeaseName('tenant-operator-7d9f-abc'),
    `${MEMBER_LEASE_PREFIX}tenant-operator-7d9f-abc`,
  );
  assert.equal(memberLeaseName('Host_Name:1234'), `${MEMBER_LEASE_PREFIX}host-name-1234`);
  assert.equal(memberLeaseName('--'), `${MEMBER_LEASE_PREFIX}replica`);
  assert.ok(memberLeaseName('x'.repeat(400)).length <= 253);
  for (const identity of ['a', 'Host_Name:1234', 'x.y-z', '__', 'é']) {
    assert.match(memberLeaseName(identity), /^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/, identity);
  }
});
