import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { mkdir, readdir, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import {
  CreateMultipartUploadCommand,
  ListMultipartUploadsCommand,
  ListPartsCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { registerLocalDatabaseServers } from '../../hack/database-servers.ts';
import { listTenantBackups } from '../../src/backup/catalog.ts';
import { backupCronJobName } from '../../src/backup/cronjob.ts';
import { FilesystemStore } from '../../src/backup/fs-store.ts';
import { dataKey, tenantPrefix } from '../../src/backup/layout.ts';
import type { TenantBackupObject } from '../../src/backup/records.ts';
import { S3Store } from '../../src/backup/s3-store.ts';
import type { BackupObjectStore } from '../../src/backup/store.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import {
  collectionPath,
  objectPath,
  RESOURCES,
  type ResourceType,
} from '../../src/k8s/resources.ts';
import type { KubeList, KubeObject } from '../../src/k8s/types.ts';
import type { StoredCredentials } from '../../src/tenant/database.ts';
import {
  backupPodInvocation,
  runBackupCommandAsAdmin,
  runBackupPod,
} from '../support/backup-job.ts';
import { adminClient, requireEnv, waitForPhase } from '../support/cluster.ts';
import { TestEnvironment } from '../support/fixture.ts';
import {
  configureVault,
  removeTenantLeftovers,
  tenantConnection,
  tenantCredentials,
} from '../support/tenant-data.ts';
import { waitFor } from '../support/wait.ts';

// "Crash mid-upload leaves no visible backup; the next run succeeds." The
// backup CronJob's command runs as a local process with the job's own
// identities (as in backup-job.test.ts) against a database of incompressible
// random data, and is killed with SIGKILL while its data object is still
// being uploaded, as seen by the store itself: a multipart upload with parts
// on the S3 server (Versity Gateway), a growing temporary file on the
// filesystem. No complete backup is then listed, and the record stays
// Running as the kill left it. A run with the default grace leaves that
// young leftover alone and backs up; a run told that nothing is young
// (--leftover-grace=0s) removes it, marks the record Failed, and backs up
// too; the backups verify.

const REPO = join(import.meta.dirname, '..', '..');
const NAMESPACE = 'tenant-system';
const PREFIX = 'bkcrash';
const MiB = 1024 * 1024;
/** Random bytes: pg_dump's compression and ours gain nothing, so the upload takes a while. */
const DATABASE_MIB = 32;
const S3_SECRET = `${PREFIX}-s3-credentials`;

let env: TestEnvironment;
let client: KubeClient;
let work: string;
let storeDir: string;
const s3Prefix = `${PREFIX}-${randomBytes(4).toString('hex')}`;
let rawS3: S3Client;
const cleanups: (() => Promise<void>)[] = [];

function s3Credentials() {
  return {
    accessKeyId: requireEnv('S3_ACCESS_KEY_ID'),
    secretAccessKey: requireEnv('S3_SECRET_ACCESS_KEY'),
  };
}

/** Fills the tenant's database with `mib` MiB of random bytes, as the tenant. */
async function fillWithRandomData(c: StoredCredentials, mib: number): Promise<void> {
  const conn = tenantConnection(c);
  await conn.connect();
  try {
    await conn.query(`CREATE TABLE blobs (id int PRIMARY KEY, payload bytea NOT NULL)`);
    // No TOAST compression attempt: it would gain nothing on random bytes.
    await conn.query(`ALTER TABLE blobs ALTER COLUMN payload SET STORAGE EXTERNAL`);
    for (let id = 1; id <= mib; id++)
      await conn.query(`INSERT INTO blobs VALUES ($1, $2)`, [id, randomBytes(MiB)]);
    const [row] = (
      await conn.query<{ bytes: string }>(`SELECT sum(length(payload))::text AS bytes FROM blobs`)
    ).rows;
    assert.equal(Number(row?.bytes), mib * MiB);
  } finally {
    await conn.end();
  }
}

async function tenantRecords(tenant: string): Promise<TenantBackupObject[]> {
  const list = await client.request<KubeList<TenantBackupObject>>(
    'GET',
    collectionPath(RESOURCES.TenantBackup),
  );
  return list.items
    .filter((r) => r.spec.tenant === tenant)
    .sort((a, b) => (a.status?.startedAt ?? '').localeCompare(b.status?.startedAt ?? ''));
}

/** A write under way or abandoned, as the storage itself shows it. */
interface PendingWrite {
  /** The object key it is for, relative to the store's prefix. */
  key: string;
  bytesSoFar: number;
}

interface StoreUnderTest {
  label: string;
  storeName: string;
  region: string;
  spec(): Record<string, unknown>;
  /** A client of our own on the same storage, to judge by. */
  open(): BackupObjectStore;
  pendingWrites(prefix: string): Promise<PendingWrite[]>;
}

async function walkFiles(directory: string, relative = ''): Promise<string[]> {
  const entries = await readdir(join(directory, relative), { withFileTypes: true }).catch(() => []);
  const out: string[] = [];
  for (const entry of entries) {
    const path = relative === '' ? entry.name : `${relative}/${entry.name}`;
    if (entry.isDirectory()) out.push(...(await walkFiles(directory, path)));
    else out.push(path);
  }
  return out.sort();
}

const filesystemStore: StoreUnderTest = {
  label: 'filesystem',
  storeName: `${PREFIX}-fs`,
  region: 'eu-west',
  spec: () => ({ region: 'eu-west', filesystem: { path: storeDir } }),
  open: () => new FilesystemStore({ root: storeDir }),
  async pendingWrites(prefix) {
    const writes: PendingWrite[] = [];
    for (const path of await walkFiles(storeDir, prefix.replace(/\/$/, ''))) {
      // .<name>.tmp-<random> beside the key it becomes (src/backup/fs-store.ts).
      const m = /^(.*\/)\.([^/]+)\.tmp-[0-9a-f]+$/.exec(path);
      if (!m) continue;
      const info = await stat(join(storeDir, path)).catch(() => undefined);
      if (info) writes.push({ key: `${m[1]}${m[2]}`, bytesSoFar: info.size });
    }
    return writes;
  },
};

const s3Store: StoreUnderTest = {
  label: 'S3 (Versity Gateway)',
  storeName: `${PREFIX}-s3`,
  region: 'us-east',
  spec: () => ({
    region: 'us-east',
    s3: {
      endpoint: requireEnv('S3_ENDPOINT'),
      bucket: requireEnv('S3_BUCKET'),
      prefix: s3Prefix,
      forcePathStyle: true,
      signingRegion: requireEnv('S3_REGION'),
      credentialsSecret: { name: S3_SECRET },
    },
  }),
  open: () =>
    new S3Store({
      endpoint: requireEnv('S3_ENDPOINT'),
      region: requireEnv('S3_REGION'),
      bucket: requireEnv('S3_BUCKET'),
      prefix: s3Prefix,
      forcePathStyle: true,
      credentials: s3Credentials(),
    }),
  async pendingWrites(prefix) {
    const bucket = requireEnv('S3_BUCKET');
    const answer = await rawS3.send(
      new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: `${s3Prefix}/${prefix}` }),
    );
    const writes: PendingWrite[] = [];
    for (const upload of answer.Uploads ?? []) {
      assert.ok(upload.Key !== undefined && upload.UploadId !== undefined);
      const parts = await rawS3.send(
        new ListPartsCommand({ Bucket: bucket, Key: upload.Key, UploadId: upload.UploadId }),
      );
      writes.push({
        key: upload.Key.slice(s3Prefix.length + 1),
        bytesSoFar: (parts.Parts ?? []).reduce((sum, part) => sum + (part.Size ?? 0), 0),
      });
    }
    return writes;
  },
};

