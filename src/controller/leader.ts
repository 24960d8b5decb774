import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Logger } from 'pino';
import { ERROR_CODES, isConflict, isNotFound, OperatorError, toOperatorError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { collectionPath, objectPath, RESOURCES } from '../k8s/resources.ts';
import type { KubeObject } from '../k8s/types.ts';

/** The Lease the replicas compete for, in the operator's namespace (RBAC names it too). */
export const LEASE_NAME = 'tenant-operator';

// Leader election on a coordination.k8s.io Lease, the way client-go does it:
// a lease counts as expired when its record has not changed for the lease
// duration *by our own clock*, so clock skew between replicas does not matter.
//
// The safety argument, and why every timing below is measured from the START
// of a renewal: another replica takes over only a full lease duration after
// it saw our last renewal, and it cannot have seen it before we sent it. So
// as long as now - (start of our last accepted renewal) < renewDeadline
// (< lease duration), nobody else can be leading. Past that instant we stop
// writing at once, even if the renew loop has not noticed yet (a paused
// process, a starved event loop), and no lease request may run longer than
// that instant either: its answer would come too late to mean anything.
// Times are monotonic (performance.now), immune to wall-clock steps.

export interface LeaderElectionOptions {
  namespace: string;
  name: string;
  identity: string;
  leaseDurationSeconds: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  log: Logger;
  /**
   * Asked before taking a lease that is not ours yet (free, released or
   * expired); renewing one we hold is never held back. Shards use it to stay
   * within their fair share. Default: always.
   */
  mayAcquire?: () => boolean;
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

const monotonicNow = (): number => performance.now();

export class LeaderElector {
  private readonly client: KubeClient;
  private readonly options: LeaderElectionOptions;
  private readonly stopRenewing = new AbortController();
  private observedRecord = '';
  private observedAt = 0;
  private leading = false;
  /** Monotonic start time of the last acquire or renew the API server accepted. */
  private renewStartedAt = -Infinity;
  private loop: Promise<void> | undefined;

  /** `client` should be the elector's own: lease calls must not queue behind reconcile traffic. */
  constructor(client: KubeClient, options: LeaderElectionOptions) {
    this.client = client;
    this.options = options;
  }

  /** Leading, and the lease is still ours by our clock: writes are safe right now. */
  holdsLease(): boolean {
    return this.leading && this.msLeft() > 0;
  }

  /** Throws unless this replica holds the lease right now: the guard in front of every write. */
  assertLeading(): void {
    if (!this.holdsLease()) {
      throw new OperatorError(
        ERROR_CODES.NOT_LEADER,
        `${this.options.identity} does not hold the leader lease; write refused`,
      );
    }
  }

  private msLeft(): number {
    return this.renewStartedAt + this.options.renewDeadlineMs - monotonicNow();
  }

  /**
   * Campaigns until elected, calls onElected, then renews until stepDown()
   * or until the lease is no longer ours by our clock (then onLost is called:
   * the caller must stop at once; writes are already refused by then).
   */
  start(onElected: () => void, onLost: () => void): void {
    this.loop = this.run(onElected, onLost).catch((err: unknown) => {
      this.leading = false;
      this.options.log.error({ err: toOperatorError(err).message }, 'leader election failed');
      onLost();
    });
  }

  private async run(onElected: () => void, onLost: () => void): Promise<void> {
    const { retryPeriodMs, log } = this.options;
    const signal = this.stopRenewing.signal;
    while (!signal.aborted) {
      const attemptStart = monotonicNow();
      if (await this.tryAcquireOrRenew(attemptStart + this.options.renewDeadlineMs)) break;
      await sleep(retryPeriodMs, undefined, { signal }).catch(() => undefined);
    }
    if (signal.aborted) return;
    this.leading = true;
    log.info({ identity: this.options.identity }, 'became leader');
    onElected();
    while (!signal.aborted) {
      // Wake up at the latest when the lease runs out, so the loss is reported at once.
      await sleep(Math.max(0, Math.min(retryPeriodMs, this.msLeft())), undefined, {
        signal,
      }).catch(() => undefined);
      if (signal.aborted) return;
      if (this.holdsLease()) {
        await this.tryAcquireOrRenew(this.renewStartedAt + this.options.renewDeadlineMs);
      }
      if (signal.aborted) return;
      if (!this.holdsLease()) {
        this.leading = false;
        log.error('lost leadership: lease not renewed within the deadline, or taken over');
        onLost();
        return;
      }
    }
  }

  /**
   * Stops renewing and writing (holdsLease() is false from here on), waits
   * for `settle` (the caller's writes still in flight), then hands the lease
   * back so another replica takes over without waiting for expiry.
   */
  async stepDown(settle: () => Promise<void>): Promise<void> {
    this.stopRenewing.abort();
    await this.loop;
    const held = this.holdsLease();
    this.leading = false;
    await settle();
    if (held) await this.release();
  }

  /** One attempt; every request in it is cut off at `deadline` (monotonic ms). */
  private async tryAcquireOrRenew(deadline: number): Promise<boolean> {
    const { namespace, name, identity, leaseDurationSeconds, log } = this.options;
    const path = objectPath(RESOURCES.Lease, name, namespace);
    const attemptStart = monotonicNow();
    const now = new Date();
    const bounded = () => {
      const timeoutMs = Math.floor(deadline - monotonicNow());
      if (timeoutMs <= 0) throw new OperatorError(ERROR_CODES.NETWORK, 'renew deadline reached');
      return { timeoutMs, signal: this.stopRenewing.signal };
    };
    const mayAcquire = () => this.leading || (this.options.mayAcquire?.() ?? true);
    try {
      const lease = await this.client.get<Lease>(path, bounded());
      if (!lease) {
        if (!mayAcquire()) return false;
        await this.client.request('POST', collectionPath(RESOURCES.Lease, namespace), {
          ...bounded(),
          body: {
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
          },
        });
        this.renewStartedAt = attemptStart;
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
        this.observedAt = monotonicNow();
      }
      const holder = spec.holderIdentity ?? '';
      const duration = (spec.leaseDurationSeconds ?? leaseDurationSeconds) * 1000;
      const heldByOther = holder !== '' && holder !== identity;
      if (heldByOther && this.leading) {
        // Someone overwrote our record: whatever our clock says, we are not leading.
        this.leading = false;
        log.error({ holder }, 'the lease was taken over by another replica');
        return false;
      }
      if (heldByOther && this.observedAt + duration > monotonicNow()) return false;

      if (!mayAcquire()) return false;
      const takingOver = holder !== identity;
      // The resourceVersion in the body makes this a compare-and-swap: a
      // replica that raced us to the lease makes it fail with a conflict.
      await this.client.request('PUT', path, {
        ...bounded(),
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
      this.renewStartedAt = attemptStart;
      return true;
    } catch (err: unknown) {
      if (!isConflict(err) && !isNotFound(err) && !this.stopRenewing.signal.aborted) {
        log.warn({ err: toOperatorError(err).message }, 'lease update failed');
      }
      return false;
    }
  }

  private async release(): Promise<void> {
    const path = objectPath(RESOURCES.Lease, this.options.name, this.options.namespace);
    // Whole milliseconds: AbortSignal.timeout refuses a fraction (a 4 s lease gives 2666.67).
    const timeoutMs = Math.floor(this.options.renewDeadlineMs);
    try {
      const lease = await this.client.get<Lease>(path, { timeoutMs });
      if (lease?.spec?.holderIdentity !== this.options.identity) return;
      await this.client.request('PUT', path, {
        timeoutMs,
        body: { ...lease, spec: { ...lease.spec, holderIdentity: null, leaseDurationSeconds: 1 } },
      });
      this.options.log.info('released the leader lease');
    } catch (err: unknown) {
      this.options.log.warn({ err: toOperatorError(err).message }, 'could not release the lease');
    }
  }
}
