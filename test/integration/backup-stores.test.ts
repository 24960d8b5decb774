import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { after, before, describe, test } from 'node:test';
import { execFileSync } from 'node:child_process';
import {
  CreateBucketCommand,
  DeleteBucketCommand,
  DeleteBucketPolicyCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutBucketPolicyCommand,
  S3Client,
} from '@aws-sdk/client-s3';
import { FilesystemStore } from '../../src/backup/fs-store.ts';
import { S3Store, type S3StoreOptions } from '../../src/backup/s3-store.ts';
import type { BackupObjectStore } from '../../src/backup/store.ts';
import { ERROR_CODES, OperatorError } from '../../src/errors.ts';
import { requireEnv } from '../support/cluster.ts';

// One contract, two stores: a directory and a real S3 server (Versity Gateway
// from hack/cluster.sh). What a store did is judged by the storage itself:
// the files in the directory, the keys and pending multipart uploads the S3
// server lists to a client of its own, not by what the store says.

const MiB = 1024 * 1024;

interface Fixture {
  store: BackupObjectStore;
  /** Every object name in the backing storage under the store's prefix, temporaries and all. */
  rawKeys(): Promise<string[]>;
  /** Writes begun but not finished: temporary files, or multipart uploads not completed/aborted. */
  pendingWrites(): Promise<string[]>;
  cleanup(): Promise<void>;
}

/** `size` random bytes in 256 KiB pieces, and their sha256 once read to the end. */
function randomStream(
  size: number,
  failAfter?: number,
): { stream: Readable; sha256: () => string } {
  const hash = createHash('sha256');
  let sent = 0;
  const stream = new Readable({
    read() {
      if (failAfter !== undefined && sent >= failAfter) {
        this.destroy(new Error('source failed mid-way (test)'));
        return;
      }
      if (sent >= size) {
        this.push(null);
        return;
      }
      const piece = randomBytes(Math.min(256 * 1024, size - sent));
      sent += piece.length;
      hash.update(piece);
      this.push(piece);
    },
  });
  return { stream, sha256: () => hash.digest('hex') };
}

async function sha256Of(stream: Readable): Promise<{ sha256: string; bytes: number }> {
  const hash = createHash('sha256');
  let bytes = 0;
  for await (const part of stream) {
    hash.update(part as Buffer);
    bytes += (part as Buffer).length;
  }
  return { sha256: hash.digest('hex'), bytes };
}

async function keysOf(store: BackupObjectStore, prefix: string): Promise<string[]> {
  const keys: string[] = [];
  for await (const object of store.list(prefix)) keys.push(object.key);
  return keys.sort();
}

