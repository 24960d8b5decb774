import { createHash } from 'node:crypto';
import { CronExpressionParser } from 'cron-parser';
import { CRON_FIELDS, cronScheduleProblems, type CronField } from '../api/cron.ts';
import { BoundedMemo } from '../bounded-memo.ts';
import { ERROR_CODES, OperatorError } from '../errors.ts';

// A tenant's cron schedule as the CronJob runs it: every H becomes a value
// derived from the tenant's name, so ten thousand tenants with the default
// 'H 2 * * *' spread over the hour instead of all dumping at 02:00, and each
// keeps its minute from one reconcile (and one operator version) to the next.

export type SchedulePurpose = 'backup' | 'verify';

const SPEC_FIELD: Record<SchedulePurpose, string> = {
  backup: 'spec.backup.schedule',
  verify: 'spec.backup.verifySchedule',
};

/** A stable number for (tenant, purpose, field, element): the first 32 bits of a sha256. */
function stableHash(tenant: string, purpose: SchedulePurpose, field: number, element: number) {
  // The element index joins only for a second H in one list, which would
  // otherwise always equal the first.
  const key = [tenant, purpose, String(field), ...(element > 0 ? [String(element)] : [])];
  return createHash('sha256').update(key.join('\u0000')).digest().readUInt32BE(0);
}

/** Where H/n steps stop: the field's end, except day-of-week, whose 7 is 0 again. */
function stepEnd(field: CronField): number {
  return field.name === 'day-of-week' ? field.hashMax : field.max;
}

/** One element with H replaced: `H` by a value, `H/n` by `start-end/n`. */
function expandElement(element: string, field: CronField, hash: number): string {
  if (element === 'H') {
    return String(field.hashMin + (hash % (field.hashMax - field.hashMin + 1)));
  }
  if (element.startsWith('H/')) {
    const step = Number(element.slice(2));
    return `${field.hashMin + (hash % step)}-${stepEnd(field)}/${step}`;
  }
  return element;
}

/** The values one element (H already replaced) stands for; day-of-week 7 counts as 0. */
function elementValues(element: string, field: CronField): number[] {
  const [range = '', stepText] = element.split('/');
  const step = stepText === undefined ? 1 : Number(stepText);
  let [from, to] = range === '*' ? [field.min, stepEnd(field)] : range.split('-').map(Number);
  from ??= field.min;
  to ??= stepText === undefined ? from : stepEnd(field);
  const values: number[] = [];
  for (let value = from; value <= to; value += step) {
    values.push(field.name === 'day-of-week' && value === 7 ? 0 : value);
  }
  return values;
}

/**
 * A comma list as its sorted distinct values: cron-parser refuses a list
 * whose parts overlap ('1-5,3', or an H that lands on a listed value), which
 * Kubernetes accepts, and a tenant should not fail for where its H landed.
 * A `*` in the list covers the field and stays `*`, which keeps cron's
 * day-of-month/day-of-week rule as written.
 */
function canonicalList(elements: string[], field: CronField): string {
  if (elements.includes('*')) return '*';
  const values = new Set(elements.flatMap((element) => elementValues(element, field)));
  return [...values].sort((a, b) => a - b).join(',');
}

/**
 * The schedule with every H replaced by this tenant's value, checked by
 * cron-parser. Throws INVALID_SPEC naming the spec field when the schedule
 * is not valid or can never run (e.g. '0 0 30 2 *').
 */
export function expandSchedule(
  schedule: string,
  tenantName: string,
  purpose: SchedulePurpose,
): string {
  const where = SPEC_FIELD[purpose];
  const problems = cronScheduleProblems(schedule);
  if (problems.length > 0) {
    throw new OperatorError(ERROR_CODES.INVALID_SPEC, `${where}: ${problems.join('; ')}`);
  }
  const expanded = schedule
    .split(' ')
    .map((value, index) => {
      const field = CRON_FIELDS[index]!;
      const elements = value
        .split(',')
        .map((element, position) =>
          expandElement(element, field, stableHash(tenantName, purpose, index, position)),
        );
      return elements.length === 1 ? elements[0]! : canonicalList(elements, field);
    })
    .join(' ');
  const reason = whyNeverRuns(expanded);
  if (reason !== undefined) {
    throw new OperatorError(
      ERROR_CODES.INVALID_SPEC,
      `${where}: '${schedule}' (as '${expanded}' for this tenant) is not a schedule that runs: ${reason}`,
    );
  }
  return expanded;
}

// cron-parser answers in about 0.1 ms (it works in the time zone through
// luxon), and every reconcile of a tenant with backups asks four times: the
// answers are remembered. Schedules repeat across tenants (H puts each
// tenant in one of a few dozen slots), so a bounded memory suffices.
const MAX_REMEMBERED = 2_000;

/** By expanded schedule: why cron-parser refuses it ('' when it accepts it). */
const refusals = new BoundedMemo<string>(MAX_REMEMBERED);

function whyNeverRuns(expanded: string): string | undefined {
  const reason = refusals.get(expanded, () => {
    try {
      CronExpressionParser.parse(expanded, { tz: 'Etc/UTC', strict: false });
      return '';
    } catch (err: unknown) {
      return err instanceof Error ? err.message : String(err);
    }
  });
  return reason === '' ? undefined : reason;
}

/**
 * By expanded schedule: the last answer, and the time it was asked after.
 * It stands for any later time before the run itself: no run lies between.
 */
const lastAnswers = new Map<string, { after: number; next: Date }>();

/** When an expanded schedule next runs after `after` (UTC, as the CronJob's timeZone). */
export function nextRun(expanded: string, after: Date): Date {
  const at = after.getTime();
  const known = lastAnswers.get(expanded);
  if (known && known.after <= at && at < known.next.getTime()) return new Date(known.next);
  const next = CronExpressionParser.parse(expanded, { tz: 'Etc/UTC', currentDate: after })
    .next()
    .toDate();
  if (lastAnswers.size >= MAX_REMEMBERED) lastAnswers.clear();
  lastAnswers.set(expanded, { after: at, next });
  return new Date(next);
}
