// A work queue keyed by object name. One key is never worked on twice at once
// (a change that arrives meanwhile marks it dirty and it runs again after);
// keys run with bounded concurrency; failures come back with exponential
// backoff, and a worker may ask to be called again after a delay. A gate
// (canStart) can hold back new work without losing it, and stop() lets the
// runs under way finish (whenDrained) while starting no new one.
//
// Fairness: keys wait in three lanes. `changed`: a settled tenant something
// happened to (drift seen by a watch, a spec edit, a timer); it goes first,
// so a repair waits for one free worker and for nothing else. `new`: a tenant
// not yet provisioned. `resync`: the periodic check of a settled tenant.
// New and resync take turns, so neither a burst of a thousand new tenants
// nor the resync of ten thousand settled ones holds the other back.

export type ReconcileResult = { requeueAfterMs?: number } | void;
export type Worker = (key: string) => Promise<ReconcileResult>;
/** Where a tenant is: provisioned once (settled) or not yet (new). */
export type Stage = 'settled' | 'new';
/** Why a key is added: something changed, or the periodic resync. */
export type Reason = 'change' | 'resync';
type Lane = 'changed' | 'new' | 'resync';

export interface QueueOptions {
  concurrency: number;
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  onDepthChange?: (depth: number) => void;
  onError?: (key: string, err: unknown, retryInMs: number) => void;
  /** Asked before each run starts; while false, keys wait (the leader checks its lease). */
  canStart?: () => boolean;
  /** Where a key's tenant is, asked when it is added (default: settled). */
  stageOf?: (key: string) => Stage;
  /**
   * Whether this queue takes the key at all, asked when it is added and again
   * when its turn comes (a sharded replica takes only its shards' tenants; a
   * key whose shard was handed over meanwhile is dropped, not run). Default: all.
   */
  admits?: (key: string) => boolean;
}

/** Node timers overflow past 2^31-1 ms (~24.8 days); longer delays re-arm in steps. */
const MAX_TIMER_MS = 2 ** 31 - 1;

export class WorkQueue {
  private readonly worker: Worker;
  private readonly options: Required<
    Omit<QueueOptions, 'onDepthChange' | 'onError' | 'canStart' | 'stageOf' | 'admits'>
  > &
    QueueOptions;
  private readonly lanes: Record<Lane, Set<string>> = {
    changed: new Set(),
    new: new Set(),
    resync: new Set(),
  };
  /** Of new and resync, the lane the last run was started from. */
  private lastTurn: 'new' | 'resync' = 'resync';
  private readonly active = new Set<string>();
  private readonly dirty = new Set<string>();
  private readonly failures = new Map<string, number>();
  private readonly timers = new Map<string, { at: number; timer: NodeJS.Timeout }>();
  private running = false;
  private stopped = false;
  private idleWaiters: (() => void)[] = [];
  private drainWaiters: (() => void)[] = [];

  constructor(worker: Worker, options: QueueOptions) {
    this.worker = worker;
    this.options = { baseBackoffMs: 200, maxBackoffMs: 60_000, ...options };
  }

  get depth(): number {
    return this.lanes.changed.size + this.lanes.new.size + this.lanes.resync.size;
  }

  start(): void {
    if (this.stopped) return; // a queue that was stopped stays stopped
    this.running = true;
    this.pump();
  }

  /** Starts no new run from now on; runs under way finish (see whenDrained). */
  stop(): void {
    this.running = false;
    this.stopped = true;
    for (const { timer } of this.timers.values()) clearTimeout(timer);
    this.timers.clear();
  }

  /** Keys being worked on right now. */
  get activeCount(): number {
    return this.active.size;
  }

  /** Resolves when no run is under way (pending keys do not count). */
  whenDrained(): Promise<void> {
    if (this.active.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.drainWaiters.push(resolve));
  }

  private laneFor(key: string, reason: Reason): Lane {
    if ((this.options.stageOf?.(key) ?? 'settled') === 'new') return 'new';
    return reason === 'resync' ? 'resync' : 'changed';
  }

  add(key: string, reason: Reason = 'change'): void {
    if (this.options.admits && !this.options.admits(key)) return;
    if (this.active.has(key)) {
      this.dirty.add(key);
      return;
    }
    const lane = this.laneFor(key, reason);
    if (this.lanes.changed.has(key)) return;
    const waiting = this.lanes.new.has(key)
      ? 'new'
      : this.lanes.resync.has(key)
        ? 'resync'
        : undefined;
    if (waiting !== undefined) {
      // Only a change moves a waiting key up; anything else finds it waiting already.
      if (lane !== 'changed') return;
      this.lanes[waiting].delete(key);
    }
    this.lanes[lane].add(key);
    this.options.onDepthChange?.(this.depth);
    this.pump();
  }

  /** Adds the key after a delay; an earlier scheduled time for the same key wins. */
  addAfter(key: string, delayMs: number): void {
    if (this.stopped) return;
    const at = Date.now() + Math.max(0, delayMs);
    const existing = this.timers.get(key);
    if (existing && existing.at <= at) return;
    if (existing) clearTimeout(existing.timer);
    this.arm(key, at);
  }

  private arm(key: string, at: number): void {
    const wait = Math.min(at - Date.now(), MAX_TIMER_MS);
    const timer = setTimeout(
      () => {
        if (Date.now() < at) return this.arm(key, at);
        this.timers.delete(key);
        this.add(key);
      },
      Math.max(0, wait),
    );
    timer.unref();
    this.timers.set(key, { at, timer });
  }

  /** Resolves when nothing is pending or running (tests and the benchmark use it). */
  whenIdle(): Promise<void> {
    if (this.depth === 0 && this.active.size === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  private pump(): void {
    if (this.active.size === 0) {
      for (const resolve of this.drainWaiters.splice(0)) resolve();
    }
    if (!this.running) return;
    while (this.active.size < this.options.concurrency) {
      if (this.options.canStart && !this.options.canStart()) break;
      const key = this.next();
      if (key === undefined) break;
      this.active.add(key);
      void this.process(key);
    }
    this.options.onDepthChange?.(this.depth);
    if (this.depth === 0 && this.active.size === 0) {
      for (const resolve of this.idleWaiters.splice(0)) resolve();
    }
  }

  /** The next key to start, taken out of its lane: changed first, then new and resync in turn. */
  private next(): string | undefined {
    const turns: Lane[] = this.lastTurn === 'new' ? ['resync', 'new'] : ['new', 'resync'];
    for (const lane of ['changed', ...turns] as Lane[]) {
      for (const key of this.lanes[lane]) {
        this.lanes[lane].delete(key);
        if (this.options.admits && !this.options.admits(key)) continue;
        if (lane !== 'changed') this.lastTurn = lane;
        return key;
      }
    }
    return undefined;
  }

  private async process(key: string): Promise<void> {
    try {
      const result = await this.worker(key);
      this.failures.delete(key);
      if (result?.requeueAfterMs !== undefined) this.addAfter(key, result.requeueAfterMs);
    } catch (err: unknown) {
      const attempts = (this.failures.get(key) ?? 0) + 1;
      this.failures.set(key, attempts);
      const delay = Math.min(
        this.options.maxBackoffMs,
        this.options.baseBackoffMs * 2 ** (attempts - 1),
      );
      this.options.onError?.(key, err, delay);
      this.addAfter(key, delay);
    } finally {
      this.active.delete(key);
      // Marked while it ran: something changed.
      if (this.dirty.delete(key)) this.lanes[this.laneFor(key, 'change')].add(key);
      this.pump();
    }
  }
}
