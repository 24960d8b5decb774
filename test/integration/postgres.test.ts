import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { PostgresAdmin } from '../../src/postgres/admin.ts';
import { clientConfig, type ServerConnection } from '../../src/postgres/connection.ts';
import {
  databaseIdentifiersFor,
  type DatabaseIdentifiers,
} from '../../src/postgres/identifiers.ts';
import { ownershipMarker } from '../../src/postgres/ownership.ts';
import { generatePassword } from '../../src/postgres/password.ts';
import { sqlState } from '../../src/postgres/pg-errors.ts';
import { prepareRotation, retireStandbyRole } from '../../src/postgres/rotation.ts';
import {
  dropTenantDatabase,
  ensureTenantDatabase,
  foreignDatabaseObjects,
  footprintSettled,
  revokeTenantAccess,
  type LoginCredentials,
} from '../../src/postgres/tenant-database.ts';
import { requireEnv } from '../support/cluster.ts';
import { waitFor } from '../support/wait.ts';

// The PostgreSQL side of a tenant against the two real servers that
// hack/postgres.sh starts (TLS with their own CA, scram-sha-256 only).

function serverFromEnv(prefix: 'PG_EU' | 'PG_US'): ServerConnection {
  return {
    host: requireEnv(`${prefix}_HOST`),
    port: Number(requireEnv(`${prefix}_PORT`)),
    user: requireEnv(`${prefix}_ADMIN_USER`),
    password: requireEnv(`${prefix}_ADMIN_PASSWORD`),
    caCertificate: readFileSync(requireEnv('PG_CA_FILE'), 'utf8'),
  };
}

const eu = serverFromEnv('PG_EU');
const us = serverFromEnv('PG_US');
let euAdmin: PostgresAdmin;
let usAdmin: PostgresAdmin;

/** The marker of a tenant of this file; each name stands for one Tenant, with its own uid. */
function claimOf(tenant: string): string {
  const uid = createHash('sha256').update(tenant).digest('hex').slice(0, 32);
  return ownershipMarker(tenant, `pgit-${uid}`);
}

const ALPHA = databaseIdentifiersFor('pgit-alpha');
const ALPHA_CLAIM = claimOf('pgit-alpha');
const BETA = databaseIdentifiersFor('pgit-beta');
const BETA_CLAIM = claimOf('pgit-beta');
const HOSTILE_NAMES = [
  'pgit-a"b',
  'pgit-x"; DROP DATABASE postgres; --',
  "pgit-'; DROP ROLE postgres; --",
  'pgit-ünïcødé-名前-🦄',
  'pgit-\\\\backslash\\',
  `pgit-${'a'.repeat(65)}`, // 70 bytes
  `pgit-${'a'.repeat(64)}b`, // differs from the one above only in byte 70
  `pgit-${'é'.repeat(33)}`, // 71 bytes in 38 characters
];

const openClients = new Set<pg.Client>();

/** A client logged in as `role`, the way a tenant's application connects. */
async function connectAs(
  server: ServerConnection,
  credentials: LoginCredentials,
  database: string,
): Promise<pg.Client> {
  const client = new pg.Client(
    clientConfig({ ...server, user: credentials.role, password: credentials.password, database }),
  );
  client.on('error', () => undefined);
  openClients.add(client);
  try {
    await client.connect();
  } catch (err: unknown) {
    openClients.delete(client);
    await client.end().catch(() => undefined);
    throw err;
  }
  return client;
}

async function closeClient(client: pg.Client): Promise<void> {
  openClients.delete(client);
  await client.end().catch(() => undefined);
}

async function adminQuery<T extends pg.QueryResultRow>(
  server: ServerConnection,
  text: string,
  values: unknown[] = [],
): Promise<T[]> {
  const client = new pg.Client(clientConfig(server));
  client.on('error', () => undefined);
  await client.connect();
  try {
    return (await client.query<T>(text, values)).rows;
  } finally {
    await client.end();
  }
}

/** Everything about a tenant's names in the catalogs, to prove that a refusal wrote nothing. */
async function catalogSnapshot(ids: DatabaseIdentifiers): Promise<unknown[]> {
  return adminQuery(
    eu,
    `SELECT r.rolname, r.rolsuper, r.rolcanlogin, r.rolvaliduntil::text AS valid,
            shobj_description(r.oid, 'pg_authid') AS marker, a.rolpassword,
            ARRAY(SELECT m.roleid::regrole::text FROM pg_auth_members m WHERE m.member = r.oid)
              AS member_of,
            (SELECT d.datacl::text FROM pg_database d WHERE d.datname = $2) AS database_acl,
            (SELECT d.datdba::regrole::text FROM pg_database d WHERE d.datname = $2)
              AS database_owner
     FROM pg_roles r JOIN pg_authid a ON a.oid = r.oid
     WHERE r.rolname = ANY($1::text[]) ORDER BY r.rolname`,
    [[ids.ownerRole, ...ids.loginRoles], ids.database],
  );
}

