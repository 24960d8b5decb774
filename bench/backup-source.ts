import pg from 'pg';
import type { TableCount } from '../src/backup/manifest.ts';
import type { PgTarget } from '../src/backup/pg-tools.ts';
import { countRowsIn } from '../src/backup/snapshot.ts';
import { clientConfig } from '../src/postgres/connection.ts';
import { quoteIdentifier } from '../src/postgres/identifiers.ts';

// The database the backup benchmark dumps: made server-side (generate_series)
// so that a gigabyte takes a minute, not an hour, and mixed the way a real one
// is: text that compresses about two to one (hex digests among words), random
// bytes and uuids that do not compress at all, indexes, a sequence and a few
// large objects. Its fingerprint is what a restore must reproduce.

const EVENTS_PER_BATCH = 100_000;
const LARGE_OBJECTS = 8;
const LARGE_OBJECT_BYTES = 1024 * 1024;

const SCHEMA = [
  `CREATE TABLE events (
     id bigint PRIMARY KEY,
     at timestamptz NOT NULL,
     kind text NOT NULL,
     note text NOT NULL,
     payload bytea NOT NULL)`,
  'CREATE INDEX events_kind_at ON events (kind, at)',
  `CREATE TABLE accounts (
     id uuid PRIMARY KEY,
     name text NOT NULL,
     balance numeric(12, 2) NOT NULL)`,
  'CREATE SEQUENCE invoice_number',
];

// The payload's subquery names `i`, so it runs per row: an uncorrelated one
// would be computed once and every row would share (and compress) it.
const INSERT_EVENTS = `
  INSERT INTO events (id, at, kind, note, payload)
  SELECT i,
         timestamptz '2024-01-01 00:00:00+00' + i * interval '1 second',
         (ARRAY['signup', 'login', 'order', 'refund', 'logout'])[1 + i % 5],
         'order ' || i || ' for customer ' || i % 9973 || ': ' || md5(random()::text) || ' '
           || md5(random()::text) || ' ' || md5(random()::text) || ' ' || md5(random()::text),
         (SELECT string_agg(uuid_send(gen_random_uuid()), ''::bytea) FROM generate_series(i, i + 15))
  FROM generate_series($1::bigint, $2::bigint) AS i`;

const INSERT_ACCOUNTS = `
  INSERT INTO accounts (id, name, balance)
  SELECT gen_random_uuid(), 'account ' || i, round((random() * 10000)::numeric, 2)
  FROM generate_series($1::bigint, $2::bigint, 20) AS i`;

const INSERT_LARGE_OBJECTS = `
  SELECT lo_from_bytea(0, (SELECT string_agg(uuid_send(gen_random_uuid()), ''::bytea)
                           FROM generate_series(k, k + $2::int - 1)))
  FROM generate_series(1, $1::int) AS k`;

export interface SourceDatabase {
  bytes: number;
  events: number;
  buildMs: number;
}

async function connect(target: PgTarget): Promise<pg.Client> {
  // No statement timeout, and no client-side read timeout either (which
  // clientConfig sets to the statement timeout plus 5 s, so 5 s here): one
  // batch of inserts, or the VACUUM, takes longer.
  const client = new pg.Client({
    ...clientConfig(target, { statementTimeoutMs: 0 }),
    query_timeout: 0,
  });
  await client.connect();
  return client;
}

export async function createDatabase(admin: PgTarget, name: string): Promise<void> {
  const client = await connect({ ...admin, database: 'postgres' });
  try {
    await client.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(name)} WITH (FORCE)`);
    await client.query(`CREATE DATABASE ${quoteIdentifier(name)} TEMPLATE template0`);
  } finally {
    await client.end();
  }
}

export async function dropDatabase(admin: PgTarget, name: string): Promise<void> {
  const client = await connect({ ...admin, database: 'postgres' });
  try {
    await client.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(name)} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

/** Fills `target` (an empty database) until it is at least `bytes` large. */
export async function buildSource(target: PgTarget, bytes: number): Promise<SourceDatabase> {
  const start = performance.now();
  const client = await connect(target);
  try {
    for (const statement of SCHEMA) await client.query(statement);
    await client.query(INSERT_LARGE_OBJECTS, [LARGE_OBJECTS, LARGE_OBJECT_BYTES / 16]);
    let events = 0;
    while ((await databaseBytes(client)) < bytes) {
      const first = events + 1;
      events += EVENTS_PER_BATCH;
      await client.query(INSERT_EVENTS, [first, events]);
      await client.query(INSERT_ACCOUNTS, [first, events]);
    }
    await client.query('SELECT setval($1, $2)', ['invoice_number', events]);
    // Sets every hint bit now, so the first dump does not pay for writing
    // them (and the second get them for free).
    await client.query('VACUUM (FREEZE, ANALYZE)');
    await client.query('CHECKPOINT');
    return { bytes: await databaseBytes(client), events, buildMs: performance.now() - start };
  } finally {
    await client.end();
  }
}

async function databaseBytes(client: pg.Client): Promise<number> {
  const result = await client.query<{ bytes: string }>(
    'SELECT pg_database_size(current_database()) AS bytes',
  );
  return Number(result.rows[0]?.bytes);
}

export interface Fingerprint {
  counts: TableCount[];
  /** Counts, sequence and indexes, to compare as a whole. */
  text: string;
}

/** What a restore must reproduce: row counts (large objects included), the sequence, the indexes. */
export async function fingerprint(target: PgTarget): Promise<Fingerprint> {
  const counts = await countRowsIn(target);
  const client = await connect(target);
  try {
    const sequence = await client.query<{ last_value: string; is_called: boolean }>(
      'SELECT last_value, is_called FROM invoice_number',
    );
    const indexes = await client.query<{ indexname: string }>(
      `SELECT indexname FROM pg_indexes WHERE schemaname = 'public' ORDER BY 1`,
    );
    const text = JSON.stringify({
      counts,
      sequence: sequence.rows[0],
      indexes: indexes.rows.map((r) => r.indexname),
    });
    return { counts, text };
  } finally {
    await client.end();
  }
}
