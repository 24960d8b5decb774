import type { KubeObject } from '../k8s/types.ts';

// The informer's store: objects by namespace, then by name. A tenant's
// namespace holds one to four objects of each kind the operator caches, so a
// namespace's objects are kept in a small array, not a Map of their own (a
// Map costs about 250 bytes before its first entry: 20 MiB for the eighty
// thousand buckets of ten thousand tenants); a bucket that grows past a few
// entries (cluster-scoped Tenants, the backup CronJobs all in the operator's
// namespace) becomes a Map, so a lookup stays cheap. No "namespace/name" key
// is built to store an object: its own name and namespace strings are used.

/** Past this many objects a namespace's array becomes a Map. */
const ARRAY_LIMIT = 8;

type Bucket<T> = T[] | Map<string, T>;

/** Cluster-scoped objects live in the bucket of this (impossible) namespace name. */
const CLUSTER = '';

export class ObjectIndex<T extends KubeObject> {
  private readonly buckets = new Map<string, Bucket<T>>();
  private count = 0;

  get size(): number {
    return this.count;
  }

  get(name: string, namespace: string | undefined): T | undefined {
    const bucket = this.buckets.get(namespace ?? CLUSTER);
    if (bucket === undefined) return undefined;
    if (bucket instanceof Map) return bucket.get(name);
    return bucket.find((object) => object.metadata.name === name);
  }

  /** Adds the object, or replaces the one with its name and namespace. */
  set(object: T): void {
    const { name, namespace = CLUSTER } = object.metadata;
    const bucket = this.buckets.get(namespace);
    if (bucket === undefined) {
      this.buckets.set(namespace, [object]);
      this.count++;
      return;
    }
    if (bucket instanceof Map) {
      if (!bucket.has(name)) this.count++;
      bucket.set(name, object);
      return;
    }
    const at = bucket.findIndex((cached) => cached.metadata.name === name);
    if (at >= 0) {
      bucket[at] = object;
      return;
    }
    this.count++;
    if (bucket.length < ARRAY_LIMIT) {
      bucket.push(object);
      return;
    }
    const grown = new Map(bucket.map((cached) => [cached.metadata.name, cached] as const));
    grown.set(name, object);
    this.buckets.set(namespace, grown);
  }

  delete(name: string, namespace: string | undefined): void {
    const key = namespace ?? CLUSTER;
    const bucket = this.buckets.get(key);
    if (bucket === undefined) return;
    if (bucket instanceof Map) {
      if (bucket.delete(name)) this.count--;
      if (bucket.size === 0) this.buckets.delete(key);
      return;
    }
    const at = bucket.findIndex((cached) => cached.metadata.name === name);
    if (at < 0) return;
    bucket.splice(at, 1);
    this.count--;
    if (bucket.length === 0) this.buckets.delete(key);
  }

  /** The objects of one namespace (a copy: the caller may keep it). */
  inNamespace(namespace: string): T[] {
    const bucket = this.buckets.get(namespace);
    if (bucket === undefined) return [];
    return bucket instanceof Map ? [...bucket.values()] : [...bucket];
  }

  values(): T[] {
    const all: T[] = [];
    for (const bucket of this.buckets.values()) {
      for (const object of bucket.values()) all.push(object);
    }
    return all;
  }

  clear(): void {
    this.buckets.clear();
    this.count = 0;
  }
}