function isCode(code: string, message?: RegExp) {
  return (err: unknown): boolean => {
    assert.ok(err instanceof OperatorError, `expected an OperatorError, got ${String(err)}`);
    assert.equal(err.code, code, err.message);
    if (message) assert.match(err.message, message);
    return true;
  };
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

async function filesystemFixture(): Promise<
  Fixture & { root: string; base: string; store: FilesystemStore }
> {
  const root = await mkdtemp(join(tmpdir(), 'backup-store-test-'));
  const base = join(root, 'backups', 'prod');
  return {
    root,
    base,
    store: new FilesystemStore({ root, prefix: 'backups/prod' }),
    rawKeys: () => walkFiles(base),
    pendingWrites: async () =>
      (await walkFiles(base)).filter((path) => /(^|\/)\.[^/]*\.tmp-/.test(path)),
    cleanup: () => rm(root, { recursive: true, force: true }),
  };
}

type S3TestOptions = S3StoreOptions & { endpoint: string; region: string; prefix: string };

function s3Options(): S3TestOptions {
  return {
    endpoint: requireEnv('S3_ENDPOINT'),
    region: requireEnv('S3_REGION'),
    bucket: requireEnv('S3_BUCKET'),
    prefix: `store-test-${randomBytes(4).toString('hex')}/backups`,
    forcePathStyle: true,
    credentials: {
      accessKeyId: requireEnv('S3_ACCESS_KEY_ID'),
      secretAccessKey: requireEnv('S3_SECRET_ACCESS_KEY'),
    },
    // Small pages, so that listing a handful of objects takes several requests.
    listPageSize: 2,
  };
}

function s3Fixture(): Fixture & { options: S3TestOptions } {
  const options = s3Options();
  const raw = new S3Client({
    endpoint: options.endpoint,
    region: options.region,
    forcePathStyle: true,
    credentials: options.credentials,
  });
  const store = new S3Store(options);
  const rawKeys = async (): Promise<string[]> => {
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const page = await raw.send(
        new ListObjectsV2Command({
          Bucket: options.bucket,
          Prefix: `${options.prefix}/`,
          ...(token === undefined ? {} : { ContinuationToken: token }),
        }),
      );
      for (const object of page.Contents ?? [])
        keys.push((object.Key ?? '').slice(options.prefix.length + 1));
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
    return keys.sort();
  };
  return {
    options,
    store,
    rawKeys,
    pendingWrites: async () => {
      const answer = await raw.send(
        new ListMultipartUploadsCommand({ Bucket: options.bucket, Prefix: `${options.prefix}/` }),
      );
      return (answer.Uploads ?? []).map((upload) => upload.Key ?? '');
    },
    cleanup: async () => {
      await store.delete(await rawKeys());
      store.destroy();
      raw.destroy();
    },
  };
}

const UNSAFE_KEYS = [
  '',
  '../x',
  'a/../../b',
  '/etc/passwd',
  'a//b',
  'a/',
  'a\\b',
  'a\0b',
  '.hidden',
  'a/./b',
  'a b',
  `${'k'.repeat(1025)}`,
];

function contract(name: string, makeFixture: () => Promise<Fixture>): void {
  describe(`${name} backup store`, () => {
    let fixture: Fixture;
    before(async () => {
      fixture = await makeFixture();
    });
    after(async () => {
      await fixture.cleanup();
    });

    test('a multi-MiB stream is stored whole and read back byte for byte', async () => {
      const size = 20 * MiB + 12345; // several 8 MiB parts on S3, the last one short
      const source = randomStream(size);
      const key = 'tenants/acme/uid-1/20261123T020304Z-a1b2c3/data';
      assert.equal(await fixture.store.putStream(key, source.stream), size);
      const listed = [];
      for await (const object of fixture.store.list('tenants/acme/')) listed.push(object);
      assert.deepEqual(
        listed.map(({ key: k, size: s }) => ({ key: k, size: s })),
        [{ key, size }],
      );
      assert.ok(
        listed[0] !== undefined &&
          Math.abs(listed[0].lastModified.getTime() - Date.now()) < 5 * 60_000,
      );
      assert.deepEqual(await sha256Of(await fixture.store.getStream(key)), {
        sha256: source.sha256(),
        bytes: size,
      });
      assert.deepEqual(await fixture.rawKeys(), [key]);
      assert.deepEqual(await fixture.pendingWrites(), []);
      await fixture.store.delete([key]);
      assert.deepEqual(await fixture.rawKeys(), []);
    });

    test('small objects: putBytes, getBytes, overwrite, and missing objects', async () => {
      const key = 'tenants/acme/uid-1/20261123T020304Z-a1b2c3/manifest.json';
      await fixture.store.putBytes(key, Buffer.from('{"v":1}'));
      assert.deepEqual(await fixture.store.getBytes(key), Buffer.from('{"v":1}'));
      await fixture.store.putBytes(key, Buffer.from('{"v":2}'));
      assert.deepEqual(await fixture.store.getBytes(key), Buffer.from('{"v":2}'));
      await fixture.store.putBytes(`${key}.empty`, Buffer.alloc(0));
      assert.deepEqual(await fixture.store.getBytes(`${key}.empty`), Buffer.alloc(0));

      assert.equal(
        await fixture.store.getBytes('tenants/acme/uid-1/missing/manifest.json'),
        undefined,
      );
      await assert.rejects(
        fixture.store.getStream('tenants/acme/uid-1/missing/data'),
        isCode(ERROR_CODES.API_NOT_FOUND),
      );
      // A "directory" is not an object either.
      assert.equal(await fixture.store.getBytes('tenants/acme/uid-1'), undefined);
      await assert.rejects(
        fixture.store.getStream('tenants/acme'),
        isCode(ERROR_CODES.API_NOT_FOUND),
      );
      await fixture.store.delete([key, `${key}.empty`]);
      assert.equal(await fixture.store.getBytes(key), undefined);
    });

    test('list returns exactly the keys under a prefix, across several pages', async () => {
      const keys = [
        ...[1, 2, 3, 4, 5].map((n) => `list/a/backup-${n}/data`),
        'list/ab/backup-1/data',
        'list/ab/backup-2/data',
        'list/b/backup-1/data',
      ];
      for (const key of keys) await fixture.store.putBytes(key, Buffer.from(key));
      assert.deepEqual(await keysOf(fixture.store, 'list/a/'), keys.slice(0, 5));
      assert.deepEqual(await keysOf(fixture.store, 'list/a'), keys.slice(0, 7));
      assert.deepEqual(await keysOf(fixture.store, 'list/a/backup-3/'), ['list/a/backup-3/data']);
      assert.deepEqual(await keysOf(fixture.store, 'list/'), [...keys].sort());
      assert.deepEqual(await keysOf(fixture.store, 'list/c/'), []);
      assert.deepEqual(await keysOf(fixture.store, ''), [...keys].sort());
      for await (const object of fixture.store.list('list/b/'))
        assert.equal(object.size, Buffer.byteLength('list/b/backup-1/data'));

      // Deleting: some present, one missing (counts as deleted).
      await fixture.store.delete([
        'list/a/backup-1/data',
        'list/a/backup-2/data',
        'list/a/never/data',
      ]);
      assert.deepEqual(await keysOf(fixture.store, 'list/a/'), keys.slice(2, 5));
      await fixture.store.delete([]);
      await fixture.store.delete(keys);
      assert.deepEqual(await fixture.rawKeys(), []);
    });

    test('delete takes more keys than one S3 request may carry', async () => {
      await fixture.store.putBytes('many/real', Buffer.from('x'));
      const missing = Array.from({ length: 1500 }, (_, n) => `many/missing-${n}`);
      await fixture.store.delete([...missing, 'many/real']);
      assert.deepEqual(await fixture.rawKeys(), []);
    });

    test('keys that could leave the prefix are refused before storage is touched', async () => {
      await fixture.store.putBytes('safe/object', Buffer.from('x'));
      for (const key of UNSAFE_KEYS) {
        const refused = isCode(ERROR_CODES.INVALID_SPEC, /^unsafe backup object key /);
        await assert.rejects(
          fixture.store.putStream(key, Readable.from([Buffer.from('x')])),
          refused,
          key,
        );
        await assert.rejects(fixture.store.putBytes(key, Buffer.from('x')), refused, key);
        await assert.rejects(fixture.store.getStream(key), refused, key);
        await assert.rejects(fixture.store.getBytes(key), refused, key);
        await assert.rejects(fixture.store.delete(['safe/object', key]), refused, key);
      }
      for (const prefix of ['../', 'a//', '/x', 'a/../']) {
        await assert.rejects(
          keysOf(fixture.store, prefix),
          isCode(ERROR_CODES.INVALID_SPEC, /unsafe backup object prefix/),
        );
      }
      // delete refused the whole batch: the safe key in it is still there.
      assert.deepEqual(await fixture.rawKeys(), ['safe/object']);
      await fixture.store.delete(['safe/object']);
    });

    test('a source that fails mid-way leaves no object and no unfinished write', async () => {
      for (const [size, failAfter] of [
        [30 * MiB, 20 * MiB], // after two parts went up
        [4 * MiB, 1 * MiB], // before the first part is full
      ] as const) {
        const key = `failing/${size}/data`;
        const source = randomStream(size, failAfter);
        await assert.rejects(fixture.store.putStream(key, source.stream), /source failed mid-way/);
        assert.deepEqual(await keysOf(fixture.store, 'failing/'), []);
        assert.deepEqual(await fixture.rawKeys(), []);
        assert.deepEqual(await fixture.pendingWrites(), []);
        await assert.rejects(fixture.store.getStream(key), isCode(ERROR_CODES.API_NOT_FOUND));
      }
      // A failed write over an existing object leaves the old object as it was.
      const key = 'failing/existing/data';
      await fixture.store.putBytes(key, Buffer.from('old'));
      await assert.rejects(fixture.store.putStream(key, randomStream(12 * MiB, 9 * MiB).stream));
      assert.deepEqual(await fixture.store.getBytes(key), Buffer.from('old'));
      assert.deepEqual(await fixture.pendingWrites(), []);
      await fixture.store.delete([key]);
    });
  });
}

contract('filesystem', filesystemFixture);
contract('S3 (Versity Gateway)', () => Promise.resolve(s3Fixture()));

describe('filesystem backup store specifics', () => {
  let fixture: Awaited<ReturnType<typeof filesystemFixture>>;
  before(async () => {
    fixture = await filesystemFixture();
  });
  after(async () => {
    await fixture.cleanup();
  });

  test('files are 0600 and directories 0700, whatever the umask', async () => {
    const previous = process.umask(0o000);
    try {
      await fixture.store.putBytes('tenants/acme/uid-1/b1/manifest.json', Buffer.from('{}'));
    } finally {
      process.umask(previous);
    }
    assert.equal(
      (await stat(join(fixture.base, 'tenants/acme/uid-1/b1/manifest.json'))).mode & 0o777,
      0o600,
    );
    for (const directory of [
      'tenants',
      'tenants/acme',
      'tenants/acme/uid-1',
      'tenants/acme/uid-1/b1',
    ])
      assert.equal((await stat(join(fixture.base, directory))).mode & 0o777, 0o700, directory);
    assert.equal(fixture.store.location, `file://${fixture.base}/`);
    // Deleting the last object removes the directories it emptied, not the store's own.
    await fixture.store.delete(['tenants/acme/uid-1/b1/manifest.json']);
    assert.deepEqual(await readdir(fixture.base), []);
  });

  test('a temporary file left by a crash is never listed, and is cleaned up once old', async () => {
    await fixture.store.putBytes('crash/b1/manifest.json', Buffer.from('{}'));
    const leftover = join(fixture.base, 'crash/b1/.data.tmp-0123456789ab');
    await writeFile(leftover, 'half a backup');
    assert.deepEqual(await keysOf(fixture.store, 'crash/'), ['crash/b1/manifest.json']);
    assert.equal(await fixture.store.getBytes('crash/b1/data'), undefined);
    assert.equal(
      await fixture.store.cleanupTemporaryFiles(60_000),
      0,
      'a fresh one may still be being written',
    );
    const hourAgo = new Date(Date.now() - 3600_000);
    await utimes(leftover, hourAgo, hourAgo);
    assert.equal(await fixture.store.cleanupTemporaryFiles(60_000), 1);
    assert.deepEqual(await fixture.rawKeys(), ['crash/b1/manifest.json']);
    await fixture.store.delete(['crash/b1/manifest.json']);
  });

  test('a symbolic link out of the root is not an object', async () => {
    const { symlink, mkdir } = await import('node:fs/promises');
    await mkdir(join(fixture.base, 'links'), { recursive: true });
    await symlink('/etc', join(fixture.base, 'links', 'etc'));
    await symlink('/etc/hostname', join(fixture.base, 'links', 'hostname'));
    assert.deepEqual(await keysOf(fixture.store, 'links/'), []);
    await rm(join(fixture.base, 'links'), { recursive: true });
  });
});

describe('S3 backup store specifics', () => {
  test('location and errors never carry the credentials', async () => {
    const fixture = s3Fixture();
    try {
      assert.equal(
        fixture.store.location,
        `s3://${fixture.options.bucket}/${fixture.options.prefix}/`,
      );
      const wrongSecret = `wrong-${randomBytes(12).toString('hex')}`;
      const wrong = new S3Store({
        ...fixture.options,
        credentials: {
          accessKeyId: fixture.options.credentials.accessKeyId,
          secretAccessKey: wrongSecret,
        },
      });
      try {
        await assert.rejects(wrong.putBytes('x/y', Buffer.from('x')), (err: unknown) => {
          assert.ok(err instanceof OperatorError);
          assert.equal(err.code, ERROR_CODES.API_FORBIDDEN, err.message);
          assert.ok(!err.message.includes(wrongSecret));
          assert.ok(!err.message.includes(fixture.options.credentials.secretAccessKey));
          assert.ok(!err.message.includes(fixture.options.credentials.accessKeyId));
          assert.match(
            err.message,
            /^S3 write of s3:\/\/tenant-backups\/store-test-[0-9a-f]+\/backups\/x\/y: /,
          );
          return true;
        });
      } finally {
        wrong.destroy();
      }
      assert.deepEqual(await fixture.rawKeys(), []);
    } finally {
      await fixture.cleanup();
    }
  });
});

// Where the store supports policies, a tenant's own identity reaches only its
// prefix. Versity Gateway does, with its user accounts (hack/cluster.sh runs
// it with --iam-dir) and a bucket policy: per-tenant object actions on
// <bucket>/tenants/<name>/*, and ListBucket only with an s3:prefix under it.
// A bucket of its own, so the policy touches nothing else.
describe('S3 prefix confinement by bucket policy (Versity Gateway accounts)', () => {
  let base: S3TestOptions;
  const bucket = `policy-test-${randomBytes(4).toString('hex')}`;
  const tenants = ['a', 'b'].map((name) => ({
    name,
    accessKeyId: `tenant-${name}-${randomBytes(4).toString('hex')}`,
    secretAccessKey: randomBytes(20).toString('hex'),
  }));
  let root: S3Client;
  const opened: S3Store[] = [];
  const storeFor = (tenant: (typeof tenants)[number], prefix: string): S3Store => {
    const store = new S3Store({
      ...base,
      bucket,
      prefix,
      credentials: { accessKeyId: tenant.accessKeyId, secretAccessKey: tenant.secretAccessKey },
    });
    opened.push(store);
    return store;
  };
  const rootStore = (): S3Store => {
    const store = new S3Store({ ...base, bucket, prefix: '' });
    opened.push(store);
    return store;
  };
  /** `versitygw admin ...` with the root keys in its environment, not on its command line. */
  const admin = (...args: string[]): void => {
    const binDir = execFileSync('hack/build-versitygw.sh', { encoding: 'utf8' }).trim();
    execFileSync(join(binDir, 'versitygw'), ['admin', '--endpoint-url', base.endpoint, ...args], {
      env: {
        ...process.env,
        ADMIN_ACCESS_KEY_ID: base.credentials.accessKeyId,
        ADMIN_SECRET_ACCESS_KEY: base.credentials.secretAccessKey,
      },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
  };

  before(async () => {
    base = s3Options();
    root = new S3Client({
      endpoint: base.endpoint,
      region: base.region,
      forcePathStyle: true,
      credentials: base.credentials,
    });
    for (const tenant of tenants)
      admin(
        'create-user',
        '--access',
        tenant.accessKeyId,
        '--secret',
        tenant.secretAccessKey,
        '--role',
        'user',
      );
    await root.send(new CreateBucketCommand({ Bucket: bucket }));
    const statements = tenants.flatMap((tenant) => [
      {
        Effect: 'Allow',
        Principal: { AWS: [tenant.accessKeyId] },
        Action: ['s3:GetObject', 's3:PutObject', 's3:AbortMultipartUpload'],
        Resource: [`arn:aws:s3:::${bucket}/tenants/${tenant.name}/*`],
      },
      {
        Effect: 'Allow',
        Principal: { AWS: [tenant.accessKeyId] },
        Action: ['s3:ListBucket'],
        Resource: [`arn:aws:s3:::${bucket}`],
        Condition: { StringLike: { 's3:prefix': [`tenants/${tenant.name}/*`] } },
      },
    ]);
    await root.send(
      new PutBucketPolicyCommand({
        Bucket: bucket,
        Policy: JSON.stringify({ Version: '2012-10-17', Statement: statements }),
      }),
    );
  });

  after(async () => {
    const all = rootStore();
    await all.delete(await keysOf(all, ''));
    await root.send(new DeleteBucketPolicyCommand({ Bucket: bucket }));
    await root.send(new DeleteBucketCommand({ Bucket: bucket }));
    for (const tenant of tenants) admin('delete-user', '--access', tenant.accessKeyId);
    for (const store of opened) store.destroy();
    root.destroy();
  });

  test('a tenant identity works in its own prefix and cannot list, read or write another', async () => {
    const [a, b] = tenants as [(typeof tenants)[number], (typeof tenants)[number]];
    const aOwn = storeFor(a, 'tenants/a');
    const bOwn = storeFor(b, 'tenants/b');
    await bOwn.putBytes('b1/manifest.json', Buffer.from('b secret'));
    const big = randomStream(20 * MiB);
    assert.equal(await aOwn.putStream('a1/data', big.stream), 20 * MiB);
    assert.deepEqual(await keysOf(aOwn, ''), ['a1/data']);
    assert.deepEqual(await sha256Of(await aOwn.getStream('a1/data')), {
      sha256: big.sha256(),
      bytes: 20 * MiB,
    });
    // A failed upload of its own is aborted, not left behind (the policy allows the abort).
    await assert.rejects(
      aOwn.putStream('a2/data', randomStream(20 * MiB, 17 * MiB).stream),
      /source failed mid-way/,
    );
    const pending = await root.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
    assert.deepEqual(pending.Uploads ?? [], []);

    const forbidden = isCode(ERROR_CODES.API_FORBIDDEN);
    const aIntoB = storeFor(a, 'tenants/b');
    await assert.rejects(keysOf(aIntoB, ''), forbidden);
    await assert.rejects(aIntoB.getBytes('b1/manifest.json'), forbidden);
    await assert.rejects(aIntoB.getStream('b1/manifest.json'), forbidden);
    await assert.rejects(aIntoB.putBytes('b1/manifest.json', Buffer.from('forged')), forbidden);
    const aEverywhere = storeFor(a, '');
    for (const prefix of ['', 'tenants/', 'tenants/a', 'tenants/b/'])
      await assert.rejects(keysOf(aEverywhere, prefix), forbidden, prefix);
    assert.deepEqual(await keysOf(aEverywhere, 'tenants/a/'), ['tenants/a/a1/data']);

    // Judged by the root account: B's object is untouched, A wrote nothing outside its prefix.
    const all = rootStore();
    assert.deepEqual(await keysOf(all, ''), ['tenants/a/a1/data', 'tenants/b/b1/manifest.json']);
    assert.deepEqual(await all.getBytes('tenants/b/b1/manifest.json'), Buffer.from('b secret'));
  });
});
