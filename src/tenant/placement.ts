import type { DatabaseServerSpec, DatabaseServerStatus } from '../api/databaseserver.ts';
import type { TenantObject } from './model.ts';

// Where a tenant's database goes: a reachable server of the tenant's region
// (any region when the tenant names none) with room left, the one with the
// most room first. Pure, so the rule is easy to test and to read.

export interface ServerView {
  name: string;
  spec: DatabaseServerSpec;
  status?: DatabaseServerStatus | undefined;
  /** Databases placed there now, counted from the Tenants (status lags). */
  placed: number;
}

export type Placement =
  | { server: ServerView }
  | {
      server?: undefined;
      reason: 'NoServerInRegion' | 'NoServerReachable' | 'NoCapacity';
      message: string;
    };

export function choosePlacement(servers: ServerView[], region: string | undefined): Placement {
  const where = region ? `in region ${region}` : 'in any region';
  const inRegion = servers.filter((s) => region === undefined || s.spec.region === region);
  if (inRegion.length === 0) {
    return { reason: 'NoServerInRegion', message: `no DatabaseServer ${where}` };
  }
  const reachable = inRegion.filter((s) => s.status?.reachable === true);
  if (reachable.length === 0) {
    return {
      reason: 'NoServerReachable',
      message: `no reachable DatabaseServer ${where} (${inRegion.map((s) => s.name).join(', ')})`,
    };
  }
  const withRoom = reachable
    .map((s) => ({ s, free: s.spec.capacity.maxDatabases - s.placed }))
    .filter(({ free }) => free > 0)
    .sort((a, b) => b.free - a.free || a.s.name.localeCompare(b.s.name));
  const best = withRoom[0];
  if (!best) {
    return { reason: 'NoCapacity', message: `every DatabaseServer ${where} is full` };
  }
  return { server: best.s };
}

/**
 * Whether a change to a DatabaseServer (reachable again, room freed) may
 * unblock this tenant: it wants a database (the spec's default) that is
 * not made yet. Read from the unvalidated spec: an invalid one is retried
 * by its own reconcile, not by a server's change.
 */
export function waitsForDatabase(tenant: TenantObject): boolean {
  if (tenant.status?.database?.name) return false;
  const spec = tenant.spec as { database?: { enabled?: unknown } } | undefined;
  return spec?.database?.enabled !== false;
}
