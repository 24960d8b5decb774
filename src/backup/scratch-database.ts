import { randomBytes } from 'node:crypto';
import pg from 'pg';
import { clientConfig, type ServerConnection } from '../postgres/connection.ts';
import { quoteIdentifier, quoteLiteral } from '../postgres/identifiers.ts';

// The throw-away database a verification restores into, on the tenant's own
// server. Its name cannot be a tenant's (tenant databases all start with
// `t_`); a comment names the tenant uid, so what a crash left behind is found
// and dropped by the next verification of that tenant. Like a tenant
// database, PUBLIC may not connect: only the tenant's own roles.

const SCRATCH_PREFIX = 'scratch_verify_';

function marker(tenantUid: string): string {
  return `tenant-operator verification scratch database of tenant uid ${tenantUid}`;
}

async function withAdmin<T>(
  admin: ServerConnection,
  work: (client: pg.Client) => Promise<T>,
): Promise<T> {
  const client = new pg.Client(
    clientConfig(admin, { statementTimeoutMs: 120_000, applicationName: 'tenant-operator-verify' }),
  );
  await client.connect();
  try {
    return await work(client);
  } finally {
    await client.end();
  }
}

/**
 * A database owned by the tenant's owner role, closed to PUBLIC like a tenant
 * database, with a comment that names what it is and whose.
 */
async function createOwnedDatabase(
  admin: ServerConnection,
  name: string,
  ownerRole: string,
  comment: string,
): Promise<void> {
  await withAdmin(admin, async (client) => {
    const q = quoteIdentifier(name);
    const owner = quoteIdentifier(ownerRole);
    await client.query(`CREATE DATABASE ${q} OWNER ${owner}`);
    await client.query(`COMMENT ON DATABASE ${q} IS ${quoteLiteral(comment)}`);
    await client.query(`REVOKE ALL ON DATABASE ${q} FROM PUBLIC`);
    await client.query(`GRANT CONNECT, TEMPORARY ON DATABASE ${q} TO ${owner}`);
  });
}

/** Drops the scratch databases an earlier, interrupted verification of this tenant left. */
export async function dropLeftoverScratch(
  admin: ServerConnection,
  tenantUid: string,
): Promise<string[]> {
  return withAdmin(admin, async (client) => {
    const leftovers = await client.query<{ name: string }>(
      `SELECT d.datname AS name FROM pg_database d
       WHERE d.datname LIKE 'scratch\\_verify\\_%' AND shobj_description(d.oid, 'pg_database') = $1`,
      [marker(tenantUid)],
    );
    for (const { name } of leftovers.rows)
      await client.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(name)} WITH (FORCE)`);
    return leftovers.rows.map((row) => row.name);
  });
}

/** Creates an empty scratch database owned by the tenant's owner role; answers its name. */
export async function createScratch(
  admin: ServerConnection,
  tenantUid: string,
  ownerRole: string,
): Promise<string> {
  const name = `${SCRATCH_PREFIX}${randomBytes(8).toString('hex')}`;
  await createOwnedDatabase(admin, name, ownerRole, marker(tenantUid));
  return name;
}

export async function dropScratch(admin: ServerConnection, name: string): Promise<void> {
  if (!name.startsWith(SCRATCH_PREFIX)) throw new Error(`${name} is not a scratch database`);
  await withAdmin(admin, (client) =>
    client.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(name)} WITH (FORCE)`),
  );
}

/**
 * A new database for `backup restore --into`: owned by the tenant's owner
 * role, closed to PUBLIC, and marked with the tenant's uid so that the
 * tenant's erasure finds it. An existing database is never restored over.
 */
export async function createRestoreDatabase(
  admin: ServerConnection,
  name: string,
  tenantUid: string,
  ownerRole: string,
): Promise<void> {
  if (name.startsWith(SCRATCH_PREFIX) || /^t_/.test(name))
    throw new Error(`${name}: names starting with t_ or ${SCRATCH_PREFIX} are the operator's own`);
  await createOwnedDatabase(
    admin,
    name,
    ownerRole,
    `tenant-operator restore of tenant uid ${tenantUid}`,
  );
}
