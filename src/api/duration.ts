import { z } from 'zod';

// Durations in specs are written the way people say them: 30d, 26h, 90m, 45s.
export const DURATION_PATTERN = /^[0-9]+[smhd]$/;

const UNIT_MS = { s: 1_000, m: 60_000, h: 3_600_000, d: 86_400_000 } as const;

export const durationSchema = z
  .string()
  .regex(DURATION_PATTERN, 'must be a whole number followed by s, m, h or d, e.g. 60d');

export function durationToMs(duration: string): number {
  if (!DURATION_PATTERN.test(duration)) {
    throw new RangeError(`invalid duration "${duration}": expected e.g. 60d, 26h, 30m, 45s`);
  }
  const unit = duration.slice(-1) as keyof typeof UNIT_MS;
  return Number(duration.slice(0, -1)) * UNIT_MS[unit];
}
