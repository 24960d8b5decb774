import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
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
import { generatePassword } from '../../src/postgres/password.ts';
import { sqlState } from '../../src/postgres/pg-errors.ts';
import { prepareRotation, retireStandbyRole } from '../../src/postgres/rotation.ts';
import {
  dropTenantDatabase,
  ensureTenantDatabase,
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

const ALPHA = databaseIdentifiersFor('pgit-alpha');
const BETA = databaseIdentifiersFor('pgit-beta');
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

async function rejectsWith(promise: Promise<unknown>, state: string): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.equal(sqlState(err), state, String(err));
    return true;
  });
}

async function provision(
  admin: PostgresAdmin,
  ids: DatabaseIdentifiers,
): Promise<LoginCredentials> {
  await ensureTenantDatabase(admin, ids);
  return prepareRotation(admin, ids, undefined);
}

async function cleanUp(): Promise<void> {
  for (const admin of [euAdmin, usAdmin]) {
    for (const name of ['pgit-alpha', 'pgit-beta', 'pgit-gamma', 'pgit-rotate', ...HOSTILE_NAMES]) {
      await dropTenantDatabase(admin, databaseIdentifiersFor(name));
    }
  }
  await adminQuery(eu, 'DROP DATABASE IF EXISTS t_pgit_foreign');
  await adminQuery(eu, 'DROP ROLE IF EXISTS t_pgit_foreign');
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
      assert.equal(await ensureTenantDatabase(admin, ALPHA), true);
      const credentials = await prepareRotation(admin, ALPHA, undefined);
      assert.equal(credentials.role, ALPHA.loginRoles[0]);
      for (let pass = 0; pass < 2; pass += 1) {
        assert.equal(
          await ensureTenantDatabase(admin, ALPHA, { active: credentials }),
          false,
          `pass ${pass} changed something`,
        );
        assert.equal(await admin.ensureOwnerRole(ALPHA.ownerRole), false);
        assert.equal(await admin.ensureDatabase(ALPHA.database, ALPHA.ownerRole), false);
        assert.equal(
          await admin.ensureLoginRole(credentials.role, ALPHA.ownerRole, credentials.password),
          false,
        );
        assert.equal(await admin.setPassword(credentials.role, credentials.password), false);
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
      await dropTenantDatabase(admin, ALPHA);
    }
  });

  test('PUBLIC loses every privilege on the database; the owner keeps CONNECT', async () => {
    await ensureTenantDatabase(euAdmin, ALPHA);
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
    const credentials = await provision(euAdmin, ALPHA);
    const role = credentials.role;
    await adminQuery(
      eu,
      `ALTER ROLE ${role} PASSWORD 'changed-by-hand' CREATEDB NOLOGIN VALID UNTIL '2001-01-01'`,
    );
    await adminQuery(eu, `REVOKE ${ALPHA.ownerRole} FROM ${role}`);
    await adminQuery(eu, `ALTER ROLE ${role} RESET role`);
    await adminQuery(eu, `GRANT CONNECT ON DATABASE ${ALPHA.database} TO PUBLIC`);
    assert.equal(await euAdmin.passwordWorks(role, credentials.password, ALPHA.database), false);

    assert.equal(await ensureTenantDatabase(euAdmin, ALPHA, { active: credentials }), true);
    assert.equal(await ensureTenantDatabase(euAdmin, ALPHA, { active: credentials }), false);
    assert.equal(await euAdmin.passwordWorks(role, credentials.password, ALPHA.database), true);
    const client = await connectAs(eu, credentials, ALPHA.database);
    const { rows } = await client.query<{ current_user: string }>('SELECT current_user');
    assert.equal(rows[0]?.current_user, ALPHA.ownerRole);
    await closeClient(client);
  });

  test('a login role is never made a member of a role other than an unprivileged owner', async () => {
    await assert.rejects(
      euAdmin.ensureLoginRole(ALPHA.loginRoles[0], 'postgres', undefined),
      /refusing to take it over/,
    );
    await assert.rejects(euAdmin.ensureDatabase(ALPHA.database, 'postgres'), /refusing/);
    await assert.rejects(euAdmin.setPassword('postgres', generatePassword()), /refusing/);
    await assert.rejects(
      euAdmin.ensureLoginRole('t_pgit_nobody_a', 't_pgit_nobody', undefined),
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

  test('a same-named role or database that tenant-operator did not create is left alone', async () => {
    const foreign = databaseIdentifiersFor('pgit-foreign');
    await adminQuery(eu, `CREATE ROLE ${foreign.ownerRole} SUPERUSER`);
    await assert.rejects(euAdmin.ensureOwnerRole(foreign.ownerRole), /refusing to take it over/);
    await assert.rejects(euAdmin.dropRole(foreign.ownerRole), /refusing to take it over/);
    await adminQuery(eu, `CREATE DATABASE ${foreign.database}`);
    await ensureTenantDatabase(euAdmin, ALPHA);
    await assert.rejects(euAdmin.ensureDatabase(foreign.database, ALPHA.ownerRole), /refusing/);
    await assert.rejects(euAdmin.dropDatabase(foreign.database), /refusing to drop/);
    const [still] = await adminQuery<{ rolsuper: boolean; marker: string | null }>(
      eu,
      "SELECT rolsuper, shobj_description(oid, 'pg_authid') AS marker FROM pg_roles WHERE rolname = $1",
      [foreign.ownerRole],
    );
    assert.deepEqual({ ...still }, { rolsuper: true, marker: null });
  });
});

describe('access', () => {
  let alpha: LoginCredentials;
  let beta: LoginCredentials;

  before(async () => {
    alpha = await provision(euAdmin, ALPHA);
    beta = await provision(euAdmin, BETA);
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

    assert.equal(await revokeTenantAccess(euAdmin, ALPHA), 1);
    await died;
    await assert.rejects(live.query('SELECT 1'));
    await closeClient(live);
    assert.equal(await euAdmin.passwordWorks(alpha.role, alpha.password, ALPHA.database), false);
    await rejectsWith(connectAs(eu, alpha, ALPHA.database), '28000');
    assert.deepEqual(await euAdmin.roleState(alpha.role), { exists: true, canLogin: false });
    // Tenant B is untouched.
    assert.equal(await euAdmin.passwordWorks(beta.role, beta.password, BETA.database), true);
    // Repeating is harmless.
    assert.equal(await euAdmin.setLogin(alpha.role, false), false);
    assert.equal(await euAdmin.terminateSessions(ALPHA.loginRoles), 0);

    assert.equal(await euAdmin.setLogin(alpha.role, true), true);
    assert.equal(await euAdmin.passwordWorks(alpha.role, alpha.password, ALPHA.database), true);
    // A suspended tenant is repaired without being let back in.
    await euAdmin.setLogin(alpha.role, false);
    assert.equal(
      await ensureTenantDatabase(euAdmin, ALPHA, { active: alpha, canLogin: false }),
      false,
    );
    assert.equal(await ensureTenantDatabase(euAdmin, ALPHA, { active: alpha }), true);
    assert.equal(await euAdmin.passwordWorks(alpha.role, alpha.password, ALPHA.database), true);
  });
});

describe('rotation', () => {
  test('a client that always logs in with the current credentials never fails during rotations', async () => {
    const ids = databaseIdentifiersFor('pgit-rotate');
    await ensureTenantDatabase(euAdmin, ids);
    // `vault` stands for the secret in Vault: what applications read.
    let vault = await prepareRotation(euAdmin, ids, undefined);
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
      const next = await prepareRotation(euAdmin, ids, vault.role);
      assert.notEqual(next.role, previous.role);
      vault = next; // the caller writes Vault
      // Grace period: the app's login that read the old secret has finished.
      const seen = logins;
      await waitFor('the app to use the new secret', () => logins >= seen + 2);
      assert.equal(await retireStandbyRole(euAdmin, ids, vault.role), previous.role);
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
      const credentials = await provision(euAdmin, ids);
      assert.equal(await ensureTenantDatabase(euAdmin, ids, { active: credentials }), false);
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
    const credentials = await provision(usAdmin, ids);
    const live = await connectAs(us, credentials, ids.database);
    await live.query('CREATE TABLE t (x int)');

    await assert.rejects(usAdmin.dropRole(ids.ownerRole), /drop its database first/);
    assert.equal(await dropTenantDatabase(usAdmin, ids), true);
    await closeClient(live);
    assert.equal(await dropTenantDatabase(usAdmin, ids), false);
    assert.equal(await usAdmin.dropDatabase(ids.database), false);
    for (const role of [ids.ownerRole, ...ids.loginRoles]) {
      assert.equal(await usAdmin.dropRole(role), false);
      assert.deepEqual(await usAdmin.roleState(role), { exists: false, canLogin: false });
    }
    assert.equal(await usAdmin.databaseExists(ids.database), false);
    assert.equal(await usAdmin.setLogin(ids.loginRoles[0], false), false);
    await assert.rejects(usAdmin.setLogin(ids.loginRoles[0], true), /does not exist/);
  });

  test('a password never appears in an error', async () => {
    const password = generatePassword();
    await assert.rejects(
      euAdmin.setPassword('t_pgit_missing_role', password),
      (err: Error) => !err.message.includes(password) && /t_pgit_missing_role/.test(err.message),
    );
  });
});
