import assert from 'node:assert/strict';
import { test } from 'node:test';
import { celCronRules, cronScheduleProblems } from '../../src/api/cron.ts';
import { tenantSpecSchema } from '../../src/api/tenant.ts';
import { describeIssues } from '../../src/api/validate.ts';

// The operator's own check of cron schedules; the API server's (CEL, from the
// same table) is tested in test/integration/backup-api.test.ts.

const VALID = [
  'H 2 * * *',
  'H H * * 0',
  '*/15 * * * *',
  '0 1-5/2 * * 1,3,5',
  'H/10 */2 1-31 1-12/3 0-7',
  '00 02 * * *',
  '59 23 31 12 7',
  'H,30 H * * *',
];
const INVALID: [string, RegExp][] = [
  ['* * * * * * *', /^must be 5 fields/],
  ['* * * * * *', /^must be 5 fields/],
  ['H  2 * * *', /^must be 5 fields/],
  ['', /^must be 5 fields/],
  ['99 2 * * *', /^the minute field \(1st of 5\) '99' is not valid: use 0-59,/],
  ['0 24 * * *', /^the hour field \(2nd of 5\) '24'/],
  ['0 0 0 * *', /^the day-of-month field \(3rd of 5\) '0'/],
  ['0 0 32 * *', /^the day-of-month field \(3rd of 5\) '32'/],
  ['0 0 * 13 *', /^the month field \(4th of 5\) '13'/],
  ['0 0 * * 8', /^the day-of-week field \(5th of 5\) '8'/],
  ['5-1 * * * *', /^the minute field \(1st of 5\) '5-1'/],
  ['*/0 * * * *', /'\*\/0'/],
  ['H/60 * * * *', /'H\/60'/],
  ['1,,2 * * * *', /'1,,2'/],
  ['0 2 * * MON', /day-of-week field \(5th of 5\) 'MON'/],
  ['H(0-29) 2 * * *', /minute field/],
  ['0 2 ? * *', /day-of-month/],
];

test('valid schedules have no problems', () => {
  for (const schedule of VALID) assert.deepEqual(cronScheduleProblems(schedule), [], schedule);
});

test('invalid schedules: one message naming the field, as the CRD says it', () => {
  for (const [schedule, message] of INVALID) {
    const problems = cronScheduleProblems(schedule);
    assert.equal(problems.length, 1, `${schedule}: ${problems.join('; ')}`);
    assert.match(problems[0]!, message, schedule);
  }
  assert.equal(cronScheduleProblems('99 99 * * *').length, 2, 'every bad field is named');
});

test('the Tenant spec refuses bad schedules with the field path, both fields', () => {
  for (const field of ['schedule', 'verifySchedule']) {
    const parsed = tenantSpecSchema.safeParse({
      owners: [{ kind: 'Group', name: 'g' }],
      backup: { [field]: '99 2 * * *' },
    });
    assert.ok(!parsed.success);
    assert.match(
      describeIssues(parsed.error, 'spec'),
      new RegExp(`^spec\\.backup\\.${field}: the minute field \\(1st of 5\\) '99' is not valid`),
    );
  }
  const defaults = tenantSpecSchema.parse({ owners: [{ kind: 'Group', name: 'g' }] }).backup;
  assert.deepEqual(defaults, {
    enabled: true,
    schedule: 'H 2 * * *',
    retention: '35d',
    verifySchedule: 'H H * * 0',
    keyRotationInterval: '90d',
  });
});

test('the CEL rules carry the same messages as zod', () => {
  const rules = celCronRules();
  assert.equal(rules.length, 6);
  assert.equal(rules[0]!.message, cronScheduleProblems('x')[0]);
  const minute = rules[1]!;
  assert.ok('messageExpression' in minute);
  // The message expression is the zod message with the field's value spliced in.
  const zod = cronScheduleProblems('99 2 * * *')[0]!;
  const [before, after] = zod.split('99') as [string, string];
  assert.equal(
    minute.messageExpression,
    `${JSON.stringify(before)} + self.split(' ')[0] + ${JSON.stringify(after)}`,
  );
});
