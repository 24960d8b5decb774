// Six of the eight objects a tenant gets carry the same two labels:
// managed-by tenant-operator, and the tenant's name. JSON.parse makes each
// map a new object (40 bytes); the compact caches keep one frozen map per
// distinct pair of labels instead: 70,000 maps become 10,000 at 10,000
// tenants. The values are already the pooled strings (shared-strings.ts).
//
// Only maps of one or two labels are shared: a namespace's seven labels
// include the tenant's uid and are never the same twice. They are found by
// nested Maps keyed by the strings the map already holds (first label's
// name and value, then the second's), so a shared map costs one Map entry
// and no key of its own.
//
// Frozen, because one instance now belongs to many objects: a write to it
// throws instead of relabelling another tenant's objects.

/** Enough for the label maps of ten thousand tenants and then some. */
const MAX_ENTRIES = 50_000;

type Labels = Readonly<Record<string, string>>;
type Level<T> = Map<string, T>;

export class LabelPool {
  /** name → value → the map with that one label. */
  private single: Level<unknown> = new Map();
  /** first name → first value → second name → second value → the map. */
  private pairs: Level<unknown> = new Map();
  private entries = 0;
  private readonly maxEntries: number;

  constructor(maxEntries = MAX_ENTRIES) {
    this.maxEntries = maxEntries;
  }

  get size(): number {
    return this.entries;
  }

  /**
   * The pooled map equal to `labels` (the same labels in the same order),
   * frozen; `labels` itself, frozen, the first time. A map of more than two
   * labels, or with a value that is not a string, is answered unchanged.
   */
  share<T extends Record<string, string>>(labels: T): T {
    const names = Object.keys(labels);
    if (names.length === 0 || names.length > 2) return labels;
    const values = names.map((name) => labels[name]);
    if (!values.every((value) => typeof value === 'string')) return labels;
    const path = names.flatMap((name, i) => [name, values[i]!]);
    const key = path.pop()!;
    const known = this.leaf(names.length, path, false)?.get(key);
    if (known) return known as T;
    if (this.entries >= this.maxEntries) this.startOver();
    this.leaf(names.length, path, true)!.set(key, Object.freeze(labels));
    this.entries += 1;
    return labels;
  }

  /** The Map that holds the maps of this many labels under `path`; made as needed when `create`. */
  private leaf(count: number, path: string[], create: boolean): Level<Labels> | undefined {
    let level: Level<unknown> = count === 1 ? this.single : this.pairs;
    for (const step of path) {
      let next = level.get(step) as Level<unknown> | undefined;
      if (next === undefined) {
        if (!create) return undefined;
        level.set(step, (next = new Map()));
      }
      level = next;
    }
    return level as Level<Labels>;
  }

  private startOver(): void {
    this.single = new Map();
    this.pairs = new Map();
    this.entries = 0;
  }
}

/** The pool the compact caches share. */
export const cachedLabels = new LabelPool();
