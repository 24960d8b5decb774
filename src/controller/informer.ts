import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { ERROR_CODES, OperatorError, toOperatorError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { collectionPath, type ResourceType } from '../k8s/resources.ts';
import { cachedStrings } from '../k8s/shared-strings.ts';
import { objectKey, type KubeList, type KubeObject } from '../k8s/types.ts';
import { ObjectIndex } from './object-index.ts';

// A list-then-watch cache of one resource type. It never stops on its own:
// a watch the server closes is reopened from the last resourceVersion, an
// expired resourceVersion (410 Gone) triggers a fresh list, and any other
// failure is retried with capped exponential backoff. `live` tells readiness
// whether the cache is actually following the API server right now: the
// watch counts as connected only once the server has accepted it, not while
// it is being attempted.

export type ChangeType = 'ADDED' | 'MODIFIED' | 'DELETED';
export type ChangeHandler<T> = (object: T, change: ChangeType) => void;

export interface InformerOptions<T extends KubeObject = KubeObject> {
  labelSelector?: string;
  /** e.g. metadata.name=X: RBAC that names its objects allows list and watch only so. */
  fieldSelector?: string;
  /** Only this namespace's objects (namespaced kinds); unset: every namespace. */
  namespace?: string;
  /** How long the server keeps one watch open; the informer reopens it after. */
  watchTimeoutSeconds?: number;
  log: Logger;
  onConnectionChange?: (connected: boolean) => void;
  /**
   * What the cache keeps of each object (after managedFields is dropped),
   * as client-go's transform functions: e.g. compactOwnedObject.
   */
  transform?: (object: T) => T;
  /**
   * A second key to find objects by (`byIndex`), for a kind that is looked
   * up by something other than its namespace: TenantBackup records, which
   * are cluster-scoped, by the tenant they belong to. Undefined: not indexed.
   */
  indexBy?: (object: T) => string | undefined;
}

/** What a cache is asked to hold, beyond its kind. */
export type CacheOptions<T extends KubeObject> = Omit<
  InformerOptions<T>,
  'log' | 'onConnectionChange'
>;

/** Kept short: after an outage the caches should follow again within seconds. */
const MAX_BACKOFF_MS = 5_000;
/**
 * A disconnect shorter than this does not make the operator unready: enough
 * to reopen a watch the server closed (or relist after a 410), not enough to
 * hide an outage.
 */
const LIVENESS_GRACE_MS = 1_500;
const PAGE_SIZE = 500;

export class Informer<T extends KubeObject> {
  readonly type: ResourceType;
  private readonly client: KubeClient;
  private readonly options: InformerOptions<T>;
  /** By namespace, then name: "what is in this tenant's namespace" without a scan. */
  private readonly store = new ObjectIndex<T>();
  /** indexBy's value, then objectKey: kept in step with the store by put and remove. */
  private readonly indexed = new Map<string, Map<string, T>>();
  private readonly handlers: ChangeHandler<T>[] = [];
  private resourceVersion: string | undefined;
  private synced = false;
  private connected = false;
  private disconnectedSince = Date.now();
  private syncWaiters: (() => void)[] = [];

  constructor(client: KubeClient, type: ResourceType, options: InformerOptions<T>) {
    this.client = client;
    this.type = type;
    this.options = options;
  }

  onChange(handler: ChangeHandler<T>): void {
    this.handlers.push(handler);
  }

  /** The cached object of that name (and namespace, for a namespaced kind). */
  get(name: string, namespace?: string): T | undefined {
    return this.store.get(name, namespace);
  }

  /**
   * Records an object the operator just wrote, so the next reconcile does not
   * act on the stale copy before the watch delivers the change.
   */
  upsert(object: T): void {
    this.put(this.cacheable(object));
  }

  private put(object: T): void {
    this.unindex(object);
    this.store.set(object);
    const value = this.options.indexBy?.(object);
    if (value === undefined) return;
    let objects = this.indexed.get(value);
    if (!objects) this.indexed.set(value, (objects = new Map<string, T>()));
    objects.set(objectKey(object), object);
  }

  private remove(object: T): void {
    this.unindex(object);
    this.store.delete(object.metadata.name, object.metadata.namespace);
  }

  /** Drops the cached copy of `object` (by name, as it may have moved) from the index. */
  private unindex(object: T): void {
    if (!this.options.indexBy) return;
    const cached = this.store.get(object.metadata.name, object.metadata.namespace);
    if (!cached) return;
    const value = this.options.indexBy(cached);
    if (value === undefined) return;
    const objects = this.indexed.get(value);
    objects?.delete(objectKey(cached));
    if (objects?.size === 0) this.indexed.delete(value);
  }

  /** The cached objects whose `indexBy` is `value`; throws if the informer has no index. */
  byIndex(value: string): T[] {
    if (!this.options.indexBy) throw new Error(`the ${this.type.plural} informer has no index`);
    return [...(this.indexed.get(value)?.values() ?? [])];
  }

  /** The cached objects of one namespace. */
  inNamespace(namespace: string): T[] {
    return this.store.inNamespace(namespace);
  }

  /**
   * What the cache keeps of an object: all but metadata.managedFields, which
   * the operator never reads and which is often the largest part of an
   * object (one entry per field manager). apiVersion and kind are set, as
   * list items come without them. Its strings are the pooled copies
   * (shared-strings.ts): ten thousand tenants repeat the same values.
   */
  private cacheable(object: T): T {
    // Left out by destructuring, not `delete`: an object that lost a
    // property becomes a slow dictionary, twice the size.
    const { managedFields, ...metadata } = object.metadata;
    const kept = { ...object, apiVersion: this.type.apiVersion, kind: this.type.kind, metadata };
    return cachedStrings.shareAll(this.options.transform ? this.options.transform(kept) : kept);
  }

  list(): T[] {
    return this.store.values();
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  /** Synced, and its watch open now or lost only a moment ago. */
  get live(): boolean {
    return (
      this.synced && (this.connected || Date.now() - this.disconnectedSince < LIVENESS_GRACE_MS)
    );
  }

  waitForSync(): Promise<void> {
    if (this.synced) return Promise.resolve();
    return new Promise((resolve) => this.syncWaiters.push(resolve));
  }

  async run(signal: AbortSignal): Promise<void> {
    let failures = 0;
    let needList = true;
    while (!signal.aborted) {
      try {
        if (needList) {
          await this.relist(signal);
          needList = false;
        }
        await this.watchOnce(signal);
        failures = 0;
      } catch (thrown: unknown) {
        this.setConnected(false);
        if (signal.aborted) break;
        const err = toOperatorError(thrown);
        if (err.code === ERROR_CODES.API_GONE) {
          this.options.log.info(
            { resource: this.type.plural, err: err.message },
            'resourceVersion expired; listing again',
          );
          needList = true;
          continue;
        }
        failures++;
        const delay = Math.min(MAX_BACKOFF_MS, 250 * 2 ** Math.min(failures, 8));
        this.options.log.warn(
          { resource: this.type.plural, err: err.message, retryInMs: delay },
          'watch failed; retrying',
        );
        await sleep(delay, undefined, { signal }).catch(() => undefined);
      }
    }
    this.setConnected(false);
  }

  private setConnected(connected: boolean): void {
    if (this.connected === connected) return;
    this.connected = connected;
    if (!connected) this.disconnectedSince = Date.now();
    this.options.onConnectionChange?.(connected);
  }

  private collection(): string {
    return collectionPath(this.type, this.options.namespace);
  }

  private async relist(signal: AbortSignal): Promise<void> {
    const fresh = new Map<string, T>();
    let continueToken: string | undefined;
    let listVersion = '';
    do {
      const page = await this.client.request<KubeList<T>>('GET', this.collection(), {
        query: {
          labelSelector: this.options.labelSelector,
          fieldSelector: this.options.fieldSelector,
          limit: PAGE_SIZE,
          continue: continueToken,
        },
        signal,
      });
      for (const item of page.items) fresh.set(objectKey(item), this.cacheable(item));
      continueToken = page.metadata.continue || undefined;
      listVersion = page.metadata.resourceVersion;
    } while (continueToken);

    const previous = new Map(this.store.values().map((object) => [objectKey(object), object]));
    this.store.clear();
    this.indexed.clear();
    for (const object of fresh.values()) this.put(object);
    this.resourceVersion = listVersion;
    for (const [key, object] of fresh) {
      const before = previous.get(key);
      if (!before) this.emit(object, 'ADDED');
      else if (before.metadata.resourceVersion !== object.metadata.resourceVersion)
        this.emit(object, 'MODIFIED');
    }
    for (const [key, object] of previous) if (!fresh.has(key)) this.emit(object, 'DELETED');
    if (!this.synced) {
      this.synced = true;
      for (const resolve of this.syncWaiters.splice(0)) resolve();
    }
  }

  private async watchOnce(signal: AbortSignal): Promise<void> {
    const timeout = this.options.watchTimeoutSeconds ?? 240 + Math.floor(Math.random() * 60);
    const events = await this.client.watch<T>(
      this.collection(),
      {
        labelSelector: this.options.labelSelector,
        fieldSelector: this.options.fieldSelector,
        resourceVersion: this.resourceVersion,
        allowWatchBookmarks: true,
        timeoutSeconds: timeout,
      },
      signal,
    );
    this.setConnected(true);
    for await (const event of events) {
      if (event.type === 'ERROR') {
        const status = event.object as { code?: number; message?: string };
        const code = status.code === 410 ? ERROR_CODES.API_GONE : ERROR_CODES.API_ERROR;
        throw new OperatorError(
          code,
          `watch ${this.type.plural}: ${status.message ?? 'error event'}`,
        );
      }
      const received = event.object as T;
      if (received.metadata.resourceVersion)
        this.resourceVersion = received.metadata.resourceVersion;
      if (event.type === 'BOOKMARK') continue;
      const object = this.cacheable(received);
      if (event.type === 'DELETED') this.remove(object);
      else this.put(object);
      this.emit(object, event.type);
    }
  }

  private emit(object: T, change: ChangeType): void {
    for (const handler of this.handlers) {
      try {
        handler(object, change);
      } catch (err: unknown) {
        this.options.log.error({ err: toOperatorError(err).message }, 'informer handler failed');
      }
    }
  }
}
