import pg from 'pg';
import { clientConfig } from '../postgres/connection.ts';
import { quoteIdentifier } from '../postgres/identifiers.ts';
import type { TableCount } from './manifest.ts';
import type { PgTarget } from './pg-tools.ts';

// A backup's row counts must describe exactly the data in its dump, or
// verification would compare against a moving target. So the counts are taken
// in a REPEATABLE READ transaction whose snapshot pg_dump then imports
// (--snapshot): both see the same committed state. The transaction stays open
// until pg_dump is done with it.

export const LARGE_OBJECTS_ENTRY = 'pg_catalog.pg_largeobject_metadata';

export interface DumpSnapshot {
  id: string;
  tables: TableCount[];
  close(): Promise<void>;
}

const TABLES_QUERY = `
  SELECT n.nspname AS schema, c.relname AS name
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
  WHERE c.relkind = 'r'
    AND n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND n.nspname NOT LIKE 'pg\\_toast%'
    AND n.nspname NOT LIKE 'pg\\_temp%'
  ORDER BY 1, 2`;

function connectionConfig(target: PgTarget): pg.ClientConfig {
  // Counting a large table takes a while; the snapshot must outlive pg_dump.
  return clientConfig(target, { statementTimeoutMs: 0, applicationName: 'tenant-operator-backup' });
}

/** Row counts of every table (and the number of large objects) as `client` sees them. */
export async function countRows(client: pg.Client): Promise<TableCount[]> {
  const tables = await client.query<{ schema: string; name: string }>(TABLES_QUERY);
  const counts: TableCount[] = [];
  for (const { schema, name } of tables.rows) {
    const result = await client.query<{ rows: string }>(
      `SELECT count(*) AS rows FROM ${quoteIdentifier(schema)}.${quoteIdentifier(name)}`,
    );
    counts.push({ table: `${schema}.${name}`, rows: Number(result.rows[0]?.rows ?? Number.NaN) });
  }
  const objects = await client.query<{ rows: string }>(
    'SELECT count(*) AS rows FROM pg_catalog.pg_largeobject_metadata',
  );
  counts.push({ table: LARGE_OBJECTS_ENTRY, rows: Number(objects.rows[0]?.rows ?? Number.NaN) });
  return counts;
}

export async function openSnapshot(target: PgTarget): Promise<DumpSnapshot> {
  const config = connectionConfig(target);
  // The idle-in-transaction timeout would end the snapshot while pg_dump runs.
  const client = new pg.Client({ ...config, idle_in_transaction_session_timeout: 0 });
  await client.connect();
  try {
    await client.query('BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY');
    const exported = await client.query<{ id: string }>('SELECT pg_export_snapshot() AS id');
    const id = exported.rows[0]?.id;
    if (!id) throw new Error('pg_export_snapshot answered nothing');
    const tables = await countRows(client);
    return {
      id,
      tables,
      close: async () => {
        await client.query('ROLLBACK').catch(() => undefined);
        await client.end();
      },
    };
  } catch (err: unknown) {
    await client.end().catch(() => undefined);
    throw err;
  }
}

/** Counts in a restored database, for verification. */
export async function countRowsIn(target: PgTarget): Promise<TableCount[]> {
  const client = new pg.Client(connectionConfig(target));
  await client.connect();
  try {
    return await countRows(client);
  } finally {
    await client.end();
  }
}