async function rejectsWith(promise: Promise<unknown>, state: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.equal(sqlState(err), state, String(err));
    return true;
  });
}

async function provision(
  admin: PostgresAdmin,
  ids: DatabaseIdentifiers,
  claim: string,
): Promise<LoginCredentials> {
  await ensureTenantDatabase(admin, ids, claim);
  return prepareRotation(admin, ids, claim, undefined);
}

async function cleanUp(): Promise<void> {
  for (const admin of [euAdmin, usAdmin]) {
    for (const name of [
      'pgit-alpha',
      'pgit-beta',
      'pgit-gamma',
      'pgit-rotate',
      'pgit-fenced',
      ...HOSTILE_NAMES,
    ]) {
      await dropTenantDatabase(admin, databaseIdentifiersFor(name), claimOf(name));
    }
  }
  await adminQuery(eu, 'DROP DATABASE IF EXISTS t_pgit_foreign');
  for (const role of ['t_pgit_foreign', 't_pgit_foreign_a', 't_pgit_foreign_b'])
    await adminQuery(eu, `DROP ROLE IF EXISTS ${role}`);
}

before(async () => {
  euAdmin = new PostgresAdmin(eu);
  usAdmin = new PostgresAdmin(us);
  await cleanUp();
});

after(async () => {
  for (const client of openClients) await closeClient(client);
  await cleanUp();
  await euAdmin.close();
  await usAdmin.close();
});

describe('servers', () => {
  test('both servers answer and report PostgreSQL 15', async () => {
    for (const admin of [euAdmin, usAdmin]) {
      const { serverVersion } = await admin.ping();
      assert.match(serverVersion, /^15\./);
    }
  });
});

