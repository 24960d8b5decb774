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

test('stop() starts nothing new; whenDrained() waits for the runs under way', async () => {
  const started: string[] = [];
  const finished: string[] = [];
  const queue = new WorkQueue(
    async (key) => {
      started.push(key);
      await sleep(60);
      finished.push(key);
    },
    { concurrency: 2 },
  );
  queue.start();
  for (const key of ['a', 'b', 'c', 'd']) queue.add(key);
  await sleep(10);
  assert.deepEqual(started, ['a', 'b']);
  queue.stop();
  assert.equal(queue.activeCount, 2);
  await queue.whenDrained();
  assert.deepEqual(finished.sort(), ['a', 'b'], 'drained before the runs under way finished');
  await sleep(80);
  assert.deepEqual(started, ['a', 'b'], 'a pending key started after stop()');
  queue.start();
  await sleep(20);
  assert.deepEqual(started, ['a', 'b'], 'a stopped queue started again');
});

test('a failure during the drain schedules no retry', async () => {
  let runs = 0;
  const queue = new WorkQueue(
    async () => {
      runs++;
      await sleep(20);
      throw new Error('boom');
    },
    { concurrency: 1, baseBackoffMs: 1 },
  );
  queue.start();
  queue.add('x');
  await sleep(5);
  queue.stop();
  await queue.whenDrained();
  await sleep(50);
  assert.equal(runs, 1);
});

test('while canStart is false no run starts; the keys wait', async () => {
  let allowed = false;
  const ran: string[] = [];
  const queue = new WorkQueue(
    (key) => {
      ran.push(key);
      return Promise.resolve();
    },
    { concurrency: 4, canStart: () => allowed },
  );
  queue.start();
  queue.add('a');
  queue.add('b');
  await sleep(20);
  assert.deepEqual(ran, []);
  assert.equal(queue.depth, 2);
  allowed = true;
  queue.add('c');
  await queue.whenIdle();
  assert.deepEqual(ran.sort(), ['a', 'b', 'c']);
  queue.stop();
});

test('a known key added behind a burst of new ones starts at the next free worker, and the burst still moves', async () => {
  const started: string[] = [];
  const queue = new WorkQueue(
    async (key) => {
      started.push(key);
      await sleep(5);
    },
    { concurrency: 2, stageOf: (key) => (key.startsWith('known') ? 'settled' : 'new') },
  );
  for (let i = 0; i < 1_000; i++) queue.add(`new-${i}`);
  queue.start();
  await sleep(20);
  const before = started.length;
  queue.add('known-drifted');
  queue.add('known-resync-1', 'resync');
  queue.add('known-resync-2', 'resync');
  await sleep(40);
  const position = started.indexOf('known-drifted');
  assert.ok(position >= before, 'started after it was added');
  assert.ok(position <= before + 2, `started within two starts, was ${position - before}`);
  // Alternating: the known keys did not take every start either.
  const afterKnown = started.slice(position, position + 4);
  assert.ok(
    afterKnown.some((k) => k.startsWith('new-')),
    afterKnown.join(', '),
  );
  queue.stop();
  await queue.whenDrained();
});

test('a new key that turns settled while it waits, and changes, moves ahead', async () => {
  const known = new Set<string>();
  const started: string[] = [];
  const queue = new WorkQueue(
    async (key) => {
      started.push(key);
      await sleep(1);
    },
    { concurrency: 1, stageOf: (key) => (known.has(key) ? 'settled' : 'new') },
  );
  for (let i = 0; i < 50; i++) queue.add(`t-${i}`);
  known.add('t-49');
  queue.add('t-49');
  assert.equal(queue.depth, 50, 'moved, not added twice');
  queue.start();
  await queue.whenIdle();
  assert.equal(started[0], 't-49');
  assert.equal(started.length, 50);
  queue.stop();
});

test('changes go before everything; new tenants and resyncs take turns', async () => {
  const started: string[] = [];
  const queue = new WorkQueue(
    async (key) => {
      started.push(key);
      await sleep(1);
    },
    { concurrency: 1, stageOf: (key) => (key.startsWith('new') ? 'new' : 'settled') },
  );
  for (let i = 0; i < 5; i++) queue.add(`new-${i}`);
  for (let i = 0; i < 5; i++) queue.add(`settled-${i}`, 'resync');
  queue.add('settled-4'); // a change to a tenant waiting for its resync: it moves up
  queue.add('settled-9');
  assert.equal(queue.depth, 11);
  queue.start();
  await queue.whenIdle();
  queue.stop();
  assert.deepEqual(started.slice(0, 2), ['settled-4', 'settled-9']);
  const rest = started.slice(2);
  // Alternating: never two of the same lane in a row while both wait.
  for (let i = 1; i < 8; i++)
    assert.notEqual(rest[i]!.split('-')[0], rest[i - 1]!.split('-')[0], rest.join(', '));
});

test('a key the queue does not admit is not taken, and one that stops being admitted while it waits is dropped', async () => {
  const admitted = new Set(['a', 'b', 'c']);
  const ran: string[] = [];
  const queue = new WorkQueue(
    (key) => {
      ran.push(key);
      return Promise.resolve();
    },
    { concurrency: 1, admits: (key) => admitted.has(key), canStart: () => ran.length < 100 },
  );
  queue.add('a');
  queue.add('b');
  queue.add('x');
  assert.equal(queue.depth, 2, 'x was never queued');
  // b's shard is handed over before its turn: dropped when it comes up, not run.
  admitted.delete('b');
  queue.add('c', 'resync');
  queue.start();
  await queue.whenIdle();
  assert.deepEqual(ran, ['a', 'c']);
  assert.equal(queue.depth, 0);
  queue.stop();
});
