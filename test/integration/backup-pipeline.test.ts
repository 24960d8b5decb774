import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { localServers, type LocalServer } from '../../hack/database-servers.ts';
import { sealManifest } from '../../src/backup/envelope.ts';
import { FilesystemStore } from '../../src/backup/fs-store.ts';
import { dataKey as dataObjectKey, manifestKey } from '../../src/backup/layout.ts';
import type { BackupManifest } from '../../src/backup/manifest.ts';
import { openBackup, restoreBackup, type BackupReader } from '../../src/backup/restore.ts';
import { runBackup } from '../../src/backup/run.ts';
import { createRestoreDatabase } from '../../src/backup/scratch-database.ts';
import { S3Store } from '../../src/backup/s3-store.ts';
import type { BackupObjectStore } from '../../src/backup/store.ts';
import { verifyBackup } from '../../src/backup/verify.ts';
import { ERROR_CODES, OperatorError } from '../../src/errors.ts';
import { VaultClient } from '../../src/vault/client.ts';
import { Transit } from '../../src/vault/transit.ts';
import {
  asTenant,
  createTenantLikeDatabase,
  databaseContents,
  dropTenantLikeDatabase,
  type HandMadeDatabase,
} from '../support/backup-db.ts';
import { requireEnv } from '../support/cluster.ts';
import { adminRows } from '../support/postgres.ts';

// The backup pipeline against the real servers, without the operator: a
// tenant-shaped database on the local PostgreSQL, the tenant's Transit key
// in the real Vault, and both kinds of store (a directory, and the Versity
// S3 gateway). Vault is used with the root token here; what each role may
// do is tested in backup-vault.test.ts.

const MARKER = 'plaintext-marker-7c1f0e';
const CHUNK = 64 * 1024;

let server: LocalServer;
let transit: Transit;
let fsRoot: string;
const databases: string[] = [];

function adminConnectionOf(s: LocalServer) {
  return {
    host: s.host,
    port: s.port,
    user: s.adminUser,
    password: s.adminPassword,
    caCertificate: readFileSync(requireEnv('PG_CA_FILE'), 'utf8'),
  };
}

async function fillDatabase(db: HandMadeDatabase): Promise<void> {
  await asTenant(db.login, `CREATE SCHEMA app`);
  await asTenant(
    db.login,
    `CREATE TABLE app.orders (id bigserial PRIMARY KEY, item text NOT NULL, qty int)`,
  );
  await asTenant(db.login, `COMMENT ON TABLE app.orders IS '${MARKER}'`);
  await asTenant(
    db.login,
    `INSERT INTO app.orders (item, qty) SELECT '${MARKER}-' || g, g FROM generate_series(1, 20000) g`,
  );
  await asTenant(db.login, `CREATE TABLE public.notes (id int PRIMARY KEY, body text)`);
  await asTenant(db.login, `INSERT INTO public.notes VALUES (1, 'first'), (2, NULL)`);
  await asTenant(db.login, `CREATE SEQUENCE public.invoice_no START 1000`);
  await asTenant(db.login, `SELECT nextval('public.invoice_no') FROM generate_series(1, 7)`);
  await asTenant(db.login, `SELECT lo_from_bytea(0, decode(repeat('00ff', 50000), 'hex'))`);
  // Random bytes do not compress: the dump spans many chunks.
  await asTenant(
    db.login,
    `CREATE TABLE app.blobs AS SELECT g AS id, decode(md5(g::text) || md5((g * 7)::text), 'hex') AS b FROM generate_series(1, 30000) g`,
  );
}

function reader(store: BackupObjectStore, keyName: string): BackupReader {
  return {
    store,
    transitKey: keyName,
    unwrapDataKey: (wrapped) => transit.decryptDataKey(keyName, wrapped),
  };
}

async function backupOf(
  store: BackupObjectStore,
  db: HandMadeDatabase,
  tenant: string,
  uid: string,
): Promise<BackupManifest> {
  const keyName = `tenant-${tenant}`;
  await transit.ensureKey(keyName);
  return runBackup(
    {
      store,
      transitKey: keyName,
      chunkSize: CHUNK,
      newDataKey: () => transit.generateDataKey(keyName),
    },
    { tenant, tenantUid: uid, server: 'local', target: db.login },
  );
}

