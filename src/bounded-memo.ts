// Answers that depend only on their key, remembered: the few pure
// computations that every reconcile repeats with the same inputs (a cron
// schedule's check, the platform's egress blocks) and the caches' pooled
// strings. Bounded, because tenants choose some of the keys: when full it
// starts over, which costs a recomputation, never a wrong answer.

export class BoundedMemo<V> {
  private readonly answers = new Map<string, V>();
  private readonly maxEntries: number;

  constructor(maxEntries: number) {
    this.maxEntries = maxEntries;
  }

  /** Answers remembered now. */
  get size(): number {
    return this.answers.size;
  }

  /** Replaces the answer for `key` (a memo whose answers grow, kept as values that never change). */
  set(key: string, answer: V): void {
    if (!this.answers.has(key) && this.answers.size >= this.maxEntries) this.answers.clear();
    this.answers.set(key, answer);
  }

  /** The answer for `key`, computed by `compute` the first time. */
  get(key: string, compute: () => V): V {
    const known = this.answers.get(key);
    if (known !== undefined) return known;
    const answer = compute();
    if (this.answers.size >= this.maxEntries) this.answers.clear();
    this.answers.set(key, answer);
    return answer;
  }
}
