import { ANNOTATION_CLOSED_AT } from '../api/constants.ts';
import { durationToMs } from '../api/duration.ts';
import type { TenantObject } from './model.ts';

// The retention clock of a closed tenant, read one way everywhere (status,
// the wake-up, the annotation's upkeep): when it was closed is the
// annotation the operator keeps (it survives a lost status), else status;
// a value that is not a time (a hand edit) is never trusted.

/** When the tenant was closed, as recorded; undefined if nothing usable is recorded. */
export function recordedClosedAt(tenant: TenantObject): string | undefined {
  const annotated = tenant.metadata.annotations?.[ANNOTATION_CLOSED_AT];
  if (annotated !== undefined && Number.isFinite(Date.parse(annotated))) return annotated;
  const fromStatus = tenant.status?.closedAt;
  return fromStatus !== undefined && Number.isFinite(Date.parse(fromStatus))
    ? fromStatus
    : undefined;
}

/** When data closed at `closedAt` is due for erasure. */
export function purgeDueAfter(closedAt: string, afterClosure: string): Date {
  return new Date(Date.parse(closedAt) + durationToMs(afterClosure));
}
