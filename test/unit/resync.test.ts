import assert from 'node:assert/strict';
import { mock, test } from 'node:test';
import { slotOf, SpreadResync } from '../../src/controller/resync.ts';

// The resync spread over its period: every tenant once a period, few at a time.

const names = Array.from({ length: 10_000 }, (_, i) => `tenant-${i}`);

function run(periodMs: number, tickMs: number, elapsed: number[]): Map<string, number>[] {
  mock.timers.enable({ apis: ['setInterval', 'Date'], now: 0 });
  try {
    const perTick: Map<string, number>[] = [];
    let current = new Map<string, number>();
    const resync = new SpreadResync({
      periodMs,
      tickMs,
      names: () => names,
      enqueue: (name) => current.set(name, (current.get(name) ?? 0) + 1),
    });
    resync.start();
    for (const ms of elapsed) {
      mock.timers.tick(ms);
      perTick.push(current);
      current = new Map();
    }
    resync.stop();
    return perTick;
  } finally {
    mock.timers.reset();
  }
}

test('10,000 tenants, 300 s period: each once per period, at most a hundred in a second', () => {
  const ticks = run(
    300_000,
    1_000,
    Array.from({ length: 300 }, () => 1_000),
  );
  const counts = new Map<string, number>();
  for (const tick of ticks)
    for (const [name, n] of tick) counts.set(name, (counts.get(name) ?? 0) + n);
  assert.equal(counts.size, names.length, 'every tenant resynced');
  assert.ok(
    [...counts.values()].every((n) => n === 1),
    'each exactly once',
  );
  const largest = Math.max(...ticks.map((t) => t.size));
  assert.ok(largest <= 100, `at most 100 in one second, saw ${largest}`);
});

test('ticks missed while the event loop was busy are caught up, not skipped', () => {
  mock.timers.enable({ apis: ['setInterval', 'Date'], now: 0 });
  try {
    const enqueued = new Map<string, number>();
    let calls = 0;
    const resync = new SpreadResync({
      periodMs: 60_000,
      tickMs: 1_000,
      names: () => names,
      enqueue: (name) => {
        calls++;
        enqueued.set(name, (enqueued.get(name) ?? 0) + 1);
      },
    });
    resync.start();
    mock.timers.tick(1_000);
    // Ten seconds pass with no timer run (a long GC, a busy loop), then one tick.
    mock.timers.setTime(Date.now() + 10_000);
    const before = calls;
    mock.timers.tick(1_000);
    const caughtUp = calls - before;
    assert.ok(
      caughtUp > 1_500,
      `eleven seconds' worth (~1,833 tenants) in the late tick, saw ${caughtUp}`,
    );
    for (let i = 0; i < 48; i++) mock.timers.tick(1_000);
    resync.stop();
    assert.equal(enqueued.size, names.length, 'no slot skipped');
    assert.ok(
      [...enqueued.values()].every((n) => n === 1),
      'none twice in one period',
    );
  } finally {
    mock.timers.reset();
  }
});

test('slots are stable (a hash of the name) and spread', () => {
  assert.equal(slotOf('acme', 300), slotOf('acme', 300));
  const used = new Set(names.map((n) => slotOf(n, 300)));
  assert.equal(used.size, 300);
});

test('a few tenants are not spread: all of them once a period, and quiet in between', () => {
  mock.timers.enable({ apis: ['setInterval', 'Date'], now: 0 });
  try {
    const at: number[] = [];
    let periods = 0;
    const resync = new SpreadResync({
      periodMs: 2_000,
      names: () => ['a', 'b'],
      enqueue: () => at.push(Date.now()),
      onPeriod: () => periods++,
    });
    resync.start();
    for (let i = 0; i < 6; i++) mock.timers.tick(1_000);
    resync.stop();
    assert.deepEqual(at, [2_000, 2_000, 4_000, 4_000, 6_000, 6_000]);
    assert.equal(periods, 3);
  } finally {
    mock.timers.reset();
  }
});
