/**
 * FNV-1a, 32 bits, of a tenant's name: stable across restarts, replicas and
 * versions (it is part of the contract between replicas), cheap for short
 * names. The resync spreads by its low bits (modulo); shards mix it and cut
 * the range from the top (shards.ts), so the two do not line up and one
 * shard's tenants still spread over the whole resync period.
 */
export function nameHash(name: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < name.length; i++) {
    h ^= name.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}
