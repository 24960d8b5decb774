import { ERROR_CODES, OperatorError } from '../errors.ts';
import type { CachedRead } from './read-cache.ts';
import type { KubernetesAuth } from './kubernetes-auth.ts';
import type { KvV2 } from './kv.ts';
import type { VaultPolicies } from './policy.ts';
import type { Transit } from './transit.ts';

// Which of the objects the operator keeps in Vault exist, by name, for all
// tenants at once: four LIST requests, however many tenants there are. A
// cached read (read-cache.ts) of an object that the inventory says has
// appeared or gone is read again, so an object deleted behind the
// operator's back is put back at the tenant's next resync, not only once
// its cached answer expires. An edit that keeps the name is seen only then.

export type InventoryKind = 'policy' | 'kubernetesRole' | 'transitKey' | 'kvFolder';

export interface InventorySources {
  policies: VaultPolicies;
  kubernetesAuth: KubernetesAuth;
  kv: KvV2;
  /** The KV folder whose sub-folders are listed ("tenants": tenants/<name>/…). */
  kvFolder: string;
  /** Absent when there are no backups (no Transit mount to list). */
  transit?: Transit;
}

type Listing = Record<InventoryKind, ReadonlySet<string> | undefined>;

export class VaultInventory {
  private readonly sources: InventorySources;
  private readonly maxAgeMs: number;
  private readonly now: () => number;
  private listing: { at: number; names: Listing } | undefined;
  private refreshing: Promise<{ at: number; names: Listing }> | undefined;

  /** `maxAgeMs`: how old a listing may be before the next question lists again. */
  constructor(sources: InventorySources, maxAgeMs: number, now: () => number = Date.now) {
    this.sources = sources;
    this.maxAgeMs = maxAgeMs;
    this.now = now;
  }

  /**
   * Whether a cached answer about an object, read at `readAt`, agrees with
   * the listing. A listing older than the answer proves nothing against it
   * (the operator may have made the object since, as a repair does).
   */
  async agrees(
    kind: InventoryKind,
    name: string,
    cachedExists: boolean,
    readAt: number,
  ): Promise<boolean> {
    const listing = await this.current();
    const names = listing.names[kind];
    if (names === undefined || listing.at < readAt) return true;
    return names.has(name) === cachedExists;
  }

  private async current(): Promise<{ at: number; names: Listing }> {
    if (this.listing && this.now() - this.listing.at < this.maxAgeMs) return this.listing;
    // One listing at a time, however many reconciles ask.
    this.refreshing ??= this.list().finally(() => {
      this.refreshing = undefined;
    });
    return this.refreshing;
  }

  private async list(): Promise<{ at: number; names: Listing }> {
    const at = this.now();
    const { policies, kubernetesAuth, kv, kvFolder, transit } = this.sources;
    // A kind that may not be listed (a policy without `list` on it) is
    // unknown, not empty: an empty set would make every cached answer look
    // stale. Vault not answering fails the listing, and with it the
    // reconciles that asked: a Vault outage is reported, as without a cache.
    const settle = async (list: () => Promise<string[]>) => {
      try {
        return new Set(await list());
      } catch (err: unknown) {
        if (err instanceof OperatorError && err.code === ERROR_CODES.API_FORBIDDEN)
          return undefined;
        throw err;
      }
    };
    const [policy, kubernetesRole, transitKey, kvFolderNames] = await Promise.all([
      settle(() => policies.listPolicies()),
      settle(() => kubernetesAuth.listKubernetesRoles()),
      transit ? settle(() => transit.listKeys()) : Promise.resolve(undefined),
      settle(async () =>
        (await kv.listSecrets(kvFolder))
          .filter((key) => key.endsWith('/'))
          .map((key) => key.slice(0, -1)),
      ),
    ]);
    const names: Listing = { policy, kubernetesRole, transitKey, kvFolder: kvFolderNames };
    this.listing = { at, names };
    return this.listing;
  }
}

/** How a settled tenant's reconcile reads its Vault objects: through the cache, checked by the inventory. */
export interface VaultReads {
  /** How long an answer is trusted (read-cache.ts); 0 reads every time. */
  maxAgeMs: number;
  inventory: VaultInventory | undefined;
}

/** The cached-read options for one object, or undefined (read Vault) without `reads`. */
export function cachedRead<T>(
  reads: VaultReads | undefined,
  kind: InventoryKind,
  name: string,
): CachedRead<T> | undefined {
  if (!reads || reads.maxAgeMs <= 0) return undefined;
  const { inventory } = reads;
  return {
    maxAgeMs: reads.maxAgeMs,
    ...(inventory
      ? {
          fresh: (cached: T | undefined, readAt: number) =>
            inventory.agrees(kind, name, cached !== undefined, readAt),
        }
      : {}),
  };
}
