import { z } from 'zod';
import { BoundedMemo } from '../bounded-memo.ts';

// Cron schedules as tenants write them: five fields, each `*`, `H` (a stable
// per-tenant value, see src/backup/schedule.ts), a number, a range a-b, a
// step (*/n, a-b/n, H/n) or a comma list of these. One table drives both
// checks: the CRD's CEL rules (refused at apply time) and the zod schema (the
// operator's own check), so they agree on what is valid and say it with the
// same words.

export interface CronField {
  name: string;
  /** Its place, as people say it: "1st of 5". */
  position: string;
  min: number;
  max: number;
  /** The range `H` picks from; day-of-month stops at 28 so that H runs every month. */
  hashMin: number;
  hashMax: number;
}

export const CRON_FIELDS: readonly CronField[] = [
  { name: 'minute', position: '1st of 5', min: 0, max: 59, hashMin: 0, hashMax: 59 },
  { name: 'hour', position: '2nd of 5', min: 0, max: 23, hashMin: 0, hashMax: 23 },
  { name: 'day-of-month', position: '3rd of 5', min: 1, max: 31, hashMin: 1, hashMax: 28 },
  { name: 'month', position: '4th of 5', min: 1, max: 12, hashMin: 1, hashMax: 12 },
  // 0 and 7 are both Sunday; H picks from 0-6 so that no day is twice as likely.
  { name: 'day-of-week', position: '5th of 5', min: 0, max: 7, hashMin: 0, hashMax: 6 },
];

/** Longer schedules are refused: it bounds what the API server's CEL rules cost. */
export const MAX_SCHEDULE_LENGTH = 100;

/** A regex alternative for the whole numbers lo..hi (hi < 100); a leading zero is allowed. */
function numberPattern(lo: number, hi: number): string {
  const digits = (a: number, b: number) => (a === b ? `${a}` : `[${a}-${b}]`);
  const alternatives: string[] = [];
  if (lo <= 9) alternatives.push(`${hi >= 10 ? '0?' : ''}${digits(lo, Math.min(hi, 9))}`);
  const lastTens = Math.floor(hi / 10);
  // Whole decades (10-19, 20-29, ...) as one alternative, then the last one.
  const fullDecades = hi % 10 === 9 ? lastTens : lastTens - 1;
  if (fullDecades >= 1) alternatives.push(`${digits(1, fullDecades)}[0-9]`);
  if (lastTens >= 1 && fullDecades < lastTens)
    alternatives.push(`${lastTens}${digits(0, hi % 10)}`);
  return `(${alternatives.join('|')})`;
}

/** A step n goes from 1 to the field's largest value (*\/60 would only ever mean 0). */
function stepBound(field: CronField): number {
  return field.max;
}

/**
 * One element of a field's comma list, anchored: RE2 (CEL) and JavaScript
 * read it alike. Range order (a <= b) is checked apart: a regex cannot
 * compare numbers.
 */
export function cronElementPattern(field: CronField): string {
  const n = numberPattern(field.min, field.max);
  const step = `/${numberPattern(1, stepBound(field))}`;
  return `^(\\*(${step})?|H(${step})?|${n}(-${n}(${step})?)?)$`;
}

export function cronFieldMessage(field: CronField, value: string): string {
  return `the ${field.name} field (${field.position}) '${value}' is not valid: use ${field.min}-${field.max}, *, H, ranges a-b with a <= b, steps */n, a-b/n or H/n with n from 1 to ${stepBound(field)}, lists a,b`;
}

// Static: the API server estimates string(size(...)) in a message as too costly.
const FIELD_COUNT_MESSAGE =
  "must be 5 fields separated by single spaces (minute hour day-of-month month day-of-week), e.g. 'H 2 * * *'";

/** Each field's element pattern, compiled once (every reconcile checks two schedules). */
const ELEMENT_PATTERNS = new Map(
  CRON_FIELDS.map((field) => [field.name, new RegExp(cronElementPattern(field))]),
);

function validElement(field: CronField, element: string): boolean {
  if (!ELEMENT_PATTERNS.get(field.name)!.test(element)) return false;
  const range = /^(\d+)-(\d+)/.exec(element);
  return !range || Number(range[1]) <= Number(range[2]);
}

/**
 * Answers by schedule: ten thousand tenants write a handful of distinct
 * schedules, and each reconcile checks its tenant's two.
 */
const problemsBySchedule = new BoundedMemo<readonly string[]>(1_000);

/** What is wrong with a schedule, one message per field; empty when it is valid. */
export function cronScheduleProblems(schedule: string): readonly string[] {
  return problemsBySchedule.get(schedule, () => Object.freeze(findProblems(schedule)));
}

function findProblems(schedule: string): string[] {
  const fields = schedule.split(' ');
  if (fields.length !== CRON_FIELDS.length) return [FIELD_COUNT_MESSAGE];
  const problems: string[] = [];
  CRON_FIELDS.forEach((field, index) => {
    const value = fields[index] ?? '';
    if (!value.split(',').every((element) => validElement(field, element))) {
      problems.push(cronFieldMessage(field, value));
    }
  });
  return problems;
}

// ---- CEL, for the CRD ------------------------------------------------------

/** JSON string syntax is valid CEL string syntax, escapes included. */
const cel = (text: string) => JSON.stringify(text);

/** A CEL messageExpression saying what `render` says, with a CEL value put in. */
function celMessage(render: (value: string) => string, valueExpression: string): string {
  const marker = '\u0000';
  const [before, after] = render(marker).split(marker) as [string, string];
  return `${cel(before)} + ${valueExpression} + ${cel(after)}`;
}

function celFieldRule(field: CronField, index: number) {
  const value = `self.split(' ')[${index}]`;
  // && short-circuits: int() only ever sees elements the pattern has accepted.
  const ascending = `(!e.matches('^[0-9]+-') || int(e.split('/')[0].split('-')[0]) <= int(e.split('/')[0].split('-')[1]))`;
  return {
    rule: `size(self.split(' ')) != 5 || ${value}.split(',').all(e, e.matches(${cel(cronElementPattern(field))}) && ${ascending})`,
    message: cronFieldMessage(field, '...'),
    messageExpression: celMessage((v) => cronFieldMessage(field, v), value),
  };
}

export function celCronRules() {
  return [
    { rule: "size(self.split(' ')) == 5", message: FIELD_COUNT_MESSAGE },
    ...CRON_FIELDS.map(celFieldRule),
  ];
}

/** A cron schedule field of a spec, checked by the API server and by the operator alike. */
export function cronScheduleSchema(fallback: string, description: string) {
  return z
    .string()
    .max(MAX_SCHEDULE_LENGTH)
    .superRefine((schedule, ctx) => {
      for (const message of cronScheduleProblems(schedule))
        ctx.addIssue({ code: 'custom', message });
    })
    .default(fallback)
    .meta({ description, 'x-kubernetes-validations': celCronRules() });
}
