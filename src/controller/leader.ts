import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { isConflict, isNotFound, toOperatorError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { collectionPath, objectPath, RESOURCES } from '../k8s/resources.ts';
import type { KubeObject } from '../k8s/types.ts';

// Leader election on a coordination.k8s.io Lease, the way client-go does it:
// a lease counts as expired when its record has not changed for the lease
// duration *by our own clock*, so clock skew between replicas does not matter.

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  log: Logger;
}

interface LeaseSpec {
  holderIdentity?: string | null;
  leaseDurationSeconds?: number;
  acquireTime?: string | null;
  renewTime?: string | null;
  leaseTransitions?: number;
}

type Lease = KubeObject & { spec?: LeaseSpec };

function microTime(date = new Date()): string {
  return date.toISOString().replace('Z', '000Z');
}

export class LeaderElector {
  private readonly client: KubeClient;
  private readonly options: LeaderElectionOptions;
  private observedRecord = '';
  private observedAt = 0;
  private leading = false;

  constructor(client: KubeClient, options: LeaderElectionOptions) {
    this.client = client;
    this.options = options;
  }

  get isLeader(): boolean {
    return this.leading;
  }

  /**
   * Campaigns until elected, calls onElected, then renews until the signal
   * aborts (the lease is released) or renewal fails past the deadline
   * (onLost is called: the caller must stop writing at once).
   */
  async run(signal: AbortSignal, onElected: () => void, onLost: () => void): Promise<void> {
    const { retryPeriodMs, renewDeadlineMs, log } = this.options;
    while (!signal.aborted && !(await this.tryAcquireOrRenew())) {
      await sleep(retryPeriodMs, undefined, { signal }).catch(() => undefined);
    }
    if (signal.aborted) return;
    this.leading = true;
    log.info({ identity: this.options.identity }, 'became leader');
    onElected();
    let lastRenew = Date.now();
    while (!signal.aborted) {
      await sleep(retryPeriodMs, undefined, { signal }).catch(() => undefined);
      if (signal.aborted) break;
      if (await this.tryAcquireOrRenew()) {
        lastRenew = Date.now();
      } else if (Date.now() - lastRenew > renewDeadlineMs) {
        this.leading = false;
        log.error('lost leadership: lease not renewed within the deadline');
        onLost();
        return;
      }
    }
    await this.release();
  }

  private async tryAcquireOrRenew(): Promise<boolean> {
    const { namespace, name, identity, leaseDurationSeconds, log } = this.options;
    const path = objectPath(RESOURCES.Lease, name, namespace);
    const now = new Date();
    try {
      const lease = await this.client.get<Lease>(path);
      if (!lease) {
        await this.client.create<Lease>(collectionPath(RESOURCES.Lease, namespace), {
          apiVersion: RESOURCES.Lease.apiVersion,
          kind: 'Lease',
          metadata: { name, namespace },
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds,
            acquireTime: microTime(now),
            renewTime: microTime(now),
            leaseTransitions: 0,
          },
        });
        return true;
      }
      const spec = lease.spec ?? {};
      const record = JSON.stringify([
        spec.holderIdentity,
        spec.renewTime,
        spec.leaseDurationSeconds,
      ]);
      if (record !== this.observedRecord) {
        this.observedRecord = record;
        this.observedAt = Date.now();
      }
      const holder = spec.holderIdentity ?? '';
      const duration = (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
      const heldByOther = holder !== '' && holder !== identity;
      if (heldByOther && this.observedAt + duration > Date.now()) return false;

      const takingOver = holder !== identity;
      await this.client.request('PUT', path, {
        body: {
          ...lease,
          spec: {
            holderIdentity: identity,
            leaseDurationSeconds,
            acquireTime: takingOver ? microTime(now) : (spec.acquireTime ?? microTime(now)),
            renewTime: microTime(now),
            leaseTransitions: (spec.leaseTransitions ?? 0) + (takingOver ? 1 : 0),
          },
        },
      });
      return true;
    } catch (err: unknown) {
      if (!isConflict(err) && !isNotFound(err)) {
        log.warn({ err: toOperatorError(err).message }, 'lease update failed');
      }
      return false;
    }
  }

  /** Hands the lease back so another replica takes over without waiting for expiry. */
  private async release(): Promise<void> {
    if (!this.leading) return;
    this.leading = false;
    const path = objectPath(RESOURCES.Lease, this.options.name, this.options.namespace);
    try {
      const lease = await this.client.get<Lease>(path);
      if (lease?.spec?.holderIdentity !== this.options.identity) return;
      await this.client.request('PUT', path, {
        body: { ...lease, spec: { ...lease.spec, holderIdentity: null, leaseDurationSeconds: 1 } },
      });
    } catch (err: unknown) {
      this.options.log.warn({ err: toOperatorError(err).message }, 'could not release the lease');
    }
  }
}