async function tablesIn(db: HandMadeDatabase, database: string): Promise<number> {
  const rows = await asTenant<{ n: string }>(
    db.login,
    `SELECT count(*) AS n FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')`,
    [],
    database,
  );
  return Number(rows[0]?.n);
}

async function expectInvalid(work: Promise<unknown>, pattern: RegExp): Promise<void> {
  await assert.rejects(work, (err: unknown) => {
    assert.ok(err instanceof OperatorError, `not an OperatorError: ${String(err)}`);
    assert.equal(err.code, ERROR_CODES.BACKUP_INVALID, err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

function s3Store(): S3Store {
  return new S3Store({
    endpoint: requireEnv('S3_ENDPOINT'),
    region: requireEnv('S3_REGION'),
    bucket: requireEnv('S3_BUCKET'),
    prefix: 'pipeline-test',
    forcePathStyle: true,
    credentials: {
      accessKeyId: requireEnv('S3_ACCESS_KEY_ID'),
      secretAccessKey: requireEnv('S3_SECRET_ACCESS_KEY'),
    },
  });
}

before(() => {
  [server] = localServers() as [LocalServer];
  transit = new Transit(
    new VaultClient({ address: requireEnv('VAULT_ADDR'), token: requireEnv('VAULT_TOKEN') }),
  );
  fsRoot = mkdtempSync(join(tmpdir(), 'backup-pipeline-'));
});

after(async () => {
  for (const base of databases) await dropTenantLikeDatabase(server, base);
  rmSync(fsRoot, { recursive: true, force: true });
});

for (const kind of ['filesystem', 's3'] as const) {
  describe(`a backup in the ${kind} store`, () => {
    const tenant = `bp-${kind}`;
    const uid = `00000000-0000-4000-8000-${kind === 's3' ? '000000000053' : '0000000000f5'}`;
    const base = `bp_${kind}`;
    let db: HandMadeDatabase;
    let store: BackupObjectStore;
    let manifest: BackupManifest;

    before(async () => {
      databases.push(base, `${base}_other`);
      db = await createTenantLikeDatabase(server, base);
      await fillDatabase(db);
      store = kind === 's3' ? s3Store() : new FilesystemStore({ root: fsRoot });
      manifest = await backupOf(store, db, tenant, uid);
    });

    test('restores identical data: schemas, rows, sequences, large objects', async () => {
      assert.ok(manifest.encryption.chunks > 3, `only ${manifest.encryption.chunks} chunks`);
      const into = `${base}_copy`;
      await createRestoreDatabase(adminConnectionOf(server), into, uid, db.ownerRole);
      const opened = await openBackup(
        reader(store, `tenant-${tenant}`),
        tenant,
        uid,
        manifest.backupId,
      );
      try {
        await restoreBackup(store, opened, { ...db.login, database: into }, { clean: false });
      } finally {
        opened.dispose();
      }
      assert.equal(
        await databaseContents(db.login, into),
        await databaseContents(db.login, db.database),
      );
      const counts = Object.fromEntries(manifest.tables.map((t) => [t.table, t.rows]));
      assert.equal(counts['app.orders'], 20000);
      assert.equal(counts['public.notes'], 2);
      assert.equal(counts['pg_catalog.pg_largeobject_metadata'], 1);
      await adminRows(server, `DROP DATABASE "${into}" WITH (FORCE)`);
    });

    test('verification restores into a scratch database, compares counts, and drops it', async () => {
      const opened = await openBackup(
        reader(store, `tenant-${tenant}`),
        tenant,
        uid,
        manifest.backupId,
      );
      try {
        const result = await verifyBackup(store, opened, {
          admin: adminConnectionOf(server),
          tenantUid: uid,
          ownerRole: db.ownerRole,
          login: db.login,
        });
        assert.equal(result.backupId, manifest.backupId);
        assert.equal(result.rows, 20000 + 2 + 30000 + 1);
      } finally {
        opened.dispose();
      }
      const left = await adminRows(
        server,
        `SELECT datname FROM pg_database WHERE datname LIKE 'scratch%'`,
      );
      assert.deepEqual(left, []);
    });

    test('the stored objects hold no plaintext, though a raw dump does', async () => {
      const raw = spawnSync('pg_dump', ['--format=custom'], {
        env: {
          PATH: process.env.PATH,
          PGHOST: db.login.host,
          PGPORT: String(db.login.port),
          PGUSER: db.login.user,
          PGPASSWORD: db.login.password,
          PGDATABASE: db.database,
          PGSSLMODE: 'verify-full',
          PGSSLROOTCERT: requireEnv('PG_CA_FILE'),
        },
        maxBuffer: 1 << 30,
      });
      // Positive control: the marker is there to find in an unencrypted dump.
      assert.equal(raw.status, 0, raw.stderr.toString());
      assert.ok(raw.stdout.includes(MARKER), 'the raw dump lacks the marker');
      const data = await store.getBytes(dataObjectKey(tenant, uid, manifest.backupId));
      const stored = await store.getBytes(manifestKey(tenant, uid, manifest.backupId));
      assert.ok(data && stored);
      assert.equal(data.length, manifest.data.bytes);
      assert.ok(!data.includes(MARKER), 'the data object holds plaintext');
      assert.ok(!stored.includes(MARKER), 'the manifest holds plaintext');
      assert.ok(!stored.toString().includes(db.login.password), 'the manifest holds the password');
    });
  });
}

describe('tampering fails the restore and writes nothing', () => {
  const tenant = 'bp-tamper';
  const uid = '00000000-0000-4000-8000-00000000a11c';
  const other = 'bp-tamper-b';
  const otherUid = '00000000-0000-4000-8000-00000000b0b0';
  let db: HandMadeDatabase;
  let store: FilesystemStore;
  let manifest: BackupManifest;
  let otherManifest: BackupManifest;
  const target = 'bp_tamper_target';

  function dataFile(t: string, u: string, id: string): string {
    return join(fsRoot, 'tamper', dataObjectKey(t, u, id));
  }

  async function attemptRestore(t = tenant, u = uid, id = manifest.backupId): Promise<void> {
    const opened = await openBackup(reader(store, `tenant-${t}`), t, u, id);
    try {
      await restoreBackup(store, opened, { ...db.login, database: target }, { clean: false });
    } finally {
      opened.dispose();
    }
  }

  /** Puts `forged` in place of this tenant's manifest for `work`, then puts the original back. */
  async function withForgedManifest(forged: unknown, work: () => Promise<void>): Promise<void> {
    const key = manifestKey(tenant, uid, manifest.backupId);
    const original = await store.getBytes(key);
    assert.ok(original, 'the manifest is missing');
    await store.putBytes(key, Buffer.from(JSON.stringify(forged)));
    try {
      await work();
    } finally {
      await store.putBytes(key, original);
    }
  }

  async function withRestoredFile(
    path: string,
    change: (bytes: Buffer) => Buffer,
    work: () => Promise<void>,
  ) {
    const original = readFileSync(path);
    writeFileSync(path, change(Buffer.from(original)));
    try {
      await work();
    } finally {
      writeFileSync(path, original);
    }
  }

  before(async () => {
    databases.push('bp_tamper', 'bp_tamper_b');
    db = await createTenantLikeDatabase(server, 'bp_tamper');
    await fillDatabase(db);
    const otherDb = await createTenantLikeDatabase(server, 'bp_tamper_b');
    await asTenant(otherDb.login, `CREATE TABLE t (x int)`);
    store = new FilesystemStore({ root: fsRoot, prefix: 'tamper' });
    manifest = await backupOf(store, db, tenant, uid);
    otherManifest = await backupOf(store, otherDb, other, otherUid);
    await createRestoreDatabase(adminConnectionOf(server), target, uid, db.ownerRole);
  });

  after(async () => {
    await adminRows(server, `DROP DATABASE IF EXISTS "${target}" WITH (FORCE)`);
  });

  const nothingWritten = async () =>
    assert.equal(await tablesIn(db, target), 0, 'the target database was written to');

  test('a flipped byte', async () => {
    const path = dataFile(tenant, uid, manifest.backupId);
    await withRestoredFile(
      path,
      (b) => {
        b[Math.floor(b.length / 2)]! ^= 0x01;
        return b;
      },
      async () => {
        await expectInvalid(attemptRestore(), /sha256|authentication/i);
      },
    );
    await nothingWritten();
  });

  test('a truncated object', async () => {
    const path = dataFile(tenant, uid, manifest.backupId);
    await withRestoredFile(
      path,
      (b) => b.subarray(0, Math.floor(b.length * 0.6)),
      async () => {
        await expectInvalid(attemptRestore(), /truncated|sha256/i);
      },
    );
    await nothingWritten();
  });

  test("a manifest pointing at another tenant's data", async () => {
    const forged = { ...manifest, data: { ...otherManifest.data } };
    await withForgedManifest(forged, async () => {
      await expectInvalid(attemptRestore(), /points at another object/);
    });
    await nothingWritten();
  });

  test("another tenant's backup copied under this tenant's prefix", async () => {
    const id = otherManifest.backupId;
    for (const make of [dataObjectKey, manifestKey]) {
      const bytes = (await store.getBytes(make(other, otherUid, id)))!;
      await store.putBytes(make(tenant, uid, id), bytes);
    }
    try {
      await expectInvalid(attemptRestore(tenant, uid, id), /belongs to tenant bp-tamper-b/);
    } finally {
      await store.delete([dataObjectKey(tenant, uid, id), manifestKey(tenant, uid, id)]);
    }
    await nothingWritten();
  });

  test("the wrong key: a data key wrapped by another tenant's Transit key", async () => {
    const forged = {
      ...manifest,
      encryption: { ...manifest.encryption, wrappedKey: otherManifest.encryption.wrappedKey },
    };
    await withForgedManifest(forged, async () => {
      await expectInvalid(attemptRestore(), /does not unwrap|seal/i);
    });
    await nothingWritten();
  });

  test('a manifest changed after sealing (row counts) fails its seal', async () => {
    const forged = {
      ...manifest,
      tables: manifest.tables.map((t) => ({ ...t, rows: t.rows + 1 })),
    };
    await withForgedManifest(forged, async () => {
      await expectInvalid(attemptRestore(), /seal/i);
    });
  });

  test('a backup whose counts differ from its restore fails verification, naming the table', async () => {
    // Re-sealed with the real data key (the test holds the root token): only
    // the comparison after the restore can catch this one.
    const dataKey = await transit.decryptDataKey(
      `tenant-${tenant}`,
      manifest.encryption.wrappedKey,
    );
    const unsealed: BackupManifest = { ...manifest };
    delete unsealed.seal;
    const forged = sealManifest(
      {
        ...unsealed,
        tables: unsealed.tables.map((t) => (t.table === 'public.notes' ? { ...t, rows: 3 } : t)),
      },
      dataKey,
    );
    await withForgedManifest(forged, async () => {
      const opened = await openBackup(
        reader(store, `tenant-${tenant}`),
        tenant,
        uid,
        manifest.backupId,
      );
      try {
        await expectInvalid(
          verifyBackup(store, opened, {
            admin: adminConnectionOf(server),
            tenantUid: uid,
            ownerRole: db.ownerRole,
            login: db.login,
          }),
          /public\.notes has 2 rows, the backup recorded 3/,
        );
      } finally {
        opened.dispose();
      }
    });
    const left = await adminRows(
      server,
      `SELECT datname FROM pg_database WHERE datname LIKE 'scratch%'`,
    );
    assert.deepEqual(left, [], 'a failed verification left its scratch database');
  });

  test('a backup with no manifest does not exist', async () => {
    await assert.rejects(
      attemptRestore(tenant, uid, '20200101T000000Z-000000'),
      /has no manifest: it does not exist/,
    );
  });

  test('a failed dump leaves no backup behind', async () => {
    const before = readdirSync(join(fsRoot, 'tamper'), { recursive: true }).length;
    await assert.rejects(
      runBackup(
        {
          store,
          transitKey: `tenant-${tenant}`,
          chunkSize: CHUNK,
          newDataKey: () => transit.generateDataKey(`tenant-${tenant}`),
        },
        {
          tenant,
          tenantUid: uid,
          server: 'local',
          target: { ...db.login, database: 'no_such_database' },
        },
      ),
    );
    assert.equal(readdirSync(join(fsRoot, 'tamper'), { recursive: true }).length, before);
    assert.ok(statSync(fsRoot).isDirectory());
  });
});
