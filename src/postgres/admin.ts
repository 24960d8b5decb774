import pg from 'pg';
import { ERROR_CODES, OperatorError } from '../errors.ts';
import { clientConfig, type ConnectionOptions, type ServerConnection } from './connection.ts';
import { quoteIdentifier, quoteLiteral } from './identifiers.ts';
import { foreignObject } from './ownership.ts';
import { generatePassword } from './password.ts';
import { isLoginRejected, SQLSTATE, sqlState, toPostgresError } from './pg-errors.ts';
import { scramSha256Verifier, verifierAccepts } from './scram.ts';

// Everything the operator does to a PostgreSQL server as its admin role. Each
// method reads the catalogs first and writes only what differs, so a resync
// of a settled tenant changes nothing and any step can be repeated after a
// crash. Roles carry their tenant's marker comment (ownership.ts), and a
// database counts as the tenant's when its marked owner role owns it: every
// method that changes a tenant's object takes that marker (`claim`) and
// refuses, with FOREIGN_OBJECT, an object that does not carry it.

export interface RoleState {
  exists: boolean;
  canLogin: boolean;
}

/** Who a role or database belongs to, as the catalogs say. */
export interface RoleClaim {
  exists: boolean;
  /** The role's comment; null when it has none. */
  marker: string | null;
}

export interface DatabaseClaim {
  owner: string;
  /** The owner role's comment; null when it has none. */
  ownerMarker: string | null;
}

export interface PostgresAdminOptions extends ConnectionOptions {
  /** Pool size; the admin's work is a few short statements at a time. */
  maxConnections?: number;
  /**
   * Called before every statement that changes the server's state (and
   * before ending sessions). Throwing stops the statement: a replica that
   * lost leadership must not write.
   */
  beforeWrite?: () => void;
}

export interface LoginRoleOptions {
  /** false keeps a suspended tenant's role repaired but locked. Default true. */
  canLogin?: boolean;
}

/** A role as the catalogs describe it (ROLE_QUERY). */
export interface RoleRow {
  rolcanlogin: boolean;
  rolsuper: boolean;
  rolcreatedb: boolean;
  rolcreaterole: boolean;
  rolreplication: boolean;
  rolbypassrls: boolean;
  rolinherit: boolean;
  valid_forever: boolean;
  marker: string | null;
  member_of: string[];
  settings: string[];
}

type Attribute = Exclude<keyof RoleRow, 'valid_forever' | 'marker' | 'member_of' | 'settings'>;

const KEYWORDS: Record<Attribute, readonly [string, string]> = {
  rolcanlogin: ['LOGIN', 'NOLOGIN'],
  rolsuper: ['SUPERUSER', 'NOSUPERUSER'],
  rolcreatedb: ['CREATEDB', 'NOCREATEDB'],
  rolcreaterole: ['CREATEROLE', 'NOCREATEROLE'],
  rolreplication: ['REPLICATION', 'NOREPLICATION'],
  rolbypassrls: ['BYPASSRLS', 'NOBYPASSRLS'],
  rolinherit: ['INHERIT', 'NOINHERIT'],
};

/** What no tenant role may have: every one of these false. */
export const UNPRIVILEGED = {
  rolsuper: false,
  rolcreatedb: false,
  rolcreaterole: false,
  rolreplication: false,
  rolbypassrls: false,
} as const;

const ROLE_COLUMNS = `
  r.rolcanlogin, r.rolsuper, r.rolcreatedb, r.rolcreaterole, r.rolreplication,
         r.rolbypassrls, r.rolinherit,
         coalesce(r.rolvaliduntil = 'infinity', true) AS valid_forever,
         shobj_description(r.oid, 'pg_authid') AS marker,
         ARRAY(SELECT g.rolname::text FROM pg_auth_members m JOIN pg_roles g ON g.oid = m.roleid
               WHERE m.member = r.oid) AS member_of,
         coalesce((SELECT s.setconfig FROM pg_db_role_setting s
                   WHERE s.setrole = r.oid AND s.setdatabase = 0), '{}') AS settings`;

