import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { ERROR_CODES, OperatorError, toOperatorError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { collectionPath, type ResourceType } from '../k8s/resources.ts';
import { cachedStrings } from '../k8s/shared-strings.ts';
import { cachedConditions } from '../k8s/shared-conditions.ts';
import { cachedLabels } from '../k8s/shared-labels.ts';
import { objectKey, type KubeList, type KubeObject } from '../k8s/types.ts';
import { ObjectIndex } from './object-index.ts';

// A list-then-watch cache of one resource type. The list comes as the
// first events of the watch (sendInitialEvents, served from the API
// server's watch cache), or, where the server does not offer that, in pages
// before the watch. At 12,000 tenants, alone on the API server, the
// Tenants came streamed in 3.2 s (48,000 NetworkPolicies in 2.7 s); in
// pages of 500, each page took 0.3 s (the server reads and decodes them
// from etcd), one after another. A single list without pages would hold a
// 50 MiB answer in memory at once. It never stops on its own:
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
  /**
   * How the cache is filled: 'stream' (default) asks the watch itself for
   * the current state (`sendInitialEvents`, the API server's WatchList),
   * and falls back to 'pages' if the server refuses; 'pages' lists in
   * pages first. Tests choose each to cover both.
   */
  initialList?: 'stream' | 'pages';
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
/** The annotation of the bookmark that ends a streamed list. */
const INITIAL_EVENTS_END = 'k8s.io/initial-events-end';

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
  /** The cache must be filled afresh (at start, and after a 410 Gone). */
  private needsList = true;
  /** Lists as the first events of the watch; false once the server refused. */
  private streamingList: boolean;
  private connected = false;
  private disconnectedSince = Date.now();
  private syncWaiters: (() => void)[] = [];

  constructor(client: KubeClient, type: ResourceType, options: InformerOptions<T>) {
    this.client = client;
    this.type = type;
    this.options = options;
    this.streamingList = options.initialList !== 'pages';
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
   * (shared-strings.ts): ten thousand tenants repeat the same values; its
   * status conditions and small label maps, the pooled frozen ones
   * (shared-conditions.ts, shared-labels.ts).
   */
  private cacheable(object: T): T {
    // Left out by destructuring, not `delete`: an object that lost a
    // property becomes a slow dictionary, twice the size.
    const { managedFields, ...metadata } = object.metadata;
    const kept = { ...object, apiVersion: this.type.apiVersion, kind: this.type.kind, metadata };
    const cached = cachedStrings.shareAll(
      this.options.transform ? this.options.transform(kept) : kept,
    );
    const { labels } = cached.metadata;
    if (labels) cached.metadata.labels = cachedLabels.share(labels);
    return cachedConditions.shareConditions(cached);
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
    while (!signal.aborted) {
      try {
        if (this.needsList && !this.streamingList) await this.relist(signal);
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
          this.needsList = true;
          continue;
        }
        if (err.code === ERROR_CODES.API_INVALID && this.needsList && this.streamingList) {
          // The WatchList feature is off on this server: list in pages from now on.
          this.options.log.info(
            { resource: this.type.plural, err: err.message },
            'the API server does not stream lists; listing in pages',
          );
          this.streamingList = false;
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
    const started = performance.now();
    const fresh = new Map<string, T>();
    let continueToken: string | undefined;
    let listVersion = '';
    let pages = 0;
    do {
      pages++;
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
    this.replaceAll(fresh, listVersion, { pages, started });
  }

  /**
   * The cache becomes `fresh`, as of `version`: handlers hear of what was
   * added, changed or is gone since the last time it was filled.
   */
  private replaceAll(
    fresh: Map<string, T>,
    version: string,
    how: { pages?: number; started: number },
  ): void {
    const previous = new Map(this.store.values().map((object) => [objectKey(object), object]));
    this.store.clear();
    this.indexed.clear();
    for (const object of fresh.values()) this.put(object);
    this.resourceVersion = version;
    this.needsList = false;
    for (const [key, object] of fresh) {
      const before = previous.get(key);
      if (!before) this.emit(object, 'ADDED');
      else if (before.metadata.resourceVersion !== object.metadata.resourceVersion)
        this.emit(object, 'MODIFIED');
    }
    for (const [key, object] of previous) if (!fresh.has(key)) this.emit(object, 'DELETED');
    // How long a start takes, kind by kind: at ten thousand tenants the
    // lists are a good part of a restart.
    this.options.log.info(
      {
        resource: this.type.plural,
        objects: fresh.size,
        ...(how.pages === undefined ? { streamed: true } : { pages: how.pages }),
        ms: Math.round(performance.now() - how.started),
      },
      'listed',
    );
    if (!this.synced) {
      this.synced = true;
      for (const resolve of this.syncWaiters.splice(0)) resolve();
    }
  }

  private async watchOnce(signal: AbortSignal): Promise<void> {
    const timeout = this.options.watchTimeoutSeconds ?? 240 + Math.floor(Math.random() * 60);
    const started = performance.now();
    // Streamed list: the state as of now comes first, as ADDED events, then
    // a bookmark marks its end. Until then the events fill `initial`.
    let initial = this.needsList ? new Map<string, T>() : undefined;
    const events = await this.client.watch<T>(
      this.collection(),
      {
        labelSelector: this.options.labelSelector,
        fieldSelector: this.options.fieldSelector,
        allowWatchBookmarks: true,
        timeoutSeconds: timeout,
        ...(initial
          ? { sendInitialEvents: true, resourceVersionMatch: 'NotOlderThan' }
          : { resourceVersion: this.resourceVersion }),
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
      if (initial) {
        if (event.type === 'BOOKMARK') {
          if (received.metadata.annotations?.[INITIAL_EVENTS_END] === 'true') {
            this.replaceAll(initial, received.metadata.resourceVersion ?? '', { started });
            initial = undefined;
          }
        } else if (event.type === 'DELETED') initial.delete(objectKey(received));
        else initial.set(objectKey(received), this.cacheable(received));
        continue;
      }
      if (received.metadata.resourceVersion)
        this.resourceVersion = received.metadata.resourceVersion;
      if (event.type === 'BOOKMARK') continue;
      const object = this.cacheable(received);
      if (event.type === 'DELETED') this.remove(object);
      else this.put(object);
      this.emit(object, event.type);
    }
    // The server closes a watch at its timeout; a list cut short is no list.
    if (initial) {
      throw new OperatorError(
        ERROR_CODES.NETWORK,
        `watch ${this.type.plural}: closed before the initial list was complete (${initial.size} objects)`,
      );
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
