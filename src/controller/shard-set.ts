import { AsyncLocalStorage } from 'node:async_hooks';
import type { Logger } from 'pino';
import { ERROR_CODES, OperatorError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { LeaderElector } from './leader.ts';
import { Membership } from './membership.ts';
import { fairShare, shardLeaseName } from './shards.ts';

// The shard Leases this replica holds, and the fence that goes with them.
//
// One LeaderElector per shard campaigns all the time (so it has watched an
// abandoned Lease for a full duration by the time it may take it), but takes
// a Lease only while this replica holds fewer than its fair share. Work for a
// shard runs inside runInShard(), an async context naming the shard; the
// fence (assertHolds) judges the shard of the current context, and work in
// no tenant's context (shared roles, server checks, backup verification)
// counts as shard 0's. With one shard this is today's single leader: the
// Lease `tenant-operator`, no membership, and a lost lease ends the process.
//
// Handing a shard back (a newcomer raised the live count, so the fair share
// shrank): stop starting its work (accepting() turns false), wait for its
// reconciles under way (bounded), then step down: writes are refused from
// that instant, the last ones are waited for, and the Lease is released so
// the newcomer takes it without waiting for expiry.

export interface ShardSetOptions {
  shards: number;
  namespace: string;
  identity: string;
  leaseDurationSeconds: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  /** How long a shard handed back waits for its reconciles under way before fencing them. */
  drainTimeoutMs: number;
  log: Logger;
  onAcquired: (shard: number) => void;
  /** The shard's lease was lost or handed back: its work has stopped. */
  onReleased: (shard: number) => void;
  /** One shard only: its lease was lost, and the process must stop (today's leader). */
  onLostAll: () => void;
}

/** The shard the current async context works for; none means shared work (shard 0). */
const shardScope = new AsyncLocalStorage<number>();

export class ShardSet {
  private readonly client: KubeClient;
  private readonly options: ShardSetOptions;
  private readonly electors: LeaderElector[] = [];
  private readonly held = new Set<number>();
  private readonly handingBack = new Set<number>();
  /** Runs under way per shard, and who waits for them to end. */
  private readonly active = new Map<number, number>();
  private readonly drainWaiters = new Map<number, (() => void)[]>();
  private readonly membership: Membership | undefined;
  private rebalanceTimer: NodeJS.Timeout | undefined;
  private stopping = false;

  /** `client` should be the leases' own, so renewals never queue behind reconcile traffic. */
  constructor(client: KubeClient, options: ShardSetOptions) {
    this.client = client;
    this.options = options;
    if (options.shards > 1) {
      this.membership = new Membership(client, {
        namespace: options.namespace,
        identity: options.identity,
        leaseDurationSeconds: options.leaseDurationSeconds,
        retryPeriodMs: options.retryPeriodMs,
        log: options.log,
        onChange: () => this.rebalance(),
      });
    }
  }

  get count(): number {
    return this.options.shards;
  }

  /** This replica's fair share right now. */
  share(): number {
    return fairShare(this.options.shards, this.membership?.live() ?? 1);
  }

  /** The lease of `shard` is ours by our clock: its writes are safe right now. */
  holds(shard: number): boolean {
    return this.electors[shard]?.holdsLease() ?? false;
  }

  holdsAny(): boolean {
    return this.electors.some((elector) => elector.holdsLease());
  }

  heldShards(): number[] {
    return [...this.held].filter((shard) => this.holds(shard)).sort((a, b) => a - b);
  }

  /** Held and not being handed back: new work for the shard may start. */
  accepting(shard: number): boolean {
    return this.holds(shard) && !this.handingBack.has(shard);
  }

  /** The fence: throws unless the shard of the current context is surely held. */
  assertHolds(): void {
    const shard = shardScope.getStore() ?? 0;
    const elector = this.electors[shard];
    if (!elector) {
      throw new OperatorError(
        ERROR_CODES.NOT_LEADER,
        'not leading: leader election has not started',
      );
    }
    elector.assertLeading();
  }

  /** Runs `work` as the shard's: its writes are fenced by that shard's lease. */
  async runInShard<T>(shard: number, work: () => Promise<T>): Promise<T> {
    this.active.set(shard, (this.active.get(shard) ?? 0) + 1);
    try {
      return await shardScope.run(shard, work);
    } finally {
      const left = (this.active.get(shard) ?? 1) - 1;
      this.active.set(shard, left);
      if (left === 0)
        for (const resolve of this.drainWaiters.get(shard)?.splice(0) ?? []) resolve();
    }
  }

  private drained(shard: number): Promise<void> {
    if ((this.active.get(shard) ?? 0) === 0) return Promise.resolve();
    return new Promise((resolve) => {
      const waiters = this.drainWaiters.get(shard) ?? [];
      waiters.push(resolve);
      this.drainWaiters.set(shard, waiters);
    });
  }

  async start(): Promise<void> {
    await this.membership?.start();
    for (let shard = 0; shard < this.options.shards; shard++) this.campaign(shard);
    if (this.membership) {
      this.rebalanceTimer = setInterval(() => this.rebalance(), this.options.retryPeriodMs);
      this.rebalanceTimer.unref();
    }
  }

  private campaign(shard: number): void {
    const { shards, log } = this.options;
    const elector = new LeaderElector(this.client, {
      namespace: this.options.namespace,
      name: shardLeaseName(shard, shards),
      identity: this.options.identity,
      leaseDurationSeconds: this.options.leaseDurationSeconds,
      renewDeadlineMs: this.options.renewDeadlineMs,
      retryPeriodMs: this.options.retryPeriodMs,
      log: shards === 1 ? log : log.child({ shard }),
      ...(shards === 1
        ? {}
        : { mayAcquire: () => !this.stopping && this.held.size < this.share() }),
    });
    this.electors[shard] = elector;
    elector.start(
      () => {
        this.held.add(shard);
        this.options.onAcquired(shard);
      },
      () => {
        const wasHeld = this.held.delete(shard);
        if (shards === 1) {
          this.options.onLostAll();
          return;
        }
        if (wasHeld) this.options.onReleased(shard);
        // Taken over or not renewed in time: campaign again, the fair share
        // decides (a hand-back under way does that itself when it is done).
        if (!this.stopping && this.electors[shard] === elector && !this.handingBack.has(shard))
          this.campaign(shard);
      },
    );
  }

  /** Hands back shards above the fair share, highest first (shard 0 carries the shared work). */
  private rebalance(): void {
    if (this.stopping) return;
    const excess = this.held.size - this.handingBack.size - this.share();
    const candidates = [...this.held]
      .filter((shard) => !this.handingBack.has(shard))
      .sort((a, b) => b - a)
      .slice(0, Math.max(0, excess));
    for (const shard of candidates) void this.handBack(shard);
  }

  private async handBack(shard: number): Promise<void> {
    const { log, drainTimeoutMs } = this.options;
    const elector = this.electors[shard];
    if (!elector) return;
    this.handingBack.add(shard);
    log.info({ shard, share: this.share() }, 'handing back a shard above the fair share');
    try {
      const drained = await Promise.race([
        this.drained(shard).then(() => true),
        new Promise<false>((resolve) => setTimeout(resolve, drainTimeoutMs, false).unref()),
      ]);
      if (!drained) log.warn({ shard }, 'shard reconciles still running; refusing their writes');
      // Fenced from here on; the reconciles still running get every write refused.
      await elector.stepDown(() => this.drained(shard));
    } finally {
      this.handingBack.delete(shard);
      if (this.held.delete(shard)) this.options.onReleased(shard);
      if (!this.stopping && this.electors[shard] === elector) this.campaign(shard);
    }
  }

  /** Steps down from every shard once `settle` (the writes under way) is done. */
  async stop(settle: () => Promise<void>): Promise<void> {
    this.stopping = true;
    if (this.rebalanceTimer) clearInterval(this.rebalanceTimer);
    await Promise.all(this.electors.map((elector) => elector.stepDown(settle)));
    this.held.clear();
    await this.membership?.stop();
  }
}
