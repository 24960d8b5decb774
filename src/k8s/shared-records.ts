import { BoundedMemo } from '../bounded-memo.ts';

// Most Tenants leave most of their spec to the defaults the CRD writes in:
// the same quota, backup schedule, credentials rotation, retention and
// network allowances, ten thousand times, each a new object from JSON.parse
// (about 400 bytes a Tenant with their empty lists). The Tenant cache keeps
// one frozen instance of each distinct value of those parts instead.
//
// A part is keyed by its JSON: a key per distinct value, and defaults are
// few. Only parts made of plain values (strings, numbers, booleans, lists of
// those) are shared; a list of objects (owners) differs per tenant and
// stays its own.
//
// Frozen, lists included, because one instance now belongs to many
// Tenants: a write to it throws instead of changing another tenant's spec.

/** Distinct parts remembered; a tenant that writes its own values only adds one each. */
const MAX_ENTRIES = 20_000;

export class RecordPool {
  private readonly pool: BoundedMemo<object>;

  constructor(maxEntries = MAX_ENTRIES) {
    this.pool = new BoundedMemo<object>(maxEntries);
  }

  get size(): number {
    return this.pool.size;
  }

  /**
   * The pooled instance equal to `record` (same JSON), frozen with its lists;
   * `record` itself, frozen, the first time. A record holding objects, or
   * lists of objects, is answered unchanged.
   */
  share<T extends object>(record: T): T {
    if (Array.isArray(record) || !isPlainRecord(record)) return record;
    return this.pool.get(JSON.stringify(record), () => deepFreeze(record)) as T;
  }

  /** Replaces, in place, each object-valued field of `parent` by its pooled instance. Returns `parent`. */
  shareFields<T extends object>(parent: T): T {
    const fields = parent as Record<string, unknown>;
    for (const key of Object.keys(fields)) {
      const value = fields[key];
      if (value !== null && typeof value === 'object' && !Array.isArray(value))
        fields[key] = this.share(value);
    }
    return parent;
  }
}

/** Every value a string, number, boolean or null, or a list of those. */
function isPlainRecord(record: object): boolean {
  for (const value of Object.values(record)) {
    if (Array.isArray(value)) {
      if (!value.every((item) => item === null || typeof item !== 'object')) return false;
    } else if (value !== null && typeof value === 'object') return false;
  }
  return true;
}

function deepFreeze<T extends object>(record: T): T {
  for (const value of Object.values(record)) if (Array.isArray(value)) Object.freeze(value);
  return Object.freeze(record);
}

/** The pool of the Tenant cache's spec parts. */
export const cachedSpecParts = new RecordPool();
