import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';

// Host names to addresses for egress rules (a NetworkPolicy holds addresses,
// never names). Every tenant on a database server needs that server's
// addresses at every reconcile; a resync of 10,000 tenants must not ask DNS
// 10,000 times. So answers are cached for a short TTL, and concurrent asks
// for one name share one lookup.
//
// Invalidation: an answer expires after `ttlMs` (a failure after the shorter
// `failureTtlMs`, so a fixed DNS entry is seen soon); `refresh()` looks again
// at once and replaces the entry, which the DatabaseServer check does on every
// run, so a changed address reaches the cache within one check period and the
// check can requeue that server's tenants.
//
// A name that does not exist (NXDOMAIN, no address) is believed at once: no
// rule is written. A DNS server that is only failing for a moment (timeout,
// SERVFAIL) does not cut tenants off their database: the last good answer is
// served for up to `staleMaxMs` (as RFC 8767 lets resolvers do).

export type Resolution = { ok: true; addresses: string[] } | { ok: false; error: string };

export type LookupAll = (host: string) => Promise<string[]>;

export interface HostResolverOptions {
  ttlMs?: number;
  failureTtlMs?: number;
  staleMaxMs?: number;
  /** The system resolver by default; tests of faults that cannot be made for real pass their own. */
  lookupAll?: LookupAll;
  now?: () => number;
}

interface Entry {
  expiresAt: number;
  answer: Promise<Resolution>;
  /** The last answer with addresses, and when it was had. */
  lastGood?: { addresses: string[]; at: number } | undefined;
}

export const DEFAULT_TTL_MS = 30_000;
export const DEFAULT_FAILURE_TTL_MS = 5_000;
export const DEFAULT_STALE_MAX_MS = 10 * 60_000;

/** Answers that say the name has no address; anything else may pass. */
const DEFINITE_FAILURES = new Set(['ENOTFOUND', 'ENODATA', 'NO_ADDRESS']);

async function systemLookupAll(host: string): Promise<string[]> {
  // getaddrinfo, as the tenant's pods (and node-postgres) would resolve it.
  const answers = await lookup(host, { all: true, order: 'verbatim' });
  return answers.map((answer) => answer.address);
}

export class HostResolver {
  private readonly entries = new Map<string, Entry>();
  private readonly ttlMs: number;
  private readonly failureTtlMs: number;
  private readonly staleMaxMs: number;
  private readonly lookupAll: LookupAll;
  private readonly now: () => number;

  constructor(options: HostResolverOptions = {}) {
    this.ttlMs = options.ttlMs ?? DEFAULT_TTL_MS;
    this.failureTtlMs = options.failureTtlMs ?? DEFAULT_FAILURE_TTL_MS;
    this.staleMaxMs = options.staleMaxMs ?? DEFAULT_STALE_MAX_MS;
    this.lookupAll = options.lookupAll ?? systemLookupAll;
    this.now = options.now ?? Date.now;
  }

  /** The host's addresses, sorted and without duplicates; from the cache while fresh. */
  resolve(host: string): Promise<Resolution> {
    if (isIP(host)) return Promise.resolve({ ok: true, addresses: [host] });
    const entry = this.entries.get(host);
    if (entry && entry.expiresAt > this.now()) return entry.answer;
    return this.start(host);
  }

  /**
   * Looks again now, whatever the cache holds, and tells whether the answer
   * differs from the one it replaces (false when there was none).
   */
  async refresh(host: string): Promise<{ resolution: Resolution; changed: boolean }> {
    if (isIP(host)) return { resolution: { ok: true, addresses: [host] }, changed: false };
    const previous = this.entries.get(host)?.answer;
    const resolution = await this.start(host);
    const before = previous ? await previous : undefined;
    return { resolution, changed: before !== undefined && !sameResolution(before, resolution) };
  }

  /** Drops what is known of `host`, e.g. when the server that named it is gone. */
  forget(host: string): void {
    this.entries.delete(host);
  }

  private start(host: string): Promise<Resolution> {
    const entry: Entry = {
      expiresAt: Number.POSITIVE_INFINITY,
      answer: Promise.resolve({ ok: false, error: '' }),
      lastGood: this.entries.get(host)?.lastGood,
    };
    entry.answer = this.lookupAll(host).then(
      (addresses): Resolution => {
        const unique = [...new Set(addresses)].sort();
        if (unique.length === 0)
          return this.settle(entry, false, { ok: false, error: `${host} resolved to no address` });
        entry.lastGood = { addresses: unique, at: this.now() };
        return this.settle(entry, true, { ok: true, addresses: unique });
      },
      (err: unknown): Resolution => {
        const code = (err as NodeJS.ErrnoException | undefined)?.code ?? '';
        const stale = entry.lastGood;
        if (stale && !DEFINITE_FAILURES.has(code) && this.now() - stale.at <= this.staleMaxMs) {
          // Served stale, and asked again as soon as a failure would be.
          return this.settle(entry, false, { ok: true, addresses: stale.addresses });
        }
        return this.settle(entry, false, { ok: false, error: describeLookupError(host, err) });
      },
    );
    this.entries.set(host, entry);
    return entry.answer;
  }

  /** The clock starts when the answer is in, so a slow lookup does not hand out a stale answer. */
  private settle(entry: Entry, fresh: boolean, resolution: Resolution): Resolution {
    entry.expiresAt = this.now() + (fresh ? this.ttlMs : this.failureTtlMs);
    return resolution;
  }
}

function sameResolution(a: Resolution, b: Resolution): boolean {
  if (a.ok && b.ok) return a.addresses.join(',') === b.addresses.join(',');
  if (!a.ok && !b.ok) return true;
  return false;
}

function describeLookupError(host: string, err: unknown): string {
  const code = (err as NodeJS.ErrnoException | undefined)?.code;
  if (code === 'ENOTFOUND') return `${host} does not resolve (no such host)`;
  if (code === 'EAI_AGAIN') return `${host} could not be resolved (DNS temporarily failing)`;
  return `${host} could not be resolved (${code ?? (err instanceof Error ? err.message : String(err))})`;
}
