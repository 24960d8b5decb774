import { ERROR_CODES, OperatorError } from '../errors.ts';
import type { PostgresAdmin } from './admin.ts';
import type { DatabaseIdentifiers } from './identifiers.ts';
import { generatePassword } from './password.ts';
import type { LoginCredentials } from './tenant-database.ts';

// Password rotation that never leaves Vault holding a password that does not
// work. Two login roles take turns:
//   1. prepareRotation: a fresh password on the standby role, proven by a
//      real login (the active role and its sessions are untouched);
//   2. the caller writes the returned credentials to Vault;
//   3. after a grace period in which applications pick up the new secret,
//      retireStandbyRole gives the old role a password nobody knows and
//      takes its LOGIN: a session it still has open may set its own
//      password (any role may), but not give itself LOGIN back.
// A crash between any two steps leaves Vault's credentials working.

/** The login role a rotation moves to; the first when none is active yet. */
export function standbyLoginRole(ids: DatabaseIdentifiers, activeRole: string | undefined): string {
  const [first, second] = ids.loginRoles;
  if (activeRole === undefined) return first;
  if (activeRole === first) return second;
  if (activeRole === second) return first;
  throw new OperatorError(
    ERROR_CODES.INTERNAL,
    `role ${activeRole} is not a login role of database ${ids.database}`,
  );
}

export async function prepareRotation(
  admin: PostgresAdmin,
  ids: DatabaseIdentifiers,
  claim: string,
  activeRole: string | undefined,
): Promise<LoginCredentials> {
  const role = standbyLoginRole(ids, activeRole);
  const password = generatePassword();
  await admin.ensureLoginRole(role, ids.ownerRole, claim, password);
  if (!(await admin.passwordWorks(role, password, ids.database))) {
    throw new OperatorError(
      ERROR_CODES.INTERNAL,
      `role ${role} was given a new password but cannot log in to ${ids.database} with it`,
    );
  }
  return { role, password };
}

/**
 * Locks out the role that is not `activeRole` (named by what Vault holds, so
 * the active one cannot be locked out by mistake): NOLOGIN and a password
 * nobody knows. Sessions already open keep running, as both are checked only
 * at login: applications move over as they reconnect. Returns the retired role.
 */
export async function retireStandbyRole(
  admin: PostgresAdmin,
  ids: DatabaseIdentifiers,
  claim: string,
  activeRole: string,
): Promise<string> {
  const role = standbyLoginRole(ids, activeRole);
  if (await admin.roleExists(role)) {
    await admin.setLogin(role, false, claim);
    await admin.setPassword(role, generatePassword(), claim);
  }
  return role;
}