const ROLE_QUERY = `SELECT ${ROLE_COLUMNS} FROM pg_roles r WHERE r.rolname = $1`;

const DATABASE_COLUMNS = `
  o.rolname AS owner, shobj_description(o.oid, 'pg_authid') AS owner_marker,
         d.datacl IS NULL OR EXISTS (SELECT 1 FROM aclexplode(d.datacl) a WHERE a.grantee = 0)
           AS public_has_privileges,
         EXISTS (SELECT 1 FROM aclexplode(d.datacl) a
                 WHERE a.grantee = d.datdba AND a.privilege_type = 'CONNECT') AS owner_has_connect,
         ARRAY(SELECT DISTINCT g.rolname::text FROM aclexplode(d.datacl) a
               JOIN pg_roles g ON g.oid = a.grantee WHERE a.grantee <> d.datdba) AS other_grantees`;

const DATABASE_QUERY = `SELECT ${DATABASE_COLUMNS}
  FROM pg_database d JOIN pg_roles o ON o.oid = d.datdba WHERE d.datname = $1`;

/**
 * A tenant's roles ($1) and database ($2) in one statement: what a resync of
 * a settled tenant reads, and all it reads when nothing differs. With
 * `verifiers`, each role's password verifier too (pg_authid: superuser only).
 */
function footprintQuery(verifiers: boolean): string {
  return `
  SELECT
    (SELECT coalesce(json_agg(x), '[]'::json) FROM (
       SELECT r.rolname, ${ROLE_COLUMNS}
              ${verifiers ? ', (SELECT p.rolpassword FROM pg_authid p WHERE p.oid = r.oid) AS verifier' : ''}
       FROM pg_roles r WHERE r.rolname = ANY($1::text[])) x) AS roles,
    (SELECT row_to_json(x) FROM (
       SELECT ${DATABASE_COLUMNS}
       FROM pg_database d JOIN pg_roles o ON o.oid = d.datdba WHERE d.datname = $2) x) AS database`;
}

/** A tenant's roles and database as one read found them (inspectTenant). */
export interface TenantFootprint {
  roles: ReadonlyMap<string, RoleRow>;
  database: DatabaseRow | undefined;
  /** Password verifiers by role; undefined when the admin may not read them. */
  verifiers: ReadonlyMap<string, string | null> | undefined;
}

/** A database as the catalogs describe it (DATABASE_QUERY). */
export interface DatabaseRow {
  owner: string;
  owner_marker: string | null;
  public_has_privileges: boolean;
  owner_has_connect: boolean;
  /** Roles other than the owner with privileges on the database: another tenant's, say. */
  other_grantees: string[];
}

export class PostgresAdmin {
  private readonly pool: pg.Pool;
  private readonly server: ServerConnection;
  private readonly options: ConnectionOptions;
  private readonly beforeWrite: () => void;
  /** Only a superuser may read pg_authid; without it passwords are set blind. */
  private canReadVerifiers = true;

  constructor(server: ServerConnection, options: PostgresAdminOptions = {}) {
    const { maxConnections = 4, beforeWrite = () => undefined, ...connection } = options;
    this.server = server;
    this.options = connection;
    this.beforeWrite = beforeWrite;
    this.pool = new pg.Pool({
      ...clientConfig(server, connection),
      max: maxConnections,
      idleTimeoutMillis: 30_000,
    });
    // An idle connection the server dropped is discarded by the pool; without
    // a listener the 'error' event would end the process.
    this.pool.on('error', () => undefined);
  }

  async ping(): Promise<{ serverVersion: string }> {
    const rows = await this.query<{ server_version: string }>(
      'reach the server',
      'SHOW server_version',
    );
    return { serverVersion: rows[0]?.server_version ?? 'unknown' };
  }

