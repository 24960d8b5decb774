import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { GROUP } from '../api/constants.ts';
import { isConflict, isNotFound, toOperatorError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { collectionPath, objectPath, RESOURCES } from '../k8s/resources.ts';
import type { KubeObject } from '../k8s/types.ts';
import { MEMBER_LEASE_PREFIX } from './shards.ts';

// Which replicas are alive, so each knows its fair share of the shards. Every
// replica renews a Lease of its own (`tenant-operator-member-<identity>`,
// labelled) and lists the others. As with the shard Leases, a member counts
// as gone when its record has not changed for a lease duration *by our own
// clock*: no trust in other replicas' clocks. A member Lease left behind by a
// replica that was killed is deleted once it has been still for
// STALE_DURATIONS lease durations, so rolling updates do not pile them up.

export const LABEL_MEMBER = `${GROUP}/operator-member`;
const STALE_DURATIONS = 10;

export interface MembershipOptions {
  namespace: string;
  identity: string;
  leaseDurationSeconds: number;
  retryPeriodMs: number;
  log: Logger;
  /** Called when the count of live replicas changes. */
  onChange?: (live: number) => void;
}

type MemberLease = KubeObject & { spec?: { holderIdentity?: string; renewTime?: string } };

const monotonicNow = (): number => performance.now();

/** A Lease name from an identity (a pod name, or hostname-pid): a DNS subdomain. */
export function memberLeaseName(identity: string): string {
  const safe = identity
    .toLowerCase()
    .replace(/[^a-z0-9.-]+/g, '-')
    .replace(/^[^a-z0-9]+|[^a-z0-9]+$/g, '');
  return `${MEMBER_LEASE_PREFIX}${safe || 'replica'}`.slice(0, 253);
}

export class Membership {
  private readonly client: KubeClient;
  private readonly options: MembershipOptions;
  private readonly stopped = new AbortController();
  /** Per member Lease: its last record, and when (monotonic) we saw it change. */
  private readonly seen = new Map<string, { record: string; at: number }>();
  private lastLive = 1;
  private loop: Promise<void> | undefined;

  constructor(client: KubeClient, options: MembershipOptions) {
    this.client = client;
    this.options = options;
  }

  /** Each request's bound: whole milliseconds (AbortSignal.timeout refuses fractions). */
  private get timeoutMs(): number {
    return Math.floor(this.options.retryPeriodMs);
  }

  private get name(): string {
    return memberLeaseName(this.options.identity);
  }

  /** Replicas alive right now by our clock, this one included. */
  live(): number {
    const durationMs = this.options.leaseDurationSeconds * 1000;
    const now = monotonicNow();
    let others = 0;
    for (const [name, { at }] of this.seen)
      if (name !== this.name && at + durationMs > now) others++;
    return 1 + others;
  }

  /** Announces this replica and takes a first count, then keeps both up to date. */
  async start(): Promise<void> {
    await this.tick();
    this.loop = this.run();
  }

  private async run(): Promise<void> {
    const signal = this.stopped.signal;
    while (!signal.aborted) {
      await sleep(this.options.retryPeriodMs, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) return;
      await this.tick();
    }
  }

  private async tick(): Promise<void> {
    try {
      await this.renew();
      await this.observe();
    } catch (err: unknown) {
      if (!this.stopped.signal.aborted)
        this.options.log.warn({ err: toOperatorError(err).message }, 'membership update failed');
    }
    const live = this.live();
    if (live !== this.lastLive) {
      this.lastLive = live;
      this.options.log.info({ live }, 'replicas alive changed');
      this.options.onChange?.(live);
    }
  }

  private async renew(): Promise<void> {
    const { namespace, identity, leaseDurationSeconds } = this.options;
    const path = objectPath(RESOURCES.Lease, this.name, namespace);
    const timeoutMs = this.timeoutMs;
    const spec = {
      holderIdentity: identity,
      leaseDurationSeconds,
      renewTime: new Date().toISOString().replace('Z', '000Z'),
    };
    const lease = await this.client.get<MemberLease>(path, { timeoutMs });
    if (lease) {
      await this.client.request('PUT', path, { timeoutMs, body: { ...lease, spec } });
      return;
    }
    await this.client.request('POST', collectionPath(RESOURCES.Lease, namespace), {
      timeoutMs,
      body: {
        apiVersion: RESOURCES.Lease.apiVersion,
        kind: 'Lease',
        metadata: { name: this.name, namespace, labels: { [LABEL_MEMBER]: 'true' } },
        spec,
      },
    });
  }

  private async observe(): Promise<void> {
    const { namespace, leaseDurationSeconds } = this.options;
    const list = await this.client.request<{ items: MemberLease[] }>(
      'GET',
      collectionPath(RESOURCES.Lease, namespace),
      { timeoutMs: this.timeoutMs, query: { labelSelector: `${LABEL_MEMBER}=true` } },
    );
    const now = monotonicNow();
    const present = new Set<string>();
    for (const lease of list.items) {
      const name = lease.metadata.name;
      present.add(name);
      const record = JSON.stringify([lease.spec?.holderIdentity, lease.spec?.renewTime]);
      const seen = this.seen.get(name);
      if (seen?.record !== record) this.seen.set(name, { record, at: now });
      else if (name !== this.name && now - seen.at > STALE_DURATIONS * leaseDurationSeconds * 1000)
        await this.remove(lease);
    }
    for (const name of this.seen.keys()) if (!present.has(name)) this.seen.delete(name);
  }

  /** Deletes a member Lease long dead; the resourceVersion spares one renewed meanwhile. */
  private async remove(lease: MemberLease): Promise<void> {
    const path = objectPath(RESOURCES.Lease, lease.metadata.name, this.options.namespace);
    try {
      await this.client.request('DELETE', path, {
        timeoutMs: this.timeoutMs,
        body: { preconditions: { resourceVersion: lease.metadata.resourceVersion } },
      });
      this.seen.delete(lease.metadata.name);
    } catch (err: unknown) {
      if (!isConflict(err) && !isNotFound(err)) throw err;
    }
  }

  /** Stops renewing and deletes this replica's Lease, so the others count it gone at once. */
  async stop(): Promise<void> {
    this.stopped.abort();
    await this.loop;
    const path = objectPath(RESOURCES.Lease, this.name, this.options.namespace);
    try {
      await this.client.request('DELETE', path, { timeoutMs: this.timeoutMs });
    } catch (err: unknown) {
      if (!isNotFound(err))
        this.options.log.warn(
          { err: toOperatorError(err).message },
          'could not delete the member lease',
        );
    }
  }
}