describe('provisioning', () => {
  test('is idempotent: a second and third pass change nothing', async () => {
    for (const admin of [euAdmin, usAdmin]) {
      const before = await admin.countDatabases('t_pgit_');
      assert.equal(await ensureTenantDatabase(admin, ALPHA, ALPHA_CLAIM), true);
      const credentials = await prepareRotation(admin, ALPHA, ALPHA_CLAIM, undefined);
      assert.equal(credentials.role, ALPHA.loginRoles[0]);
      for (let pass = 0; pass < 2; pass += 1) {
        assert.equal(
          await ensureTenantDatabase(admin, ALPHA, ALPHA_CLAIM, { active: credentials }),
          false,
          `pass ${pass} changed something`,
        );
        assert.equal(await admin.ensureOwnerRole(ALPHA.ownerRole, ALPHA_CLAIM), false);
        assert.equal(
          await admin.ensureDatabase(ALPHA.database, ALPHA.ownerRole, ALPHA_CLAIM),
          false,
        );
        assert.equal(
          await admin.ensureLoginRole(
            credentials.role,
            ALPHA.ownerRole,
            ALPHA_CLAIM,
            credentials.password,
          ),
          false,
        );
        assert.equal(
          await admin.setPassword(credentials.role, credentials.password, ALPHA_CLAIM),
          false,
        );
      }
      assert.equal(await admin.countDatabases('t_pgit_'), before + 1);
      assert.deepEqual(await admin.roleState(ALPHA.ownerRole), { exists: true, canLogin: false });
      for (const role of ALPHA.loginRoles) {
        assert.deepEqual(await admin.roleState(role), { exists: true, canLogin: true });
      }
      assert.equal(
        await admin.passwordWorks(credentials.role, credentials.password, ALPHA.database),
        true,
      );
      // Each server gets its own, so prove the catalogs are per server.
      await dropTenantDatabase(admin, ALPHA, ALPHA_CLAIM);
    }
  });

  test('beforeWrite is asked before every change; when it throws, nothing is written', async () => {
    const ids = databaseIdentifiersFor('pgit-fenced');
    const claim = claimOf('pgit-fenced');
    const fenced = new PostgresAdmin(eu, {
      beforeWrite: () => {
        throw new Error('not the leader');
      },
    });
    let writes = 0;
    const counted = new PostgresAdmin(eu, { beforeWrite: () => (writes += 1) });
    try {
      await assert.rejects(ensureTenantDatabase(fenced, ids, claim), /not the leader/);
      await assert.rejects(fenced.terminateSessions(ids.loginRoles), /not the leader/);
      assert.equal(await euAdmin.roleExists(ids.ownerRole), false);
      assert.equal(await euAdmin.databaseExists(ids.database), false);

      await ensureTenantDatabase(counted, ids, claim);
      // Owner role, database (create, revoke PUBLIC), two login roles.
      assert.ok(writes >= 5, `${writes} writes announced`);
      const settled = writes;
      assert.equal(await ensureTenantDatabase(counted, ids, claim), false);
      assert.equal(writes, settled, 'a settled tenant announced a write');
      // Reads still work behind a fence; any change does not.
      assert.equal(await fenced.ensureDatabase(ids.database, ids.ownerRole, claim), false);
      await assert.rejects(
        fenced.setPassword(ids.loginRoles[0], generatePassword(), claim),
        /not the leader/,
      );
      await assert.rejects(dropTenantDatabase(fenced, ids, claim), /not the leader/);
      assert.equal(await euAdmin.databaseExists(ids.database), true);
    } finally {
      await fenced.close();
      await counted.close();
    }
  });

  test('PUBLIC loses every privilege on the database; the owner keeps CONNECT', async () => {
    await ensureTenantDatabase(euAdmin, ALPHA, ALPHA_CLAIM);
    const [row] = await adminQuery<{ acl: string[] }>(
      eu,
      'SELECT datacl::text[] AS acl FROM pg_database WHERE datname = $1',
      [ALPHA.database],
    );
    assert.deepEqual(row?.acl, [`${ALPHA.ownerRole}=CTc/${ALPHA.ownerRole}`]);
    const [role] = await adminQuery<{
      rolsuper: boolean;
      rolcreatedb: boolean;
      rolcreaterole: boolean;
    }>(eu, 'SELECT rolsuper, rolcreatedb, rolcreaterole FROM pg_roles WHERE rolname = $1', [
      ALPHA.loginRoles[0],
    ]);
    assert.deepEqual({ ...role }, { rolsuper: false, rolcreatedb: false, rolcreaterole: false });
  });

  test('drift is repaired: a changed password, attribute, membership or privilege', async () => {
    const credentials = await provision(euAdmin, ALPHA, ALPHA_CLAIM);
    const role = credentials.role;
    await adminQuery(
      eu,
      `ALTER ROLE ${role} PASSWORD 'changed-by-hand' CREATEDB NOLOGIN VALID UNTIL '2001-01-01'`,
    );
    await adminQuery(eu, `REVOKE ${ALPHA.ownerRole} FROM ${role}`);
    await adminQuery(eu, `ALTER ROLE ${role} RESET role`);
    await adminQuery(eu, `GRANT CONNECT ON DATABASE ${ALPHA.database} TO PUBLIC`);
    assert.equal(await euAdmin.passwordWorks(role, credentials.password, ALPHA.database), false);

    assert.equal(
      await ensureTenantDatabase(euAdmin, ALPHA, ALPHA_CLAIM, { active: credentials }),
      true,
    );
    assert.equal(
      await ensureTenantDatabase(euAdmin, ALPHA, ALPHA_CLAIM, { active: credentials }),
      false,
    );
    assert.equal(await euAdmin.passwordWorks(role, credentials.password, ALPHA.database), true);
    const client = await connectAs(eu, credentials, ALPHA.database);
    const { rows } = await client.query<{ current_user: string }>('SELECT current_user');
    assert.equal(rows[0]?.current_user, ALPHA.ownerRole);
    await closeClient(client);
  });

  test('a login role is never made a member of a role other than an unprivileged owner', async () => {
    await assert.rejects(
      euAdmin.ensureLoginRole(ALPHA.loginRoles[0], 'postgres', ALPHA_CLAIM, undefined),
      /refusing to take it over/,
    );
    await assert.rejects(
      euAdmin.ensureDatabase(ALPHA.database, 'postgres', ALPHA_CLAIM),
      /refusing/,
    );
    await assert.rejects(
      euAdmin.setPassword('postgres', generatePassword(), ALPHA_CLAIM),
      /refusing/,
    );
    await assert.rejects(
      euAdmin.ensureLoginRole('t_pgit_nobody_a', 't_pgit_nobody', ALPHA_CLAIM, undefined),
      /does not exist/,
    );
    const [row] = await adminQuery<{ member_of: string[] }>(
      eu,
      `SELECT ARRAY(SELECT roleid::regrole::text FROM pg_auth_members m
                    WHERE m.member = r.oid) AS member_of FROM pg_roles r WHERE rolname = $1`,
      [ALPHA.loginRoles[0]],
    );
    assert.deepEqual(row?.member_of, [ALPHA.ownerRole]);
  });

  test("a same-named role or database that is not this tenant's is left alone", async () => {
    const foreign = databaseIdentifiersFor('pgit-foreign');
    const claim = claimOf('pgit-foreign');
    await adminQuery(eu, `CREATE ROLE ${foreign.ownerRole} SUPERUSER`);
    // Another tenant's marker, the generic marker of earlier versions, and
    // the marker of an earlier Tenant of the same name (another uid).
    await adminQuery(eu, `CREATE ROLE ${foreign.loginRoles[0]} LOGIN`);
    await adminQuery(eu, `COMMENT ON ROLE ${foreign.loginRoles[0]} IS '${BETA_CLAIM}'`);
    await adminQuery(eu, `CREATE ROLE ${foreign.loginRoles[1]} LOGIN`);
    await adminQuery(
      eu,
      `COMMENT ON ROLE ${foreign.loginRoles[1]} IS 'managed-by: tenant-operator'`,
    );
    await adminQuery(eu, `CREATE DATABASE ${foreign.database}`);
    const before = await catalogSnapshot(foreign);

    assert.deepEqual(await foreignDatabaseObjects(euAdmin, foreign, claim), [
      `role ${foreign.ownerRole}`,
      `role ${foreign.loginRoles[0]}`,
      `role ${foreign.loginRoles[1]}`,
      `database ${foreign.database} (owned by role ${eu.user})`,
    ]);
    const refused = (err: unknown) =>
      sqlState(err) === undefined && /carries no marker of this tenant/.test(String(err));
    await assert.rejects(ensureTenantDatabase(euAdmin, foreign, claim), refused);
    await assert.rejects(euAdmin.ensureOwnerRole(foreign.ownerRole, claim), refused);
    await assert.rejects(euAdmin.dropRole(foreign.ownerRole, claim), refused);
    for (const role of foreign.loginRoles) {
      await assert.rejects(euAdmin.setPassword(role, generatePassword(), claim), refused);
      await assert.rejects(euAdmin.setLogin(role, false, claim), refused);
      await assert.rejects(euAdmin.dropRole(role, claim), refused);
    }
    // A database of the tenant's name owned by someone else, even once the
    // owner role is the tenant's.
    await ensureTenantDatabase(euAdmin, ALPHA, ALPHA_CLAIM);
    await assert.rejects(
      euAdmin.ensureDatabase(foreign.database, ALPHA.ownerRole, ALPHA_CLAIM),
      refused,
    );
    await assert.rejects(euAdmin.dropDatabase(foreign.database, ALPHA.ownerRole, claim), refused);
    // ALPHA's own objects are not BETA's.
    assert.deepEqual(await foreignDatabaseObjects(euAdmin, ALPHA, BETA_CLAIM), [
      `role ${ALPHA.ownerRole}`,
      `role ${ALPHA.loginRoles[0]}`,
      `role ${ALPHA.loginRoles[1]}`,
      `database ${ALPHA.database} (owned by role ${ALPHA.ownerRole})`,
    ]);
    assert.deepEqual(await foreignDatabaseObjects(euAdmin, ALPHA, ALPHA_CLAIM), []);
    await assert.rejects(ensureTenantDatabase(euAdmin, ALPHA, BETA_CLAIM), refused);
    assert.deepEqual(await catalogSnapshot(foreign), before, 'a foreign object was changed');
  });

  test('a CONNECT grant from a tenant to another role is taken back', async () => {
    const alpha = await provision(euAdmin, ALPHA, ALPHA_CLAIM);
    await ensureTenantDatabase(euAdmin, BETA, BETA_CLAIM);
    // The tenant's own session (running as the owner role) shares its database.
    const session = await connectAs(eu, alpha, ALPHA.database);
    await session.query(
      `GRANT CONNECT, TEMPORARY ON DATABASE ${ALPHA.database} TO ${BETA.ownerRole}`,
    );
    await closeClient(session);
    assert.equal(await ensureTenantDatabase(euAdmin, ALPHA, ALPHA_CLAIM, { active: alpha }), true);
    const [row] = await adminQuery<{ acl: string[] }>(
      eu,
      'SELECT datacl::text[] AS acl FROM pg_database WHERE datname = $1',
      [ALPHA.database],
    );
    assert.deepEqual(row?.acl, [`${ALPHA.ownerRole}=CTc/${ALPHA.ownerRole}`]);
  });

  test('a hostile or unreadable password verifier is replaced at once, never hashed', async () => {
    const credentials = await provision(euAdmin, ALPHA, ALPHA_CLAIM);
    const salt = Buffer.alloc(16, 7).toString('base64');
    const key = Buffer.alloc(32, 9).toString('base64');
    const hostile = [
      // 2^30 PBKDF2 rounds: minutes of CPU for whoever checks a password against it.
      `SCRAM-SHA-256$1073741824:${salt}$${key}:${key}`,
      // An MD5 hash (stored as given, and useless: the server only speaks SCRAM).
      'md5' + 'f'.repeat(32),
      // A SCRAM verifier with no rounds at all.
      `SCRAM-SHA-256$0:${salt}$${key}:${key}`,
    ];
    for (const verifier of hostile) {
      // Written into the catalog directly: ALTER ROLE ... PASSWORD would itself
      // run PBKDF2 on it (the server checks that the password is not empty),
      // stalling that backend for minutes. The stored state is the same.
      await adminQuery(eu, 'UPDATE pg_authid SET rolpassword = $1 WHERE rolname = $2', [
        verifier,
        credentials.role,
      ]);
      const [stored] = await adminQuery<{ rolpassword: string }>(
        eu,
        'SELECT rolpassword FROM pg_authid WHERE rolname = $1',
        [credentials.role],
      );
      assert.equal(stored?.rolpassword, verifier, 'the server did not keep the verifier as given');
      const started = performance.now();
      assert.equal(
        await ensureTenantDatabase(euAdmin, ALPHA, ALPHA_CLAIM, { active: credentials }),
        true,
      );
      const elapsed = performance.now() - started;
      assert.ok(elapsed < 2_000, `repair took ${Math.round(elapsed)} ms`);
      assert.equal(
        await euAdmin.passwordWorks(credentials.role, credentials.password, ALPHA.database),
        true,
      );
    }
  });
});