  /**
   * The tenant's roles and database in one query, which also proves the
   * server reachable: a settled tenant's resync reads this and nothing else.
   */
  async inspectTenant(roles: readonly string[], database: string): Promise<TenantFootprint> {
    const run = (verifiers: boolean) =>
      this.query<{
        roles: (RoleRow & { rolname: string; verifier?: string | null })[];
        database: DatabaseRow | null;
      }>(`inspect roles ${roles.join(', ')} and database ${database}`, footprintQuery(verifiers), [
        [...roles],
        database,
      ]);
    let rows;
    const verifiers = this.canReadVerifiers;
    try {
      rows = await run(verifiers);
    } catch (err: unknown) {
      if (!verifiers || sqlState(err) !== SQLSTATE.INSUFFICIENT_PRIVILEGE) throw err;
      this.canReadVerifiers = false;
      rows = await run(false);
    }
    const row = rows[0];
    const found = row?.roles ?? [];
    return {
      roles: new Map(found.map((r) => [r.rolname, r])),
      database: row?.database ?? undefined,
      verifiers: this.canReadVerifiers
        ? new Map(found.map((r) => [r.rolname, r.verifier ?? null]))
        : undefined,
    };
  }

  async roleExists(role: string): Promise<boolean> {
    return (await this.roleState(role)).exists;
  }

  async roleState(role: string): Promise<RoleState> {
    const row = await this.readRole(role);
    return { exists: row !== undefined, canLogin: row?.rolcanlogin ?? false };
  }

  /** The role's marker comment, read-only: what a check before any write looks at. */
  async roleClaim(role: string): Promise<RoleClaim> {
    const row = await this.readRole(role);
    return { exists: row !== undefined, marker: row?.marker ?? null };
  }

  /** The database's owner and its marker; undefined when there is no such database. */
  async databaseClaim(database: string): Promise<DatabaseClaim | undefined> {
    const row = await this.readDatabase(database);
    return row && { owner: row.owner, ownerMarker: row.owner_marker };
  }

  async databaseExists(database: string): Promise<boolean> {
    const rows = await this.query(
      `look up database ${database}`,
      'SELECT 1 FROM pg_database WHERE datname = $1',
      [database],
    );
    return rows.length > 0;
  }

  /** A role that owns a tenant's database and objects, and cannot log in. Returns whether anything changed. */
  async ensureOwnerRole(role: string, claim: string): Promise<boolean> {
    return this.retryOnRace(() =>
      this.ensureRole(role, claim, { rolcanlogin: false, ...UNPRIVILEGED }, () =>
        Promise.resolve(`CREATE ROLE ${quoteIdentifier(role)} NOLOGIN`),
      ),
    );
  }

  /**
   * A role applications log in with. It is a member of `ownerRole`, and its
   * sessions start as `ownerRole`, so whatever they create belongs to the
   * owner and survives a rotation to the other login role. `password`
   * undefined keeps the current one (a new role gets one nobody knows).
   */
  async ensureLoginRole(
    role: string,
    ownerRole: string,
    claim: string,
    password: string | undefined,
    options: LoginRoleOptions = {},
  ): Promise<boolean> {
    await this.requireOwnerRole(ownerRole, claim);
    const wanted = { rolcanlogin: options.canLogin ?? true, ...UNPRIVILEGED, rolinherit: true };
    const create = async () => {
      const verifier = await scramSha256Verifier(password ?? generatePassword());
      return `CREATE ROLE ${quoteIdentifier(role)} ${wanted.rolcanlogin ? 'LOGIN' : 'NOLOGIN'} PASSWORD ${quoteLiteral(verifier)}`;
    };
    return this.retryOnRace(() =>
      this.ensureRole(role, claim, wanted, create, { ownerRole, password }),
    );
  }

  /** Returns whether the password had to change. */
  async setPassword(role: string, password: string, claim: string): Promise<boolean> {
    const row = await this.readRole(role);
    if (!row) {
      throw new OperatorError(
        ERROR_CODES.INTERNAL,
        `cannot set a password: role ${role} does not exist`,
      );
    }
    this.assertClaimed(role, row, claim);
    if (await this.passwordMatches(role, password)) return false;
    await this.write(
      `set the password of role ${role}`,
      `ALTER ROLE ${quoteIdentifier(role)} PASSWORD ${quoteLiteral(await scramSha256Verifier(password))}`,
    );
    return true;
  }

