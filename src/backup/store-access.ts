import { backupStoreSpecSchema, type BackupStoreSpec } from '../api/backupstore.ts';
import { describeIssues } from '../api/validate.ts';
import type { Informer } from '../controller/informer.ts';
import { ERROR_CODES, OperatorError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { objectPath, RESOURCES } from '../k8s/resources.ts';
import type { KubeObject } from '../k8s/types.ts';
import { openStore } from './store-factory.ts';
import { selectStore } from './store-selection.ts';
import type { BackupObjectStore } from './store.ts';

// The operator's way to its BackupStores: which store a tenant's backups go
// to (from the watched BackupStores, no request), and a client for a store,
// kept while the store's spec is unchanged and for a while after, so that
// retention and verification of many tenants do not read the credentials
// Secret and open a connection pool each time.

export interface BackupStoreObject extends KubeObject {
  spec?: unknown;
}

export type StoreChoice = { name: string; spec: BackupStoreSpec } | { problem: string };

/** Credentials can be rotated in their Secret: a client is rebuilt this often. */
const CLIENT_MAX_AGE_MS = 10 * 60_000;

interface CachedStore {
  resourceVersion: string | undefined;
  openedAt: number;
  store: BackupObjectStore;
}

function hasDestroy(store: BackupObjectStore): store is BackupObjectStore & { destroy(): void } {
  return typeof (store as { destroy?: unknown }).destroy === 'function';
}

export class StoreAccess {
  private readonly kube: KubeClient;
  private readonly namespace: string;
  private readonly stores: Informer<BackupStoreObject>;
  private readonly open = new Map<string, CachedStore>();

  constructor(kube: KubeClient, namespace: string, stores: Informer<BackupStoreObject>) {
    this.kube = kube;
    this.namespace = namespace;
    this.stores = stores;
  }

  /** Every store whose spec parses, for the backup job's Secrets Role. */
  validSpecs(): BackupStoreSpec[] {
    return this.stores
      .list()
      .map((s) => backupStoreSpecSchema.safeParse(s.spec ?? {}))
      .flatMap((parsed) => (parsed.success ? [parsed.data] : []));
  }

  /** Every store's name (a purge looks in all of them, whatever the region). */
  names(): string[] {
    return this.stores.list().map((s) => s.metadata.name);
  }

  /** The store a tenant of `region` backs up to, or why there is none. */
  choose(region: string | undefined): StoreChoice {
    const candidates = this.stores.list().flatMap((item) => {
      const parsed = backupStoreSpecSchema.safeParse(item.spec ?? {});
      return parsed.success
        ? [
            {
              name: item.metadata.name,
              region: parsed.data.region,
              isDefault: parsed.data.default,
              spec: parsed.data,
            },
          ]
        : [];
    });
    try {
      const chosen = selectStore(candidates, region);
      return { name: chosen.name, spec: chosen.spec };
    } catch (err: unknown) {
      return { problem: (err as Error).message };
    }
  }

  /** A client for the named store. */
  async get(name: string): Promise<BackupObjectStore> {
    const object = this.stores.get(name);
    if (!object)
      throw new OperatorError(ERROR_CODES.INVALID_SPEC, `BackupStore ${name} does not exist`);
    const cached = this.open.get(name);
    if (
      cached &&
      cached.resourceVersion === object.metadata.resourceVersion &&
      Date.now() - cached.openedAt < CLIENT_MAX_AGE_MS
    )
      return cached.store;
    const parsed = backupStoreSpecSchema.safeParse(object.spec ?? {});
    if (!parsed.success)
      throw new OperatorError(
        ERROR_CODES.INVALID_SPEC,
        `BackupStore ${name}: ${describeIssues(parsed.error, 'spec')}`,
      );
    const store = await openStore(parsed.data, (secret) => this.readSecret(name, secret));
    if (cached && hasDestroy(cached.store)) cached.store.destroy();
    this.open.set(name, {
      resourceVersion: object.metadata.resourceVersion,
      openedAt: Date.now(),
      store,
    });
    return store;
  }

  private async readSecret(store: string, name: string): Promise<Record<string, string>> {
    const secret = await this.kube.get<KubeObject & { data?: Record<string, string> }>(
      objectPath(RESOURCES.Secret, name, this.namespace),
    );
    if (!secret)
      throw new OperatorError(
        ERROR_CODES.INVALID_SPEC,
        `BackupStore ${store}: Secret ${this.namespace}/${name} does not exist`,
      );
    return Object.fromEntries(
      Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
    );
  }

  close(): void {
    for (const { store } of this.open.values()) if (hasDestroy(store)) store.destroy();
    this.open.clear();
  }
}
