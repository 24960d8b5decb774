import { nameHash } from './name-hash.ts';

// The periodic resync, spread over its period. Each tenant has a fixed phase
// in the period (a hash of its name), and a timer that ticks every second
// enqueues the tenants whose phase has come: with 10,000 tenants and a 300 s
// period, about 33 a second instead of 10,000 at once, so a resync never
// stands in front of new work as a wall. A few tenants are not spread (at
// least MIN_PER_SLOT share a phase): a handful of reconciles once a period
// are no wall, and tests see the quiet gap between resyncs they wait for.
// Ticks the event loop was too busy to run are caught up on the next one,
// so no tenant misses its resync.

export interface ResyncOptions {
  periodMs: number;
  /** How often due tenants are looked for (default 1 s). */
  tickMs?: number;
  /** The names to resync now (the tenants' cache). */
  names: () => string[];
  enqueue: (name: string) => void;
  /** Once a period: checks that are not per tenant. */
  onPeriod?: () => void;
}

const MIN_PER_SLOT = 50;

export function slotOf(name: string, slots: number): number {
  return nameHash(name) % slots;
}

export class SpreadResync {
  private readonly periodMs: number;
  private readonly tickMs: number;
  private readonly options: ResyncOptions;
  private timer: NodeJS.Timeout | undefined;
  private startedAt = 0;
  /** Time since start up to which due tenants were enqueued. */
  private doneUntil = 0;

  constructor(options: ResyncOptions) {
    this.options = options;
    this.periodMs = options.periodMs;
    this.tickMs = Math.min(options.tickMs ?? 1_000, options.periodMs);
  }

  start(): void {
    this.stop();
    this.startedAt = Date.now();
    this.doneUntil = 0;
    this.timer = setInterval(() => this.catchUp(), this.tickMs);
    this.timer.unref();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
  }

  /** Whether a phase in [0, period) came in (from, to], times since start. */
  private came(phase: number, from: number, to: number): boolean {
    if (to - from >= this.periodMs) return true;
    const a = from % this.periodMs;
    const b = to % this.periodMs;
    return a < b ? phase > a && phase <= b : phase > a || phase <= b;
  }

  private catchUp(): void {
    const from = this.doneUntil;
    const to = Date.now() - this.startedAt;
    if (to <= from) return;
    this.doneUntil = to;
    // The start itself (phase 0 of the first period) is the caller's full resync.
    if (this.came(0, from, to)) this.options.onPeriod?.();
    const names = this.options.names();
    const slotsByPeriod = Math.max(1, Math.floor(this.periodMs / this.tickMs));
    const slots = Math.max(1, Math.min(slotsByPeriod, Math.floor(names.length / MIN_PER_SLOT)));
    const slotMs = this.periodMs / slots;
    for (const name of names) {
      // Phases sit at the end of their slot, so phase 0 (a period boundary) is never one.
      const phase = ((slotOf(name, slots) + 1) * slotMs) % this.periodMs;
      if (this.came(phase, from, to)) this.options.enqueue(name);
    }
  }
}