describe('one-query footprint', () => {
  const GAMMA = databaseIdentifiersFor('pgit-gamma');
  const GAMMA_CLAIM = claimOf('pgit-gamma');

  async function settled(credentials: LoginCredentials): Promise<boolean> {
    const footprint = await euAdmin.inspectTenant(
      [GAMMA.ownerRole, ...GAMMA.loginRoles],
      GAMMA.database,
    );
    return footprintSettled(footprint, GAMMA, GAMMA_CLAIM, { active: credentials });
  }

  test('a settled tenant reads as settled; every kind of drift does not, until repaired', async () => {
    const credentials = await provision(euAdmin, GAMMA, GAMMA_CLAIM);
    await ensureTenantDatabase(euAdmin, GAMMA, GAMMA_CLAIM, { active: credentials });
    assert.equal(await settled(credentials), true, 'freshly provisioned');
    const [login, standby] = [
      credentials.role,
      GAMMA.loginRoles.find((r) => r !== credentials.role)!,
    ];
    const drifts = [
      `ALTER ROLE ${login} CREATEDB`,
      `ALTER ROLE ${standby} CREATEROLE`,
      `ALTER ROLE ${GAMMA.ownerRole} LOGIN`,
      `ALTER ROLE ${login} NOLOGIN`,
      `ALTER ROLE ${login} NOINHERIT`,
      `ALTER ROLE ${login} VALID UNTIL '2030-01-01'`,
      `ALTER ROLE ${login} PASSWORD 'changed-behind-our-back'`,
      `REVOKE ${GAMMA.ownerRole} FROM ${standby}`,
      `ALTER ROLE ${login} RESET role`,
      `GRANT CONNECT ON DATABASE ${GAMMA.database} TO PUBLIC`,
      `GRANT CONNECT ON DATABASE ${GAMMA.database} TO ${ALPHA.ownerRole}`,
      `REVOKE CONNECT ON DATABASE ${GAMMA.database} FROM ${GAMMA.ownerRole}`,
      `DROP ROLE ${standby}`,
      `DROP DATABASE ${GAMMA.database}`,
    ];
    await ensureTenantDatabase(euAdmin, ALPHA, ALPHA_CLAIM);
    for (const drift of drifts) {
      await adminQuery(eu, drift);
      assert.equal(await settled(credentials), false, `not settled after: ${drift}`);
      assert.equal(
        await ensureTenantDatabase(euAdmin, GAMMA, GAMMA_CLAIM, { active: credentials }),
        true,
        `repaired after: ${drift}`,
      );
      assert.equal(await settled(credentials), true, `settled again after repairing: ${drift}`);
    }
    // Another tenant's marker on a role is not drift to repair but a foreign object.
    await adminQuery(eu, `COMMENT ON ROLE ${standby} IS '${BETA_CLAIM}'`);
    assert.equal(await settled(credentials), false);
    assert.deepEqual(await foreignDatabaseObjects(euAdmin, GAMMA, GAMMA_CLAIM), [
      `role ${standby}`,
    ]);
    await adminQuery(eu, `COMMENT ON ROLE ${standby} IS '${GAMMA_CLAIM}'`);
    assert.equal(await settled(credentials), true);
  });

  test('an admin that may not read password verifiers never calls a footprint settled', async () => {
    const credentials = await provision(euAdmin, GAMMA, GAMMA_CLAIM);
    const role = 'pgit_footprint_admin';
    await adminQuery(eu, `DROP ROLE IF EXISTS ${role}`);
    const password = generatePassword();
    await adminQuery(eu, `CREATE ROLE ${role} LOGIN CREATEROLE PASSWORD '${password}'`);
    const limited = new PostgresAdmin({ ...eu, user: role, password });
    try {
      const footprint = await limited.inspectTenant(
        [GAMMA.ownerRole, ...GAMMA.loginRoles],
        GAMMA.database,
      );
      assert.equal(footprint.verifiers, undefined);
      assert.equal(footprint.roles.size, 3);
      assert.equal(
        await footprintSettled(footprint, GAMMA, GAMMA_CLAIM, { active: credentials }),
        false,
      );
    } finally {
      await limited.close();
      await adminQuery(eu, `DROP ROLE IF EXISTS ${role}`);
    }
  });
});