before(async () => {
  configureVault();
  client = await adminClient();
  await registerLocalDatabaseServers(client);
  work = mkdtempSync(join(tmpdir(), `${PREFIX}-`));
  storeDir = mkdtempSync(join(tmpdir(), `${PREFIX}-store-`));
  rawS3 = new S3Client({
    endpoint: requireEnv('S3_ENDPOINT'),
    region: requireEnv('S3_REGION'),
    forcePathStyle: true,
    credentials: s3Credentials(),
  });
  for (const name of [`${PREFIX}-fs`, `${PREFIX}-s3`]) await removeTenantLeftovers(name);
  env = await TestEnvironment.start(PREFIX);

  // The backup jobs' RBAC (the stores' Secrets included) is the operator's.
  const applied: [ResourceType, KubeObject][] = [
    [
      RESOURCES.Secret,
      {
        apiVersion: 'v1',
        kind: 'Secret',
        metadata: { name: S3_SECRET, namespace: NAMESPACE },
        stringData: s3Credentials(),
      },
    ],
    ...[filesystemStore, s3Store].map(
      (s) =>
        [
          RESOURCES.BackupStore,
          {
            apiVersion: 'tenancy.io/v1alpha1',
            kind: 'BackupStore',
            metadata: { name: s.storeName },
            spec: s.spec(),
          },
        ] as [ResourceType, KubeObject],
    ),
  ];
  for (const [type, object] of applied) {
    await client.apply(object);
    cleanups.push(() =>
      client.delete(objectPath(type, object.metadata.name, object.metadata.namespace)),
    );
  }
});

