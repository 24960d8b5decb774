import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { LocalServer } from '../../hack/database-servers.ts';
import type { PgTarget } from '../../src/backup/pg-tools.ts';
import { adminRows } from './postgres.ts';
import { requireEnv } from './cluster.ts';

// A tenant-shaped database made by hand (owner role, login role that acts
// as the owner, database closed to PUBLIC), for backup tests that need no
// operator. Names start with t_ like the operator's.

export interface HandMadeDatabase {
  database: string;
  ownerRole: string;
  login: PgTarget;
}

export async function createTenantLikeDatabase(
  server: LocalServer,
  base: string,
): Promise<HandMadeDatabase> {
  const owner = `t_${base}`;
  const login = `${owner}_a`;
  const password = `pw-${base}-${Math.random().toString(36).slice(2)}`;
  await dropTenantLikeDatabase(server, base);
  await adminRows(server, `CREATE ROLE "${owner}" NOLOGIN`);
  await adminRows(server, `CREATE ROLE "${login}" LOGIN PASSWORD '${password}'`);
  await adminRows(server, `GRANT "${owner}" TO "${login}"`);
  await adminRows(server, `ALTER ROLE "${login}" SET role = '${owner}'`);
  await adminRows(server, `CREATE DATABASE "${owner}" OWNER "${owner}"`);
  await adminRows(server, `REVOKE ALL ON DATABASE "${owner}" FROM PUBLIC`);
  await adminRows(server, `GRANT CONNECT, TEMPORARY ON DATABASE "${owner}" TO "${owner}"`);
  return {
    database: owner,
    ownerRole: owner,
    login: {
      host: server.host,
      port: server.port,
      user: login,
      password,
      database: owner,
      caCertificate: readFileSync(requireEnv('PG_CA_FILE'), 'utf8'),
    },
  };
}

export async function dropTenantLikeDatabase(server: LocalServer, base: string): Promise<void> {
  const owner = `t_${base}`;
  const dbs = await adminRows<{ datname: string }>(
    server,
    `SELECT datname FROM pg_database WHERE datname = $1 OR shobj_description(oid, 'pg_database') LIKE 'tenant-operator % of tenant uid %' AND pg_get_userbyid(datdba) = $1`,
    [owner],
  );
  for (const { datname } of dbs)
    await adminRows(server, `DROP DATABASE IF EXISTS "${datname}" WITH (FORCE)`);
  await adminRows(server, `DROP ROLE IF EXISTS "${owner}_a"`);
  await adminRows(server, `DROP ROLE IF EXISTS "${owner}"`);
}

/** Runs statements as the tenant's login (acting as its owner role). */
export async function asTenant<T extends pg.QueryResultRow>(
  target: PgTarget,
  sql: string,
  values: unknown[] = [],
  database = target.database,
): Promise<T[]> {
  const client = new pg.Client({
    host: target.host,
    port: target.port,
    user: target.user,
    password: target.password,
    database,
    ssl: { ca: target.caCertificate ?? '', rejectUnauthorized: true },
  });
  await client.connect();
  try {
    return (await client.query(sql, values)).rows as T[];
  } finally {
    await client.end();
  }
}

/** Everything a restore must bring back, as comparable text. */
export async function databaseContents(target: PgTarget, database: string): Promise<string> {
  const parts: string[] = [];
  const q = <T extends pg.QueryResultRow = pg.QueryResultRow>(sql: string) =>
    asTenant<T>(target, sql, [], database);
  parts.push(
    JSON.stringify(
      await q(
        `SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' AND nspname <> 'information_schema' ORDER BY 1`,
      ),
    ),
  );
  const tables = await q<{ schema: string; name: string }>(
    `SELECT table_schema AS schema, table_name AS name FROM information_schema.tables WHERE table_schema NOT IN ('pg_catalog','information_schema') ORDER BY 1, 2`,
  );
  for (const { schema, name } of tables) {
    const rows = await q(`SELECT * FROM "${schema}"."${name}" ORDER BY 1`);
    parts.push(`${schema}.${name}: ${JSON.stringify(rows)}`);
  }
  const sequences = await q<{ schema: string; name: string }>(
    `SELECT sequence_schema AS schema, sequence_name AS name FROM information_schema.sequences ORDER BY 1, 2`,
  );
  for (const { schema, name } of sequences)
    parts.push(
      `${schema}.${name}: ${JSON.stringify(await q(`SELECT last_value, is_called FROM "${schema}"."${name}"`))}`,
    );
  parts.push(
    JSON.stringify(
      await q(
        `SELECT md5(string_agg(encode(lo_get(oid), 'hex'), ',' ORDER BY oid)) AS large_objects, count(*) AS n FROM pg_largeobject_metadata`,
      ),
    ),
  );
  return parts.join('\n');
}
