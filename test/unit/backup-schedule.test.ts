import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { CronExpressionParser } from 'cron-parser';
import { expandSchedule, nextRun } from '../../src/backup/schedule.ts';
import { ERROR_CODES, OperatorError } from '../../src/errors.ts';

// H becomes a per-tenant value: stable, spread, inside the field's range.

const NAMES = Array.from({ length: 10_000 }, (_, i) => `tenant-${i.toString(36)}`);

function fields(expanded: string): string[] {
  return expanded.split(' ');
}

/** Largest bucket over the mean, for the values of one field over all names. */
function worstRatio(values: number[], buckets: number): number {
  const counts = new Array<number>(buckets).fill(0);
  for (const value of values) counts[value] = (counts[value] ?? 0) + 1;
  assert.ok(
    counts.every((count) => count > 0),
    'every bucket gets some tenants',
  );
  return Math.max(...counts) / (values.length / buckets);
}

describe('expandSchedule', () => {
  test('the same tenant gets the same schedule every time; purposes differ', () => {
    const first = expandSchedule('H H * * 0', 'acme', 'verify');
    for (let i = 0; i < 5; i++) assert.equal(expandSchedule('H H * * 0', 'acme', 'verify'), first);
    assert.match(first, /^\d+ \d+ \* \* 0$/);
    const distinct = new Set(
      NAMES.slice(0, 50).map((name) => expandSchedule('H H * * *', name, 'backup')),
    );
    assert.ok(distinct.size > 40, `50 tenants share only ${distinct.size} schedules`);
    const purposes = NAMES.slice(0, 50).filter(
      (name) =>
        expandSchedule('H H * * *', name, 'backup') !== expandSchedule('H H * * *', name, 'verify'),
    );
    assert.ok(purposes.length > 40, 'backup and verify times are independent');
  });

  test('fields without H are left as written', () => {
    for (const schedule of ['*/15 * * * *', '0 1-5/2 * * 1,3,5', '30 2 1 */3 *', '0 0 * * 7']) {
      assert.equal(expandSchedule(schedule, 'acme', 'backup'), schedule);
    }
  });

  test('10,000 tenants spread over the 60 minutes and 24 hours, no bucket above 2x the mean', () => {
    const minutes: number[] = [];
    const hours: number[] = [];
    for (const name of NAMES) {
      const [minute, hour] = fields(expandSchedule('H H * * *', name, 'backup'));
      minutes.push(Number(minute));
      hours.push(Number(hour));
    }
    assert.ok(worstRatio(minutes, 60) < 2, `minutes: ${worstRatio(minutes, 60)}`);
    assert.ok(worstRatio(hours, 24) < 2, `hours: ${worstRatio(hours, 24)}`);
  });

  test("H stays inside each field's range: day-of-month 1-28, day-of-week 0-6", () => {
    const seen = [
      new Set<number>(),
      new Set<number>(),
      new Set<number>(),
      new Set<number>(),
      new Set<number>(),
    ];
    for (const name of NAMES.slice(0, 3000)) {
      fields(expandSchedule('H H H H H', name, 'backup')).forEach((value, index) => {
        assert.match(value, /^\d+$/);
        seen[index]!.add(Number(value));
      });
    }
    const bounds: [number, number][] = [
      [0, 59],
      [0, 23],
      [1, 28],
      [1, 12],
      [0, 6],
    ];
    bounds.forEach(([lo, hi], index) => {
      const values = [...seen[index]!];
      assert.equal(Math.min(...values), lo, `field ${index} minimum`);
      assert.equal(Math.max(...values), hi, `field ${index} maximum`);
      assert.equal(values.length, hi - lo + 1, `field ${index} takes every value`);
    });
  });

  test('H/n is every n from a per-tenant offset below n', () => {
    const offsets = new Set<number>();
    for (const name of NAMES.slice(0, 500)) {
      const [minute, hour, , , weekday] = fields(
        expandSchedule('H/15 H/6 * * H/2', name, 'backup'),
      );
      const m = /^(\d+)-59\/15$/.exec(minute!);
      assert.ok(m, minute);
      offsets.add(Number(m[1]));
      assert.match(hour!, /^[0-5]-23\/6$/);
      assert.match(weekday!, /^[01]-6\/2$/);
    }
    assert.deepEqual(
      [...offsets].sort((a, b) => a - b),
      Array.from({ length: 15 }, (_, i) => i),
    );
    // The CronJob runs exactly four times an hour.
    const expanded = expandSchedule('H/15 * * * *', 'acme', 'backup');
    const runs = CronExpressionParser.parse(expanded, {
      tz: 'Etc/UTC',
      currentDate: new Date('2030-01-01T00:00:00Z'),
      endDate: new Date('2030-01-01T01:00:00Z'),
    });
    let count = 0;
    while (runs.hasNext()) {
      runs.next();
      count++;
    }
    assert.equal(count, 4);
  });

  test('lists whose parts overlap (or where H lands on a listed value) become plain values', () => {
    assert.equal(expandSchedule('1-5,3 * * * *', 'acme', 'backup'), '1,2,3,4,5 * * * *');
    assert.equal(expandSchedule('0 0 * * 0,7', 'acme', 'backup'), '0 0 * * 0');
    assert.equal(expandSchedule('*,5 * * * *', 'acme', 'backup'), '* * * * *');
    for (const name of NAMES.slice(0, 300)) {
      const [minute] = fields(expandSchedule('H,0-59/30 * * * *', name, 'backup'));
      const values = minute!.split(',').map(Number);
      assert.deepEqual(
        values,
        [...new Set(values)].sort((a, b) => a - b),
      );
      assert.ok(values.includes(0) && values.includes(30));
    }
  });

  test('invalid schedules throw INVALID_SPEC naming the spec field', () => {
    const cases: [string, 'backup' | 'verify', RegExp][] = [
      ['99 2 * * *', 'backup', /^spec\.backup\.schedule: the minute field \(1st of 5\) '99'/],
      ['* * * * * * *', 'verify', /^spec\.backup\.verifySchedule: must be 5 fields/],
      [
        '0 0 30 2 *',
        'backup',
        /^spec\.backup\.schedule: '0 0 30 2 \*'.*is not a schedule that runs/,
      ],
    ];
    for (const [schedule, purpose, message] of cases) {
      assert.throws(
        () => expandSchedule(schedule, 'acme', purpose),
        (err: unknown) =>
          err instanceof OperatorError &&
          err.code === ERROR_CODES.INVALID_SPEC &&
          message.test(err.message),
        schedule,
      );
    }
  });
});

