import { LEASE_NAME } from './leader.ts';
import { nameHash } from './name-hash.ts';

// Which shard a tenant belongs to, what a shard's Lease is called, and how
// many shards a replica may hold. Pure, so every replica computes the same.
//
// A shard is a contiguous range of the 32-bit name hash: shard i of S holds
// [i * 2^32 / S, (i + 1) * 2^32 / S). Ranges rather than a modulo so that
// going from S to 2S splits each range in two (shard i becomes 2i and 2i+1)
// instead of reshuffling every tenant. FNV-1a alone mixes its last byte
// only into the low bits and the top byte's low end: `acme-1` … `acme-9`
// share their top bit, and 43 of 50 such names fell in one of two shards.
// A finalizer (MurmurHash3's fmix32, a bijection) spreads every input bit
// over the top bits first.

/** Upper bound of --shards: each shard is a Lease every replica watches by GET. */
export const MAX_SHARDS = 256;
/** Prefix of the Leases with which replicas announce they are alive (membership.ts). */
export const MEMBER_LEASE_PREFIX = `${LEASE_NAME}-member-`;

const HASH_SPACE = 2 ** 32;

/** MurmurHash3's 32-bit finalizer: each input bit flips each output bit with probability ~1/2. */
function mix(hash: number): number {
  let h = hash;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

export function shardOf(name: string, shards: number): number {
  return Math.floor((mix(nameHash(name)) * shards) / HASH_SPACE);
}

/** One shard keeps today's single leader Lease, so S=1 is the operator as it always was. */
export function shardLeaseName(shard: number, shards: number): string {
  return shards === 1 ? LEASE_NAME : `${LEASE_NAME}-shard-${shard}`;
}

/** At most this many shards per replica, so they spread evenly over the live ones. */
export function fairShare(shards: number, liveReplicas: number): number {
  return Math.ceil(shards / Math.max(1, liveReplicas));
}
