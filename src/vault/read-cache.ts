// Answers of Vault reads, kept so that a settled tenant's resync does not
// read every one of its Vault objects again. Vault has no watch, so an
// answer is trusted only for a while (`maxAgeMs`, shortened at random by up
// to a fifth so that objects read in one burst are not all read again in
// the next), and only as long as a cheaper check agrees (`fresh`: e.g. the
// object is still in a fleet-wide listing, or the secret's current version
// is still the one cached). Every write this process makes to an object
// drops that object's answers (the wrappers in this directory call
// `writing`), and a write made while a read was in flight keeps that read
// out of the cache: what is cached never predates our own last write.
//
// Only the reconcile of settled tenants reads through the cache; the purge,
// the backup jobs and every check-before-write of a change read Vault.

export interface CachedRead<T> {
  /** An answer younger than this is used without asking Vault; 0 asks every time. */
  maxAgeMs: number;
  /** A cheaper check of a cached answer, read at `readAt` (ms): false reads Vault again. */
  fresh?: (cached: T | undefined, readAt: number) => boolean | Promise<boolean>;
  /**
   * What is kept of a fresh answer (and answered): e.g. the answer with its
   * certificate replaced by the one copy a thousand answers share.
   */
  keep?: (answer: T) => T;
}

interface Entry {
  value: unknown;
  /** When the read that gave it started. */
  readAt: number;
  expiresAt: number;
}

/** The shortest share of maxAgeMs an answer is kept: the rest is random spread. */
const MIN_LIFETIME_SHARE = 0.8;
const SWEEP_EVERY = 1024;

export class VaultReadCache {
  private readonly entries = new Map<string, Entry>();
  /** Bumped by every forget(): a read that saw it change does not store. */
  private writes = 0;
  private stores = 0;
  private readonly now: () => number;

  constructor(now: () => number = Date.now) {
    this.now = now;
  }

  /** `key` names one object's answer (a wrapper builds it); `read` asks Vault. */
  async read<T>(
    key: string,
    options: CachedRead<T> | undefined,
    read: () => Promise<T | undefined>,
  ): Promise<T | undefined> {
    if (!options || options.maxAgeMs <= 0) return read();
    const entry = this.entries.get(key);
    if (entry && entry.expiresAt > this.now()) {
      const value = entry.value as T | undefined;
      if (!options.fresh || (await options.fresh(value, entry.readAt))) return value;
    }
    const writesBefore = this.writes;
    const readAt = this.now();
    const answer = await read();
    const value = answer !== undefined && options.keep ? options.keep(answer) : answer;
    if (this.writes === writesBefore) {
      const lifetime =
        options.maxAgeMs * (MIN_LIFETIME_SHARE + (1 - MIN_LIFETIME_SHARE) * Math.random());
      this.entries.set(key, { value, readAt, expiresAt: readAt + lifetime });
      this.sweepNow();
    } else {
      this.entries.delete(key);
    }
    return value;
  }

  /**
   * A write to the objects `keys` name: their answers are dropped before it
   * (reads in flight will not store) and after it (reads that ended while it
   * ran are not kept either), whether it succeeds or not.
   */
  async writing<R>(keys: readonly string[], write: () => Promise<R>): Promise<R> {
    this.forget(keys);
    try {
      return await write();
    } finally {
      this.forget(keys);
    }
  }

  private forget(keys: readonly string[]): void {
    this.writes += 1;
    for (const key of keys) this.entries.delete(key);
  }

  /** Trusts nothing read before now (a replica that becomes leader). */
  clear(): void {
    this.writes += 1;
    this.entries.clear();
  }

  /** Every so many stores, answers past their time go (those of objects never read again). */
  private sweepNow(): void {
    this.stores += 1;
    if (this.stores % SWEEP_EVERY !== 0) return;
    const now = this.now();
    for (const [key, entry] of this.entries) if (entry.expiresAt <= now) this.entries.delete(key);
  }

  get size(): number {
    return this.entries.size;
  }
}
