import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { test } from 'node:test';
import { WorkQueue } from '../../src/controller/queue.ts';

test('one key never runs twice at once; a change during a run causes exactly one more run', async () => {
  let running = 0;
  let maxRunning = 0;
  let runs = 0;
  const queue = new WorkQueue(
    async () => {
      running++;
      runs++;
      maxRunning = Math.max(maxRunning, running);
      await sleep(30);
      running--;
    },
    { concurrency: 4 },
  );
  queue.start();
  queue.add('a');
  await sleep(5);
  queue.add('a');
  queue.add('a');
  await sleep(5);
  await queue.whenIdle();
  await sleep(50);
  await queue.whenIdle();
  assert.equal(maxRunning, 1);
  assert.equal(runs, 2);
  queue.stop();
});

test('concurrency is bounded across keys', async () => {
  let running = 0;
  let maxRunning = 0;
  const queue = new WorkQueue(
    async () => {
      running++;
      maxRunning = Math.max(maxRunning, running);
      await sleep(20);
      running--;
    },
    { concurrency: 3 },
  );
  queue.start();
  for (let i = 0; i < 20; i++) queue.add(`k${i}`);
  await queue.whenIdle();
  assert.equal(maxRunning, 3);
  queue.stop();
});

test('failures retry with growing backoff, success clears it', async () => {
  const times: number[] = [];
  const queue = new WorkQueue(
    () => {
      times.push(Date.now());
      return times.length < 4 ? Promise.reject(new Error('boom')) : Promise.resolve();
    },
    { concurrency: 1, baseBackoffMs: 20 },
  );
  queue.start();
  queue.add('x');
  for (let i = 0; i < 100 && times.length < 4; i++) await sleep(20);
  assert.equal(times.length, 4);
  const gaps = times.slice(1).map((t, i) => t - times[i]!);
  assert.ok(gaps[0]! >= 15 && gaps[1]! >= 35 && gaps[2]! >= 75, `gaps ${gaps.join(',')}`);
  queue.stop();
});

test('a delay longer than a Node timer can hold is re-armed, not fired early', async () => {
  let runs = 0;
  const queue = new WorkQueue(
    () => {
      runs++;
      return Promise.resolve();
    },
    { concurrency: 1 },
  );
  queue.start();
  queue.addAfter('far', 40 * 86_400_000); // 40 days: past setTimeout's 24.8-day limit
  await sleep(50);
  assert.equal(runs, 0);
  assert.equal(queue.depth, 0);
  queue.stop();
});
