import { ERROR_CODES, OperatorError } from '../errors.ts';
import { UNPRIVILEGED, type PostgresAdmin, type RoleRow, type TenantFootprint } from './admin.ts';
import { verifierAccepts } from './scram.ts';
import type { DatabaseIdentifiers } from './identifiers.ts';

// A tenant's whole footprint on one server, in the order PostgreSQL's
// dependencies demand: the owner role before the database it owns, the
// database gone before the roles that own or may enter it. `claim` is the
// tenant's ownership marker (ownership.ts): nothing without it is touched.

export interface LoginCredentials {
  role: string;
  password: string;
}

export interface EnsureTenantOptions {
  /** The credentials Vault holds: that login role gets that password back if it drifted. */
  active?: LoginCredentials | undefined;
  /** false for a suspended or closed tenant: everything repaired, nobody let in. */
  canLogin?: boolean;
  /**
   * Whether the login role that is not active may log in: during a
   * rotation's grace period only (default: as canLogin). Without an active
   * role it applies to the second login role, since the first becomes active.
   */
  standbyCanLogin?: boolean;
}

/**
 * The tenant's roles and database that exist but are not the tenant's, by
 * name ("role t_acme", "database t_acme (owned by role x)"). Reads only: it
 * runs before anything is written, so a conflict leaves the server untouched.
 */
export async function foreignDatabaseObjects(
  admin: PostgresAdmin,
  ids: DatabaseIdentifiers,
  claim: string,
): Promise<string[]> {
  const footprint = await admin.inspectTenant([ids.ownerRole, ...ids.loginRoles], ids.database);
  return foreignInFootprint(footprint, ids, claim);
}

/** The same as foreignDatabaseObjects, from a footprint already read (no query). */
export function foreignInFootprint(
  footprint: TenantFootprint,
  ids: DatabaseIdentifiers,
  claim: string,
): string[] {
  const foreign: string[] = [];
  for (const role of [ids.ownerRole, ...ids.loginRoles]) {
    const row = footprint.roles.get(role);
    if (row && row.marker !== claim) foreign.push(`role ${role}`);
  }
  const database = footprint.database;
  if (database && (database.owner !== ids.ownerRole || database.owner_marker !== claim)) {
    foreign.push(`database ${ids.database} (owned by role ${database.owner})`);
  }
  return foreign;
}

function roleIs(
  row: RoleRow | undefined,
  claim: string,
  wanted: Partial<Record<keyof typeof UNPRIVILEGED | 'rolcanlogin' | 'rolinherit', boolean>>,
): row is RoleRow {
  return (
    row !== undefined &&
    row.marker === claim &&
    row.valid_forever &&
    Object.entries(wanted).every(([attribute, value]) => row[attribute as keyof RoleRow] === value)
  );
}

/**
 * Whether ensureTenantDatabase would change nothing, judged from one
 * footprint: then a resync needs no other query. Any doubt (a verifier that
 * cannot be read, a password that does not match) answers false, and the
 * full, statement-by-statement repair runs.
 */
export async function footprintSettled(
  footprint: TenantFootprint,
  ids: DatabaseIdentifiers,
  claim: string,
  options: EnsureTenantOptions = {},
): Promise<boolean> {
  if (!roleIs(footprint.roles.get(ids.ownerRole), claim, { rolcanlogin: false, ...UNPRIVILEGED }))
    return false;
  const database = footprint.database;
  if (
    !database ||
    database.owner !== ids.ownerRole ||
    database.owner_marker !== claim ||
    database.public_has_privileges ||
    database.other_grantees.length > 0 ||
    !database.owner_has_connect
  )
    return false;
  for (const { role, canLogin, password } of wantedLogins(ids, options)) {
    const row = footprint.roles.get(role);
    if (!roleIs(row, claim, { rolcanlogin: canLogin, ...UNPRIVILEGED, rolinherit: true }))
      return false;
    if (!row.member_of.includes(ids.ownerRole) || !row.settings.includes(`role=${ids.ownerRole}`))
      return false;
    if (password !== undefined) {
      const verifier = footprint.verifiers?.get(role);
      if (typeof verifier !== 'string' || !(await verifierAccepts(verifier, password)))
        return false;
    }
  }
  return true;
}

/** Returns whether anything had to change. */
export async function ensureTenantDatabase(
  admin: PostgresAdmin,
  ids: DatabaseIdentifiers,
  claim: string,
  options: EnsureTenantOptions = {},
): Promise<boolean> {
  let changed = await admin.ensureOwnerRole(ids.ownerRole, claim);
  changed = (await admin.ensureDatabase(ids.database, ids.ownerRole, claim)) || changed;
  for (const { role, canLogin, password } of wantedLogins(ids, options)) {
    changed =
      (await admin.ensureLoginRole(role, ids.ownerRole, claim, password, { canLogin })) || changed;
  }
  return changed;
}

/** Each login role as wanted: whether it may log in, and the password it must accept (if known). */
function wantedLogins(
  ids: DatabaseIdentifiers,
  options: EnsureTenantOptions,
): { role: string; canLogin: boolean; password: string | undefined }[] {
  const activeRole = options.active?.role ?? ids.loginRoles[0];
  return ids.loginRoles.map((role) => {
    const active = role === activeRole;
    return {
      role,
      canLogin: (options.canLogin ?? true) && (active || (options.standbyCanLogin ?? true)),
      password: active ? options.active?.password : undefined,
    };
  });
}

/**
 * Closure and suspension: new logins refused first, then open sessions
 * ended, so none can slip in between. Returns the sessions ended.
 */
export async function revokeTenantAccess(
  admin: PostgresAdmin,
  ids: DatabaseIdentifiers,
  claim: string,
): Promise<{ revoked: string[]; ended: number }> {
  const revoked: string[] = [];
  for (const role of ids.loginRoles)
    if (await admin.setLogin(role, false, claim)) revoked.push(role);
  return { revoked, ended: await admin.terminateSessions(ids.loginRoles) };
}

/** What a purge of the tenant's database did: dropped, or left as someone else's. */
export interface DroppedDatabase {
  dropped: string[];
  /** Objects of the tenant's names that carry no claim of this tenant: never dropped. */
  notOurs: string[];
}

/**
 * Purge: the database, then the login roles, then the owner role. Each
 * object of the tenant's names that carries another claim (or none) is
 * left, and said so: it was never this tenant's data. Safe to repeat after
 * a crash at any step.
 */
export async function dropTenantDatabase(
  admin: PostgresAdmin,
  ids: DatabaseIdentifiers,
  claim: string,
): Promise<DroppedDatabase> {
  const result: DroppedDatabase = { dropped: [], notOurs: [] };
  const attempt = async (what: string, drop: () => Promise<boolean>) => {
    try {
      if (await drop()) result.dropped.push(what);
    } catch (err: unknown) {
      if (!(err instanceof OperatorError && err.code === ERROR_CODES.FOREIGN_OBJECT)) throw err;
      result.notOurs.push(what);
    }
  };
  await attempt(`database ${ids.database}`, () =>
    admin.dropDatabase(ids.database, ids.ownerRole, claim),
  );
  for (const role of ids.loginRoles)
    await attempt(`role ${role}`, () => admin.dropRole(role, claim));
  await attempt(`role ${ids.ownerRole}`, () => admin.dropRole(ids.ownerRole, claim));
  return result;
}
