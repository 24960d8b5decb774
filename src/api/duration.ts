import { z } from 'zod';

// Durations in specs are written the way people say them: 30d, 26h, 90m, 45s.
// A duration is a positive whole number (no leading zero, so never 0) and at
// most MAX_DURATION_DAYS long: added to a date it must still give a date, and
// a timer of 99999999d would overflow one.
export const DURATION_PATTERN = /^[1-9][0-9]*[smhd]$/;

export const MAX_DURATION_DAYS = 36_500;

const UNIT_SECONDS = { s: 1, m: 60, h: 3_600, d: 86_400 } as const;
const MAX_DURATION_SECONDS = MAX_DURATION_DAYS * UNIT_SECONDS.d;

/** The longest duration, in seconds, has this many digits; a longer string cannot be valid. */
const MAX_DURATION_LENGTH = String(MAX_DURATION_SECONDS).length + 1;

const PATTERN_MESSAGE = 'must be a whole number above 0 followed by s, m, h or d, e.g. 60d';
const BOUND_MESSAGE = `must be at most ${MAX_DURATION_DAYS}d (100 years)`;

function durationSeconds(duration: string): number {
  const unit = duration.slice(-1) as keyof typeof UNIT_SECONDS;
  return Number(duration.slice(0, -1)) * UNIT_SECONDS[unit];
}

/**
 * The same bound as a CEL rule, for the CRD. The pattern is checked again so
 * that a malformed value gets only the pattern's message, not a parse error
 * too; maxLength keeps int() within 64 bits.
 */
const CEL_BOUND_RULE = [
  `!self.matches('${DURATION_PATTERN.source}')`,
  `int(self.substring(0, size(self) - 1)) * {'s': 1, 'm': 60, 'h': 3600, 'd': 86400}[self.substring(size(self) - 1)] <= ${MAX_DURATION_SECONDS}`,
].join(' || ');

export const durationSchema = z
  .string()
  .max(MAX_DURATION_LENGTH, BOUND_MESSAGE)
  .regex(DURATION_PATTERN, PATTERN_MESSAGE)
  .refine(
    (value) => !DURATION_PATTERN.test(value) || durationSeconds(value) <= MAX_DURATION_SECONDS,
    {
      message: BOUND_MESSAGE,
    },
  )
  .meta({ 'x-kubernetes-validations': [{ rule: CEL_BOUND_RULE, message: BOUND_MESSAGE }] });

export function durationToMs(duration: string): number {
  if (!DURATION_PATTERN.test(duration)) {
    throw new RangeError(`invalid duration "${duration}": expected e.g. 60d, 26h, 30m, 45s`);
  }
  const seconds = durationSeconds(duration);
  if (seconds > MAX_DURATION_SECONDS) {
    throw new RangeError(`invalid duration "${duration}": ${BOUND_MESSAGE}`);
  }
  return seconds * 1_000;
}