describe('nextRun', () => {
  test('is the next matching time in UTC, strictly after the given time', () => {
    assert.equal(
      nextRun('17 2 * * *', new Date('2030-03-04T01:00:00Z')).toISOString(),
      '2030-03-04T02:17:00.000Z',
    );
    assert.equal(
      nextRun('17 2 * * *', new Date('2030-03-04T02:17:00Z')).toISOString(),
      '2030-03-05T02:17:00.000Z',
    );
    assert.equal(
      nextRun('0 3 * * 0', new Date('2030-03-04T00:00:00Z')).toISOString(),
      '2030-03-10T03:00:00.000Z',
    );
  });

  test('a remembered answer is the one cron-parser gives, forwards, backwards and across runs', () => {
    const schedule = '*/20 2-3 * * *';
    const start = Date.parse('2030-03-04T01:50:00Z');
    // Every 7 minutes for a day, then a few steps back in time.
    const times = [
      ...Array.from({ length: 210 }, (_, i) => start + i * 7 * 60_000),
      start + 40 * 60_000,
      start,
      start + 30 * 60_000 - 1,
    ];
    for (const time of times) {
      const after = new Date(time);
      const fresh = CronExpressionParser.parse(schedule, { tz: 'Etc/UTC', currentDate: after })
        .next()
        .toDate();
      assert.equal(
        nextRun(schedule, after).toISOString(),
        fresh.toISOString(),
        after.toISOString(),
      );
    }
  });
});