  /**
   * Allows or forbids new logins; sessions already open stay until
   * terminateSessions. Forbidding login to a role that does not exist is
   * already done.
   */
  async setLogin(role: string, canLogin: boolean, claim: string): Promise<boolean> {
    const row = await this.readRole(role);
    if (!row) {
      if (!canLogin) return false;
      throw new OperatorError(
        ERROR_CODES.INTERNAL,
        `cannot allow login: role ${role} does not exist`,
      );
    }
    this.assertClaimed(role, row, claim);
    if (row.rolcanlogin === canLogin) return false;
    await this.write(
      `${canLogin ? 'allow' : 'forbid'} login for role ${role}`,
      `ALTER ROLE ${quoteIdentifier(role)} ${canLogin ? 'LOGIN' : 'NOLOGIN'}`,
    );
    return true;
  }

  /** Ends every session logged in as one of `roles`, waiting until each is gone. Returns how many ended. */
  async terminateSessions(roles: readonly string[]): Promise<number> {
    if (roles.length === 0) return 0;
    return this.terminate(
      `terminate sessions of ${roles.join(', ')}`,
      'usename = ANY($1::text[])',
      [[...roles]],
    );
  }

  /**
   * The database, owned by `ownerRole`, which alone (with its members) may
   * connect. CREATE DATABASE cannot run inside a transaction, so the steps
   * are separate and each is checked before it runs.
   */
  async ensureDatabase(database: string, ownerRole: string, claim: string): Promise<boolean> {
    const action = `ensure database ${database}`;
    let row = await this.readDatabase(database);
    // A database someone else made is refused before anything is looked at
    // on our side, so the message names the real obstacle.
    if (row) this.assertDatabaseClaimed(database, row, ownerRole, claim);
    await this.requireOwnerRole(ownerRole, claim);
    let changed = false;
    if (!row) {
      try {
        await this.write(
          action,
          `CREATE DATABASE ${quoteIdentifier(database)} OWNER ${quoteIdentifier(ownerRole)}`,
        );
        changed = true;
      } catch (err: unknown) {
        // Created meanwhile (another replica, a retried call): check it below.
        if (sqlState(err) !== SQLSTATE.DUPLICATE_DATABASE) throw err;
      }
      row = await this.readDatabase(database);
      if (!row) throw new OperatorError(ERROR_CODES.INTERNAL, `${action}: created but not found`);
      this.assertDatabaseClaimed(database, row, ownerRole, claim);
    }
    if (row.public_has_privileges) {
      await this.write(action, `REVOKE ALL ON DATABASE ${quoteIdentifier(database)} FROM PUBLIC`);
      changed = true;
    }
    // The owner (a member of it: the tenant's login role) may grant CONNECT
    // to any role, another tenant's included: a way between tenants, so drift.
    for (const grantee of row.other_grantees) {
      await this.write(
        action,
        `REVOKE ALL ON DATABASE ${quoteIdentifier(database)} FROM ${quoteIdentifier(grantee)}`,
      );
      changed = true;
    }
    if (!row.owner_has_connect) {
      await this.write(
        action,
        `GRANT CONNECT ON DATABASE ${quoteIdentifier(database)} TO ${quoteIdentifier(ownerRole)}`,
      );
      changed = true;
    }
    return changed;
  }

  /** Ends the database's sessions and drops it. Returns whether it existed. */
  async dropDatabase(database: string, ownerRole: string, claim: string): Promise<boolean> {
    const row = await this.readDatabase(database);
    if (!row) return false;
    this.assertDatabaseClaimed(database, row, ownerRole, claim);
    await this.terminate(`terminate sessions on database ${database}`, 'datname = $1', [database]);
    await this.write(
      `drop database ${database}`,
      `DROP DATABASE IF EXISTS ${quoteIdentifier(database)} WITH (FORCE)`,
    );
    return true;
  }

