import { BoundedMemo } from '../bounded-memo.ts';

// A cached Tenant carries about ten status conditions, and many say the same
// as another tenant's: "Ready, True, Reconciled, tenant is provisioned and
// isolated", at the same second, for every tenant that came up in that
// second. JSON.parse makes each one a new object (72 bytes); the caches keep
// one frozen instance of each distinct condition instead. Its strings are
// already the pooled ones (shared-strings.ts), so the record is what is left.
//
// Equal conditions have the same lastTransitionTime, so the pool is kept by
// that time: the key is the pooled timestamp string the condition already
// holds, and under it the few distinct conditions of that second, compared
// field by field. A key of its own (the record's JSON or a digest of it)
// would cost, for tenants that came one at a time and share nothing, more
// than sharing saves for those that came together.
//
// Frozen, because one instance now belongs to many objects: a write to it
// throws instead of changing another tenant's status.

/** Seconds remembered: ten thousand tenants' transitions and then some. */
const MAX_SECONDS = 50_000;
/** Distinct conditions kept under one second; past that, new ones are not shared. */
const MAX_PER_SECOND = 64;

type Condition = Readonly<Record<string, unknown>>;
const EMPTY: readonly Condition[] = Object.freeze([]);

export class ConditionPool {
  private readonly bySecond: BoundedMemo<readonly Condition[]>;

  constructor(maxSeconds = MAX_SECONDS) {
    this.bySecond = new BoundedMemo<readonly Condition[]>(maxSeconds);
  }

  /** Seconds remembered now. */
  get size(): number {
    return this.bySecond.size;
  }

  /**
   * The pooled instance equal to `condition` (the same fields, each `===`),
   * frozen; `condition` itself, frozen, the first time. A condition without
   * a string lastTransitionTime, or with a nested value, or one more in a
   * second that already holds MAX_PER_SECOND, is answered as it is, neither
   * shared nor frozen.
   */
  share<T extends object>(condition: T): T {
    const record = condition as Condition;
    const time = record.lastTransitionTime;
    if (typeof time !== 'string' || !isFlat(record)) return condition;
    const known = this.bySecond.get(time, () => EMPTY);
    const same = known.find((candidate) => sameFields(candidate, record));
    if (same) return same as T;
    if (known.length >= MAX_PER_SECOND) return condition;
    // A copy one longer, not a push: a pushed array keeps room for 16 more,
    // and most seconds hold a handful of conditions.
    this.bySecond.set(time, known.concat(Object.freeze(record)));
    return condition;
  }

  /** Replaces, in place, each of `object.status.conditions` by its pooled instance. Returns `object`. */
  shareConditions<T extends object>(object: T): T {
    const { status } = object as { status?: { conditions?: unknown } };
    const conditions = status?.conditions;
    if (!Array.isArray(conditions)) return object;
    for (let i = 0; i < conditions.length; i++) {
      const condition: unknown = conditions[i];
      if (condition !== null && typeof condition === 'object')
        conditions[i] = this.share(condition);
    }
    return object;
  }
}

function isFlat(record: Condition): boolean {
  for (const key in record) {
    const value = record[key];
    if (value !== null && typeof value === 'object') return false;
  }
  return true;
}

/** The same own keys, in any order, with `===` values. */
function sameFields(a: Condition, b: Condition): boolean {
  const keys = Object.keys(a);
  if (keys.length !== Object.keys(b).length) return false;
  for (const key of keys) {
    if (!Object.hasOwn(b, key) || a[key] !== b[key]) return false;
  }
  return true;
}

/** The pool every informer cache shares. */
export const cachedConditions = new ConditionPool();
