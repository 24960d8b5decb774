import type { PostgresAdmin } from './admin.ts';
import type { DatabaseIdentifiers } from './identifiers.ts';

// A tenant's whole footprint on one server, in the order PostgreSQL's
// dependencies demand: the owner role before the database it owns, the
// database gone before the roles that own or may enter it.

export interface LoginCredentials {
  role: string;
  password: string;
}

export interface EnsureTenantOptions {
  /** The credentials Vault holds: that login role gets that password back if it drifted. */
  active?: LoginCredentials | undefined;
  /** false for a suspended or closed tenant: everything repaired, nobody let in. */
  canLogin?: boolean;
}

/** Returns whether anything had to change. */
export async function ensureTenantDatabase(
  admin: PostgresAdmin,
  ids: DatabaseIdentifiers,
  options: EnsureTenantOptions = {},
): Promise<boolean> {
  const canLogin = options.canLogin ?? true;
  let changed = await admin.ensureOwnerRole(ids.ownerRole);
  changed = (await admin.ensureDatabase(ids.database, ids.ownerRole)) || changed;
  for (const role of ids.loginRoles) {
    const password = role === options.active?.role ? options.active.password : undefined;
    changed = (await admin.ensureLoginRole(role, ids.ownerRole, password, { canLogin })) || changed;
  }
  return changed;
}

/**
 * Closure and suspension: new logins refused first, then open sessions
 * ended, so none can slip in between. Returns the sessions ended.
 */
export async function revokeTenantAccess(
  admin: PostgresAdmin,
  ids: DatabaseIdentifiers,
): Promise<number> {
  for (const role of ids.loginRoles) await admin.setLogin(role, false);
  return admin.terminateSessions(ids.loginRoles);
}

/** Purge. Safe to repeat after a crash at any step. Returns whether anything was still there. */
export async function dropTenantDatabase(
  admin: PostgresAdmin,
  ids: DatabaseIdentifiers,
): Promise<boolean> {
  let dropped = await admin.dropDatabase(ids.database);
  for (const role of ids.loginRoles) dropped = (await admin.dropRole(role)) || dropped;
  dropped = (await admin.dropRole(ids.ownerRole)) || dropped;
  return dropped;
}