  /**
   * Ends the role's sessions and drops it. An owner role can only go after
   * its database. Returns whether it existed.
   */
  async dropRole(role: string, claim: string): Promise<boolean> {
    const row = await this.readRole(role);
    if (!row) return false;
    this.assertClaimed(role, row, claim);
    await this.terminateSessions([role]);
    try {
      await this.write(`drop role ${role}`, `DROP ROLE IF EXISTS ${quoteIdentifier(role)}`);
    } catch (err: unknown) {
      if (sqlState(err) === SQLSTATE.DEPENDENT_OBJECTS_STILL_EXIST) {
        throw new OperatorError(
          ERROR_CODES.INTERNAL,
          `drop role ${role}: it still owns objects or holds privileges (drop its database first)`,
          { cause: err },
        );
      }
      throw err;
    }
    return true;
  }

  /** Databases on the server (templates excepted), or those whose name starts with `prefix`. */
  async countDatabases(prefix?: string): Promise<number> {
    const rows = await this.query<{ count: number }>(
      'count databases',
      `SELECT count(*)::int AS count FROM pg_database
       WHERE NOT datistemplate AND ($1::text IS NULL OR starts_with(datname, $1::text))`,
      [prefix ?? null],
    );
    return rows[0]?.count ?? 0;
  }

