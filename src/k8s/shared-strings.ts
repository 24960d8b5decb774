import { BoundedMemo } from '../bounded-memo.ts';
import { DIGEST } from './compact-object.ts';

// Ten thousand cached tenants repeat the same few hundred strings tens of
// thousands of times: label values ("tenant-operator", "restricted"),
// condition types, reasons and messages, finalizers, a tenant's name in the
// labels of each of its objects. JSON.parse makes a new copy of every value
// it reads, so each copy costs its bytes again (about 5 KiB a tenant). The
// caches keep one copy instead: every string value of a cached object is
// looked up in a pool and replaced by the pool's instance.
//
// What is never shared is not pooled: uids, resourceVersions, an object's
// own timestamps and digests. The pool is bounded; when it is full it starts
// over, which costs the sharing of objects cached from then on, never
// correctness (a string is equal to its pooled copy).

/** Longer values (a rare long message, a certificate) are not worth a lookup. */
const MAX_POOLED_LENGTH = 256;
/** About 8 MiB of entries at most; enough for every shared value of 10,000 tenants. */
const MAX_ENTRIES = 100_000;
/** Fields whose values are unique to one object: pooling them would only fill the pool. */
const UNIQUE_FIELDS = new Set([
  'uid',
  'resourceVersion',
  'creationTimestamp',
  'deletionTimestamp',
  // A compact object's digest (compact-object.ts): 80,000 distinct values at 10,000 tenants.
  DIGEST,
]);

export class StringPool {
  /** A string's pooled copy, by its content. */
  private readonly pool: BoundedMemo<string>;
  private readonly maxLength: number;

  /** `maxLength`: longer values are not pooled (a pool of certificates takes them all). */
  constructor(maxEntries = MAX_ENTRIES, maxLength = MAX_POOLED_LENGTH) {
    this.pool = new BoundedMemo<string>(maxEntries);
    this.maxLength = maxLength;
  }

  get size(): number {
    return this.pool.size;
  }

  share(value: string): string {
    if (value.length > this.maxLength) return value;
    return this.pool.get(value, () => value);
  }

  /**
   * Replaces, in place, every string value of `object` (nested objects and
   * arrays included) by its pooled copy, except values that are unique per
   * object (UNIQUE_FIELDS). Returns the same object. For objects the caller owns (an
   * informer's fresh copy), never for one someone else still holds.
   */
  shareAll<T extends object>(object: T): T {
    this.walk(object as Record<string, unknown>);
    return object;
  }

  private walk(node: Record<string, unknown> | unknown[]): void {
    // Frozen: a value already shared by many objects (a condition, a label
    // map, a Tenant's spec part: shared-conditions.ts, shared-labels.ts,
    // shared-records.ts). One instance whatever its strings; and a write to
    // it would throw.
    if (Object.isFrozen(node)) return;
    if (Array.isArray(node)) {
      for (let i = 0; i < node.length; i++) node[i] = this.visit(node[i]);
      return;
    }
    for (const key of Object.keys(node)) {
      if (!UNIQUE_FIELDS.has(key)) node[key] = this.visit(node[key]);
    }
  }

  private visit(value: unknown): unknown {
    if (typeof value === 'string') return this.share(value);
    if (value !== null && typeof value === 'object') this.walk(value as Record<string, unknown>);
    return value;
  }
}

/** The pool every informer cache shares: a tenant's name is one string in all its objects. */
export const cachedStrings = new StringPool();