after(async () => {
  for (const record of (
    await client.request<KubeList<TenantBackupObject>>(
      'GET',
      collectionPath(RESOURCES.TenantBackup),
    )
  ).items.filter((r) => r.spec.tenant.startsWith(`${PREFIX}-`)))
    await client.delete(objectPath(RESOURCES.TenantBackup, record.metadata.name));
  for (const cleanup of cleanups.reverse()) await cleanup();
  await env[Symbol.asyncDispose]();
  for (const name of [`${PREFIX}-fs`, `${PREFIX}-s3`]) await removeTenantLeftovers(name);
  const s3 = s3Store.open() as S3Store;
  await s3.removeAbandonedWrites('', new Date(Date.now() + 60_000));
  const keys: string[] = [];
  for await (const object of s3.list('')) keys.push(object.key);
  await s3.delete(keys);
  s3.destroy();
  rawS3.destroy();
  rmSync(work, { recursive: true, force: true });
  rmSync(storeDir, { recursive: true, force: true });
});

async function crashThenRecover(store: StoreUnderTest, suffix: string): Promise<void> {
  const name = await env.tenant(suffix, { region: store.region, database: { enabled: true } });
  const tenant = await waitForPhase(client, name, 'Ready', 60_000);
  const uid = tenant.metadata.uid as string;
  const creds = await tenantCredentials(name);
  await fillWithRandomData(creds, DATABASE_MIB);

  // The operator's own CronJob for this tenant.
  const cronJob = await waitFor(
    "the operator's backup CronJob",
    () => client.get<KubeObject>(objectPath(RESOURCES.CronJob, backupCronJobName(name), NAMESPACE)),
    { timeoutMs: 30_000 },
  );
  const prefix = tenantPrefix(name, uid);
  const ours = store.open();
  try {
    // 1. The run, killed while the store shows its data object half uploaded.
    const { args, env: jobEnv } = backupPodInvocation(cronJob, work);
    const child = spawn(process.execPath, args, { cwd: REPO, env: jobEnv, stdio: 'ignore' });
    const exited = once(child, 'exit');
    let midUpload: PendingWrite | undefined;
    const deadline = Date.now() + 120_000;
    while (midUpload === undefined && child.exitCode === null && Date.now() < deadline) {
      midUpload = (await store.pendingWrites(prefix)).find((w) => w.bytesSoFar > 0);
      if (midUpload === undefined) await sleep(50);
    }
    assert.ok(
      child.exitCode === null,
      `the run ended (${child.exitCode}) before it was caught mid-upload`,
    );
    assert.ok(midUpload, 'no upload under way was seen in the store');
    child.kill('SIGKILL');
    const [code, signal] = (await exited) as [number | null, NodeJS.Signals | null];
    assert.deepEqual([code, signal], [null, 'SIGKILL']);

    // 2. No visible backup; the record is Running, as the kill left it.
    const [interrupted, ...others] = await tenantRecords(name);
    assert.equal(others.length, 0);
    assert.ok(interrupted);
    assert.equal(interrupted.status?.phase, 'Running', JSON.stringify(interrupted.status));
    const crashedId = interrupted.status.backupId;
    assert.ok(crashedId);
    assert.equal(midUpload.key, dataKey(name, uid, crashedId));
    const listed = runBackupCommandAsAdmin(['list', '--tenant', name, '--json']);
    assert.equal(listed.status, 0, listed.stderr);
    // Logs go to stderr: stdout is the listing, whole.
    const listedBackups = JSON.parse(listed.stdout) as { backupId: string; complete: boolean }[];
    assert.deepEqual(
      listedBackups.filter((b) => b.complete),
      [],
    );
    assert.deepEqual(
      (await listTenantBackups(ours, name, uid)).filter((b) => b.complete),
      [],
    );
    // The crash's leftover is really there (invisible to list, but holding storage).
    const leftover = (await store.pendingWrites(prefix)).map((w) => w.key);
    assert.deepEqual(leftover, [dataKey(name, uid, crashedId)]);

    // 3. The next scheduled run, default grace: the leftover is young (a run
    //    could be at it), so it is left alone; the backup succeeds.
    const second = runBackupPod(cronJob, work);
    assert.equal(second.status, 0, `second run failed:\n${second.stderr}\n${second.stdout}`);
    assert.doesNotMatch(second.stderr, /leftovers of interrupted backup runs/);
    let records = await tenantRecords(name);
    assert.equal(records.length, 2);
    assert.equal(records[0]?.metadata.name, interrupted.metadata.name);
    assert.equal(records[0]?.status?.phase, 'Running');
    assert.equal(records[0]?.metadata.resourceVersion, interrupted.metadata.resourceVersion);
    const secondId = records[1]?.status?.backupId;
    assert.equal(records[1]?.status?.phase, 'Succeeded', JSON.stringify(records[1]?.status));
    assert.deepEqual(
      (await store.pendingWrites(prefix)).map((w) => w.key),
      [dataKey(name, uid, crashedId)],
    );

    // 4. A run told that nothing is young any more cleans the leftover up, and backs up.
    const third = runBackupPod(cronJob, work, ['--leftover-grace=0s']);
    assert.equal(third.status, 0, `third run failed:\n${third.stderr}\n${third.stdout}`);
    // The job logs to stderr (its stdout is the command's answer).
    const cleanedLog = third.stderr
      .split('\n')
      .filter((line) => line.includes('leftovers of interrupted backup runs cleaned'));
    assert.equal(cleanedLog.length, 1, third.stderr);
    const cleaned = JSON.parse(cleanedLog[0] ?? '') as {
      abandonedWrites: string[];
      failedRecords: { name: string; backupId: string }[];
    };
    assert.deepEqual(cleaned.failedRecords, [
      { name: interrupted.metadata.name, backupId: crashedId },
    ]);
    assert.equal(cleaned.abandonedWrites.length, 1);
    assert.ok(cleaned.abandonedWrites[0]?.includes(`${prefix}${crashedId}/`));
    assert.doesNotMatch(third.stderr, /not \(all\) cleaned/);
    for (const output of [second.stdout, second.stderr, third.stdout, third.stderr]) {
      assert.ok(!output.includes(creds.password), 'the database password leaked into the log');
      assert.ok(!output.includes(s3Credentials().secretAccessKey), 'the S3 secret leaked');
    }

    records = await tenantRecords(name);
    assert.equal(records.length, 3);
    const failed = records.find((r) => r.metadata.name === interrupted.metadata.name);
    assert.equal(failed?.status?.phase, 'Failed');
    assert.match(failed.status.message ?? '', /^interrupted: .*no manifest was written$/);
    assert.equal(failed.status.backupId, crashedId);
    assert.ok(failed.status.completedAt);
    const thirdRecord = records.find(
      (r) => r.metadata.name !== interrupted.metadata.name && r.status?.backupId !== secondId,
    );
    assert.equal(thirdRecord?.status?.phase, 'Succeeded', JSON.stringify(thirdRecord?.status));
    const thirdId = thirdRecord.status.backupId;
    assert.ok(thirdId);

    // Judged by the storage: no unfinished write, nothing of the crashed id, two complete backups.
    assert.deepEqual(await store.pendingWrites(prefix), []);
    const backups = await listTenantBackups(ours, name, uid);
    assert.deepEqual(
      backups.map((b) => [b.backupId, b.complete]),
      [
        [secondId, true],
        [thirdId, true],
      ],
    );
    const keys: string[] = [];
    for await (const object of ours.list(prefix)) keys.push(object.key);
    assert.ok(!keys.some((k) => k.includes(crashedId)), keys.join(', '));
    assert.ok(
      backups.every((b) => b.bytes > DATABASE_MIB * MiB),
      'a backup is smaller than its random data',
    );

    // 5. The new backup restores and checks out.
    const verified = runBackupCommandAsAdmin(['verify', '--tenant', name]);
    assert.equal(verified.status, 0, verified.stderr);
    assert.match(verified.stdout, new RegExp(`"verified":true.*"backupId":"${thirdId}"`));
  } finally {
    if (ours instanceof S3Store) ours.destroy();
  }
}