  /**
   * Logs in as `role` with a connection of its own, exactly as an
   * application would. false: the server refused (wrong password, NOLOGIN, no
   * CONNECT); an unreachable server throws, since it proves nothing.
   */
  async passwordWorks(role: string, password: string, database: string): Promise<boolean> {
    const client = new pg.Client(
      clientConfig({ ...this.server, user: role, password, database }, this.options),
    );
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('SELECT 1');
      return true;
    } catch (err: unknown) {
      if (isLoginRejected(err)) return false;
      throw toPostgresError(err, `log in as ${role} to ${database}`);
    } finally {
      await client.end().catch(() => undefined);
    }
  }

  async close(): Promise<void> {
    await this.pool.end();
  }

  private async ensureRole(
    role: string,
    claim: string,
    wanted: Partial<Record<Attribute, boolean>>,
    create: () => Promise<string>,
    login?: { ownerRole: string; password: string | undefined },
  ): Promise<boolean> {
    const q = quoteIdentifier(role);
    const row = await this.readRole(role);
    const statements: string[] = [];
    if (!row) {
      // CREATE ROLE's defaults are already the unprivileged ones we want.
      statements.push(await create(), `COMMENT ON ROLE ${q} IS ${quoteLiteral(claim)}`);
    } else {
      this.assertClaimed(role, row, claim);
      const changes = Object.entries(wanted)
        .filter(([attribute, value]) => row[attribute as Attribute] !== value)
        .map(([attribute, value]) => KEYWORDS[attribute as Attribute][value ? 0 : 1]);
      // Only differing attributes are named: a non-superuser admin may not
      // even say NOSUPERUSER.
      if (changes.length > 0 || !row.valid_forever) {
        statements.push(`ALTER ROLE ${q} ${changes.join(' ')} VALID UNTIL 'infinity'`);
      }
    }
    if (login) {
      if (!row?.member_of.includes(login.ownerRole)) {
        statements.push(`GRANT ${quoteIdentifier(login.ownerRole)} TO ${q}`);
      }
      if (!row?.settings.includes(`role=${login.ownerRole}`)) {
        statements.push(`ALTER ROLE ${q} SET role = ${quoteLiteral(login.ownerRole)}`);
      }
      if (
        row &&
        login.password !== undefined &&
        !(await this.passwordMatches(role, login.password))
      ) {
        statements.push(
          `ALTER ROLE ${q} PASSWORD ${quoteLiteral(await scramSha256Verifier(login.password))}`,
        );
      }
    }
    if (statements.length === 0) return false;
    await this.transaction(`ensure role ${role}`, statements);
    return true;
  }

  private assertClaimed(role: string, row: RoleRow, claim: string): void {
    if (row.marker !== claim) throw foreignObject(`role ${role}`, claim);
  }

  private assertDatabaseClaimed(
    database: string,
    row: DatabaseRow,
    ownerRole: string,
    claim: string,
  ): void {
    if (row.owner !== ownerRole || row.owner_marker !== claim) {
      throw foreignObject(`database ${database} (owned by role ${row.owner})`, claim);
    }
  }

  /** Membership in (or ownership by) any other role could hand a tenant far more than its database. */
  private async requireOwnerRole(ownerRole: string, claim: string): Promise<void> {
    const row = await this.readRole(ownerRole);
    if (!row) {
      throw new OperatorError(ERROR_CODES.INTERNAL, `owner role ${ownerRole} does not exist yet`);
    }
    this.assertClaimed(ownerRole, row, claim);
    if (row.rolcanlogin || row.rolsuper || row.rolcreatedb || row.rolcreaterole) {
      throw new OperatorError(
        ERROR_CODES.INTERNAL,
        `role ${ownerRole} is not an unprivileged owner role (ensureOwnerRole repairs it)`,
      );
    }
  }

  /** true/false when the stored verifier can be read; false (so: set it) when it cannot. */
  private async passwordMatches(role: string, password: string): Promise<boolean> {
    if (!this.canReadVerifiers) return false;
    try {
      const rows = await this.query<{ rolpassword: string | null }>(
        `read the password verifier of role ${role}`,
        'SELECT rolpassword FROM pg_authid WHERE rolname = $1',
        [role],
      );
      const verifier = rows[0]?.rolpassword;
      return typeof verifier === 'string' && (await verifierAccepts(verifier, password));
    } catch (err: unknown) {
      if (sqlState(err) !== SQLSTATE.INSUFFICIENT_PRIVILEGE) throw err;
      this.canReadVerifiers = false;
      return false;
    }
  }

  private async readRole(role: string): Promise<RoleRow | undefined> {
    const rows = await this.query<RoleRow>(`look up role ${role}`, ROLE_QUERY, [role]);
    return rows[0];
  }

  private async readDatabase(database: string): Promise<DatabaseRow | undefined> {
    const rows = await this.query<DatabaseRow>(`look up database ${database}`, DATABASE_QUERY, [
      database,
    ]);
    return rows[0];
  }

  private async terminate(action: string, where: string, values: unknown[]): Promise<number> {
    // The targets are materialized first: in one WHERE clause the planner
    // may call pg_terminate_backend before the filter that picks them.
    // Its timeout makes it wait until each backend has exited.
    this.beforeWrite();
    const rows = await this.query<{ count: number }>(
      action,
      `WITH targets AS MATERIALIZED (
         SELECT pid FROM pg_stat_activity WHERE ${where} AND pid <> pg_backend_pid())
       SELECT count(*)::int AS count FROM targets WHERE pg_terminate_backend(pid, 5000)`,
      values,
    );
    return rows[0]?.count ?? 0;
  }

  private async query<T extends pg.QueryResultRow>(
    action: string,
    text: string,
    values: unknown[] = [],
  ): Promise<T[]> {
    try {
      return (await this.pool.query<T>(text, values)).rows;
    } catch (err: unknown) {
      throw toPostgresError(err, action);
    }
  }

  /** A statement that changes state: the caller's fence is asked first. */
  private async write(action: string, text: string): Promise<void> {
    this.beforeWrite();
    await this.query(action, text);
  }

  private async transaction(action: string, statements: string[]): Promise<void> {
    this.beforeWrite();
    let client: pg.PoolClient;
    try {
      client = await this.pool.connect();
    } catch (err: unknown) {
      throw toPostgresError(err, action);
    }
    let broken = false;
    try {
      await client.query('BEGIN');
      for (const statement of statements) await client.query(statement);
      await client.query('COMMIT');
    } catch (err: unknown) {
      await client.query('ROLLBACK').catch(() => {
        broken = true;
      });
      throw toPostgresError(err, action);
    } finally {
      client.release(broken);
    }
  }

  /** Two callers creating the same role at once: the loser looks again and finds it. */
  private async retryOnRace(ensure: () => Promise<boolean>): Promise<boolean> {
    try {
      return await ensure();
    } catch (err: unknown) {
      if (sqlState(err) !== SQLSTATE.DUPLICATE_OBJECT) throw err;
      return ensure();
    }
  }
}
