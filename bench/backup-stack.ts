import { readFileSync } from 'node:fs';
import { localServers } from '../hack/database-servers.ts';
import type { PgTarget } from '../src/backup/pg-tools.ts';
import { FilesystemStore } from '../src/backup/fs-store.ts';
import { S3Store } from '../src/backup/s3-store.ts';
import type { BackupObjectStore } from '../src/backup/store.ts';

// What the backup benchmark and its child process (bench/backup-child.ts)
// both derive from the local stack's environment (hack/cluster.sh's env
// file): the PostgreSQL server, the two stores, the Transit key and the
// tenant the backups are filed under. Nothing secret travels in argv.

export const TENANT = 'bench-backup';
export const TRANSIT_KEY = 'bench-backup';
export const S3_PREFIX = 'bench-backup';

export type StoreKind = 'filesystem' | 's3';

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: start the local stack with hack/cluster.sh up`);
  return value;
}

/** pg-eu as its superuser, over TLS with verify-full. */
export function superuserTarget(database: string): PgTarget {
  const server = localServers()[0]!;
  return {
    host: server.host,
    port: server.port,
    user: server.adminUser,
    password: server.adminPassword,
    database,
    caCertificate: readFileSync(env('PG_CA_FILE'), 'utf8'),
  };
}

/** `root` is the filesystem store's directory (ignored for S3). */
export function openBenchStore(kind: StoreKind, root: string): BackupObjectStore {
  if (kind === 'filesystem') return new FilesystemStore({ root });
  return new S3Store({
    endpoint: env('S3_ENDPOINT'),
    region: process.env.S3_REGION ?? 'us-east-1',
    bucket: env('S3_BUCKET'),
    prefix: S3_PREFIX,
    forcePathStyle: true,
    credentials: {
      accessKeyId: env('S3_ACCESS_KEY_ID'),
      secretAccessKey: env('S3_SECRET_ACCESS_KEY'),
    },
  });
}