describe('a backup run killed mid-upload', () => {
  test('filesystem store: no visible backup, then cleaned up and backed up by the next runs', async () => {
    await crashThenRecover(filesystemStore, 'fs');
  });

  test('S3 store (Versity Gateway): no visible backup, then the upload aborted and backed up by the next runs', async () => {
    await crashThenRecover(s3Store, 's3');
  });
});

// What a tenant's cleanup may abort is confined to its prefix: "tenants/a/"
// must not reach "tenants/ab/", and a write younger than the cut-off stays.
// Leftovers are made the way a crash leaves them: an S3 multipart upload with
// a part and no completion, a temporary file beside its key.
describe('removeAbandonedWrites stays inside its prefix and spares young writes', () => {
  const keys = [
    'tenants/a/u1/20261123T020000Z-000001/data',
    'tenants/ab/u2/20261123T020000Z-000002/data',
  ];

  test('filesystem store', async () => {
    const root = mkdtempSync(join(tmpdir(), `${PREFIX}-abandoned-`));
    try {
      const store = new FilesystemStore({ root });
      const hourAgo = new Date(Date.now() - 3600_000);
      for (const key of keys) {
        const directory = join(root, key.replace(/\/data$/, ''));
        await mkdir(directory, { recursive: true });
        const temp = join(directory, '.data.tmp-0123456789ab');
        await writeFile(temp, 'half a backup');
        await utimes(temp, hourAgo, hourAgo);
      }
      // Written to an hour ago: younger than a two-hour cut-off.
      assert.deepEqual(
        await store.removeAbandonedWrites('tenants/a/', new Date(Date.now() - 2 * 3600_000)),
        [],
      );
      const removed = await store.removeAbandonedWrites('tenants/a/', new Date());
      assert.deepEqual(
        removed.map((w) => w.key),
        ['tenants/a/u1/20261123T020000Z-000001/.data.tmp-0123456789ab'],
      );
      assert.deepEqual(await filesystemPending(root, 'tenants/'), [keys[1]]);
      // The emptied directories went with it.
      await assert.rejects(stat(join(root, 'tenants/a')), /ENOENT/);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  test('S3 store (Versity Gateway)', async () => {
    const prefix = `${PREFIX}-abandoned-${randomBytes(4).toString('hex')}`;
    const bucket = requireEnv('S3_BUCKET');
    const store = new S3Store({
      endpoint: requireEnv('S3_ENDPOINT'),
      region: requireEnv('S3_REGION'),
      bucket,
      prefix,
      forcePathStyle: true,
      credentials: s3Credentials(),
      listPageSize: 1,
    });
    const pending = async (): Promise<string[]> =>
      (
        (
          await rawS3.send(
            new ListMultipartUploadsCommand({ Bucket: bucket, Prefix: `${prefix}/` }),
          )
        ).Uploads ?? []
      )
        .map((u) => (u.Key ?? '').slice(prefix.length + 1))
        .sort();
    try {
      for (const key of keys) {
        const started = await rawS3.send(
          new CreateMultipartUploadCommand({ Bucket: bucket, Key: `${prefix}/${key}` }),
        );
        await rawS3.send(
          new UploadPartCommand({
            Bucket: bucket,
            Key: `${prefix}/${key}`,
            UploadId: started.UploadId,
            PartNumber: 1,
            Body: randomBytes(5 * MiB),
          }),
        );
      }
      assert.deepEqual(await pending(), keys);
      assert.deepEqual(
        await store.removeAbandonedWrites('tenants/a/', new Date(Date.now() - 3600_000)),
        [],
      );
      const removed = await store.removeAbandonedWrites(
        'tenants/a/',
        new Date(Date.now() + 60_000),
      );
      assert.deepEqual(
        removed.map((w) => w.key),
        [keys[0]],
      );
      assert.deepEqual(await pending(), [keys[1]]);
      assert.equal(
        (await store.removeAbandonedWrites('', new Date(Date.now() + 60_000))).length,
        1,
      );
      assert.deepEqual(await pending(), []);
    } finally {
      store.destroy();
    }
  });
});

async function filesystemPending(root: string, prefix: string): Promise<string[]> {
  return (await walkFiles(root, prefix.replace(/\/$/, '')))
    .map((path) => /^(.*\/)\.([^/]+)\.tmp-[0-9a-f]+$/.exec(path))
    .flatMap((m) => (m ? [`${m[1]}${m[2]}`] : []));
}
