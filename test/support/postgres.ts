import { readFileSync } from 'node:fs';
import pg from 'pg';
import type { LocalServer } from '../../hack/database-servers.ts';
import { databaseIdentifiersFor } from '../../src/postgres/identifiers.ts';
import { requireEnv } from './cluster.ts';

// The local PostgreSQL servers as their admin (a DBA, not the operator)
// sees them: for making drift, reading catalogs, and removing what a test
// left behind that the operator itself would refuse to touch.

/** A connection as the server's admin, verified against the test CA. Connect it yourself. */
export function adminConnection(server: LocalServer): pg.Client {
  return new pg.Client({
    host: server.host,
    port: server.port,
    user: server.adminUser,
    password: server.adminPassword,
    database: 'postgres',
    ssl: { ca: readFileSync(requireEnv('PG_CA_FILE'), 'utf8'), rejectUnauthorized: true },
  });
}

/** The rows of one statement run as the server's admin, on a connection of its own. */
export async function adminRows<T extends pg.QueryResultRow>(
  server: LocalServer,
  sql: string,
  values: unknown[] = [],
): Promise<T[]> {
  const conn = adminConnection(server);
  await conn.connect();
  try {
    return (await conn.query<T>(sql, values)).rows;
  } finally {
    await conn.end();
  }
}

/** Drops the tenants' databases and roles on every server, as the admin would. */
export async function dropTenantDatabasesAsAdmin(
  servers: LocalServer[],
  tenants: string[],
): Promise<void> {
  for (const server of servers) {
    for (const name of tenants) {
      const ids = databaseIdentifiersFor(name);
      await adminRows(server, `DROP DATABASE IF EXISTS "${ids.database}" WITH (FORCE)`);
      for (const role of [...ids.loginRoles, ids.ownerRole])
        await adminRows(server, `DROP ROLE IF EXISTS "${role}"`);
    }
  }
}