describe('access', () => {
  let alpha: LoginCredentials;
  let beta: LoginCredentials;

  before(async () => {
    alpha = await provision(euAdmin, ALPHA, ALPHA_CLAIM);
    beta = await provision(euAdmin, BETA, BETA_CLAIM);
  });

  test('a login role connects over TLS, verified against the CA, and works as the owner', async () => {
    const client = await connectAs(eu, alpha, ALPHA.database);
    const who = await client.query<{ session_user: string; current_user: string }>(
      'SELECT session_user, current_user',
    );
    assert.deepEqual(
      { ...who.rows[0] },
      { session_user: alpha.role, current_user: ALPHA.ownerRole },
    );
    // pg_stat_ssl shows a session's details only to its own login role.
    await client.query('SET ROLE NONE');
    const tls = await client.query<{ ssl: boolean; version: string }>(
      'SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()',
    );
    assert.equal(tls.rows[0]?.ssl, true);
    assert.match(tls.rows[0]?.version ?? '', /^TLSv1\.[23]$/);
    await closeClient(client);
  });

  test('verify-full also accepts the server under its DNS name', async () => {
    const client = await connectAs({ ...eu, host: 'localhost' }, alpha, ALPHA.database);
    await closeClient(client);
  });

  test('a plaintext connection is refused by the server', async () => {
    const plain: ServerConnection = {
      host: eu.host,
      port: eu.port,
      user: eu.user,
      password: eu.password,
      plaintext: true,
    };
    await rejectsWith(connectAs(plain, alpha, ALPHA.database), '28000');
  });

  test('a server certificate for another name, or from another CA, is refused', async () => {
    const config = clientConfig({
      ...eu,
      user: alpha.role,
      password: alpha.password,
      database: ALPHA.database,
    });
    const wrongName = new pg.Client({
      ...config,
      ssl: { ca: eu.caCertificate ?? '', servername: 'db.example.com' },
    });
    wrongName.on('error', () => undefined);
    await assert.rejects(wrongName.connect(), (err: NodeJS.ErrnoException) => {
      assert.equal(err.code, 'ERR_TLS_CERT_ALTNAME_INVALID');
      return true;
    });

    const dir = mkdtempSync(join(tmpdir(), 'pgit-ca-'));
    try {
      const made = spawnSync('openssl', [
        'req',
        '-x509',
        '-newkey',
        'rsa:2048',
        '-nodes',
        '-days',
        '1',
        '-subj',
        '/CN=other-ca',
        '-keyout',
        join(dir, 'ca.key'),
        '-out',
        join(dir, 'ca.crt'),
      ]);
      assert.equal(made.status, 0, made.stderr.toString());
      const otherCa = readFileSync(join(dir, 'ca.crt'), 'utf8');
      await assert.rejects(
        connectAs({ ...eu, caCertificate: otherCa }, alpha, ALPHA.database),
        (err: NodeJS.ErrnoException) => {
          assert.match(String(err.code), /SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER/);
          return true;
        },
      );
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  test("tenant A's login cannot enter tenant B's database", async () => {
    assert.equal(await euAdmin.passwordWorks(alpha.role, alpha.password, BETA.database), false);
    await rejectsWith(connectAs(eu, alpha, BETA.database), '42501');
    await rejectsWith(
      connectAs(eu, { role: alpha.role, password: beta.password }, ALPHA.database),
      '28P01',
    );
    // Nor take B's role from inside its own session.
    const client = await connectAs(eu, alpha, ALPHA.database);
    await rejectsWith(client.query(`SET ROLE ${BETA.ownerRole}`), '42501');
    await closeClient(client);
  });

  test('login roles cannot create databases or roles, nor raise themselves', async () => {
    const client = await connectAs(eu, alpha, ALPHA.database);
    await rejectsWith(client.query('CREATE DATABASE pgit_sneaky'), '42501');
    await rejectsWith(client.query('CREATE ROLE pgit_sneaky'), '42501');
    await rejectsWith(client.query(`ALTER ROLE ${alpha.role} CREATEDB`), '42501');
    await rejectsWith(client.query('SET ROLE postgres'), '42501');
    await closeClient(client);
  });

  test('objects a login role creates belong to the owner role', async () => {
    const client = await connectAs(eu, alpha, ALPHA.database);
    await client.query('CREATE TABLE owned_probe (id int)');
    await client.query('CREATE SCHEMA app');
    await client.query('CREATE SEQUENCE app.counter');
    const { rows } = await client.query<{ owner: string }>(
      `SELECT pg_get_userbyid(relowner) AS owner FROM pg_class WHERE relname IN ('owned_probe', 'counter')
       UNION ALL SELECT pg_get_userbyid(nspowner) FROM pg_namespace WHERE nspname = 'app'`,
    );
    assert.deepEqual(
      rows.map((r) => r.owner),
      [ALPHA.ownerRole, ALPHA.ownerRole, ALPHA.ownerRole],
    );
    await closeClient(client);
  });

  test('setLogin(false) and terminateSessions end live sessions and refuse new ones; setLogin(true) restores', async () => {
    const live = await connectAs(eu, alpha, ALPHA.database);
    const died = new Promise<unknown>((resolve) => live.once('error', resolve));
    await live.query('SELECT 1');

    const revoked = await revokeTenantAccess(euAdmin, ALPHA, ALPHA_CLAIM);
    assert.equal(revoked.ended, 1);
    assert.ok(revoked.revoked.includes(alpha.role), JSON.stringify(revoked));
    // Repeated, it changes nothing and says so.
    assert.deepEqual(await revokeTenantAccess(euAdmin, ALPHA, ALPHA_CLAIM), {
      revoked: [],
      ended: 0,
    });
    await died;
    await assert.rejects(live.query('SELECT 1'));
    await closeClient(live);
    assert.equal(await euAdmin.passwordWorks(alpha.role, alpha.password, ALPHA.database), false);
    await rejectsWith(connectAs(eu, alpha, ALPHA.database), '28000');
    assert.deepEqual(await euAdmin.roleState(alpha.role), { exists: true, canLogin: false });
    // Tenant B is untouched.
    assert.equal(await euAdmin.passwordWorks(beta.role, beta.password, BETA.database), true);
    // Repeating is harmless.
    assert.equal(await euAdmin.setLogin(alpha.role, false, ALPHA_CLAIM), false);
    assert.equal(await euAdmin.terminateSessions(ALPHA.loginRoles), 0);

    assert.equal(await euAdmin.setLogin(alpha.role, true, ALPHA_CLAIM), true);
    assert.equal(await euAdmin.passwordWorks(alpha.role, alpha.password, ALPHA.database), true);
    // A suspended tenant is repaired without being let back in.
    await euAdmin.setLogin(alpha.role, false, ALPHA_CLAIM);
    assert.equal(
      await ensureTenantDatabase(euAdmin, ALPHA, ALPHA_CLAIM, { active: alpha, canLogin: false }),
      false,
    );
    assert.equal(await ensureTenantDatabase(euAdmin, ALPHA, ALPHA_CLAIM, { active: alpha }), true);
    assert.equal(await euAdmin.passwordWorks(alpha.role, alpha.password, ALPHA.database), true);
  });
});

describe('rotation', () => {
  test('a client that always logs in with the current credentials never fails during rotations', async () => {
    const ids = databaseIdentifiersFor('pgit-rotate');
    const claim = claimOf('pgit-rotate');
    await ensureTenantDatabase(euAdmin, ids, claim);
    // `vault` stands for the secret in Vault: what applications read.
    let vault = await prepareRotation(euAdmin, ids, claim, undefined);
    const longLived = await connectAs(eu, vault, ids.database);
    await longLived.query('CREATE TABLE visits (role text, at timestamptz DEFAULT now())');

    const failures: unknown[] = [];
    let logins = 0;
    let stop = false;
    const app = (async () => {
      while (!stop) {
        const credentials = vault;
        try {
          const client = await connectAs(eu, credentials, ids.database);
          await client.query('INSERT INTO visits (role) VALUES (session_user)');
          await closeClient(client);
          logins += 1;
        } catch (err: unknown) {
          failures.push(err);
        }
      }
    })();

    const used = new Set<string>([vault.role]);
    for (let rotation = 0; rotation < 4; rotation += 1) {
      await waitFor('a few logins', () => logins >= (rotation + 1) * 5);
      const previous = vault;
      const next = await prepareRotation(euAdmin, ids, claim, vault.role);
      assert.notEqual(next.role, previous.role);
      vault = next; // the caller writes Vault
      // Grace period: the app's login that read the old secret has finished.
      const seen = logins;
      await waitFor('the app to use the new secret', () => logins >= seen + 2);
      assert.equal(await retireStandbyRole(euAdmin, ids, claim, vault.role), previous.role);
      assert.equal(
        await euAdmin.passwordWorks(previous.role, previous.password, ids.database),
        false,
      );
      used.add(next.role);
    }
    stop = true;
    await app;

    assert.deepEqual(failures, []);
    assert.deepEqual([...used].sort(), [...ids.loginRoles].sort());
    // A session opened before all the rotations is still there.
    const { rows } = await longLived.query<{ roles: string[] }>(
      'SELECT array_agg(DISTINCT role ORDER BY role) AS roles FROM visits',
    );
    assert.deepEqual(rows[0]?.roles, [...ids.loginRoles].sort());
    await closeClient(longLived);
  });
});

describe('hostile tenant names', () => {
  test('provision safely, each into its own ≤63-byte database', async () => {
    const databases = new Set<string>();
    for (const name of HOSTILE_NAMES) {
      const ids = databaseIdentifiersFor(name);
      const claim = claimOf(name);
      const credentials = await provision(euAdmin, ids, claim);
      assert.equal(await ensureTenantDatabase(euAdmin, ids, claim, { active: credentials }), false);
      const client = await connectAs(eu, credentials, ids.database);
      const { rows } = await client.query<{ db: string }>('SELECT current_database() AS db');
      assert.equal(rows[0]?.db, ids.database);
      await closeClient(client);
      databases.add(ids.database);
    }
    assert.equal(databases.size, HOSTILE_NAMES.length);
    const found = await adminQuery<{ datname: string }>(
      eu,
      'SELECT datname FROM pg_database WHERE datname = ANY($1::text[])',
      [[...databases]],
    );
    assert.equal(found.length, HOSTILE_NAMES.length);
    // Nothing the names spelled out ran.
    assert.equal(await euAdmin.databaseExists('postgres'), true);
    assert.equal(await euAdmin.roleExists('postgres'), true);
  });
});

describe('purge', () => {
  test('dropDatabase and dropRole are idempotent, and FORCE ends open sessions', async () => {
    const ids = databaseIdentifiersFor('pgit-gamma');
    const claim = claimOf('pgit-gamma');
    const credentials = await provision(usAdmin, ids, claim);
    const live = await connectAs(us, credentials, ids.database);
    await live.query('CREATE TABLE t (x int)');

    await assert.rejects(usAdmin.dropRole(ids.ownerRole, claim), /drop its database first/);
    assert.deepEqual(await dropTenantDatabase(usAdmin, ids, claim), {
      dropped: [
        `database ${ids.database}`,
        ...ids.loginRoles.map((role) => `role ${role}`),
        `role ${ids.ownerRole}`,
      ],
      notOurs: [],
    });
    await closeClient(live);
    assert.deepEqual(await dropTenantDatabase(usAdmin, ids, claim), { dropped: [], notOurs: [] });
    assert.equal(await usAdmin.dropDatabase(ids.database, ids.ownerRole, claim), false);
    for (const role of [ids.ownerRole, ...ids.loginRoles]) {
      assert.equal(await usAdmin.dropRole(role, claim), false);
      assert.deepEqual(await usAdmin.roleState(role), { exists: false, canLogin: false });
    }
    assert.equal(await usAdmin.databaseExists(ids.database), false);
    assert.equal(await usAdmin.setLogin(ids.loginRoles[0], false, claim), false);
    await assert.rejects(usAdmin.setLogin(ids.loginRoles[0], true, claim), /does not exist/);
  });

  test('a password never appears in an error', async () => {
    const password = generatePassword();
    await assert.rejects(
      euAdmin.setPassword('t_pgit_missing_role', password, ALPHA_CLAIM),
      (err: Error) => !err.message.includes(password) && /t_pgit_missing_role/.test(err.message),
    );
  });
});
