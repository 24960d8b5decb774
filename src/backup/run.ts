import { spawn } from 'node:child_process';
import type { DataKey } from '../vault/transit.ts';
import { DEFAULT_CHUNK_SIZE, encryptingStream, sealManifest } from './envelope.ts';
import { dataKey as dataObjectKey, manifestKey, newBackupId } from './layout.ts';
import { MANIFEST_FORMAT, type BackupManifest } from './manifest.ts';
import { exited, pgDumpVersion, pgEnvironment, stderrTail, type PgTarget } from './pg-tools.ts';
import { openSnapshot } from './snapshot.ts';
import type { BackupObjectStore } from './store.ts';

// One backup: pg_dump -Fc of the tenant's database, in the snapshot its row
// counts were taken in, encrypted in chunks under a fresh data key, streamed
// to the store; then the manifest, last. Nothing is held in memory beyond a
// chunk and the upload's parts, whatever the database's size. A failure at
// any point leaves no manifest, so no backup: the data object, if any, is an
// unfinished one that retention removes.

export interface BackupSource {
  tenant: string;
  tenantUid: string;
  /** The DatabaseServer's name, recorded in the manifest. */
  server: string;
  target: PgTarget;
}

export interface BackupRunDeps {
  store: BackupObjectStore;
  /** A fresh data key from the tenant's Transit key (plaintext and wrapped). */
  newDataKey(): Promise<DataKey>;
  transitKey: string;
  chunkSize?: number;
  now?: () => Date;
}

export async function runBackup(
  deps: BackupRunDeps,
  source: BackupSource,
  backupId: string = newBackupId((deps.now ?? (() => new Date()))()),
): Promise<BackupManifest> {
  const { tenant, tenantUid } = source;
  const version = await pgDumpVersion();
  const key = await deps.newDataKey();
  const environment = await pgEnvironment(source.target);
  const snapshot = await openSnapshot(source.target);
  const time = (deps.now ?? (() => new Date()))().toISOString();
  try {
    const chunkSize = deps.chunkSize ?? DEFAULT_CHUNK_SIZE;
    const encryption = encryptingStream(key.plaintext, { tenantUid, backupId }, chunkSize);
    const dump = spawn(
      'pg_dump',
      ['--format=custom', '--no-password', `--snapshot=${snapshot.id}`, '--lock-wait-timeout=60s'],
      { env: environment.env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const dumpDone = exited(dump, 'pg_dump', stderrTail(dump));
    // pg_dump closes its output whether it succeeded or not: the encrypted
    // stream ends only once it exited 0, and fails otherwise, which aborts
    // the upload.
    dump.stdout.pipe(encryption.stream, { end: false });
    const stdoutDone = new Promise<void>((resolve) => dump.stdout.once('end', resolve));
    Promise.all([dumpDone, stdoutDone]).then(
      () => encryption.stream.end(),
      (err: unknown) => encryption.stream.destroy(err as Error),
    );
    const dataKeyName = dataObjectKey(tenant, tenantUid, backupId);
    const [bytes] = await Promise.all([
      deps.store.putStream(dataKeyName, encryption.stream),
      dumpDone,
    ]);
    const summary = encryption.summary();
    const manifest: BackupManifest = {
      format: MANIFEST_FORMAT,
      tenant,
      tenantUid,
      backupId,
      time,
      database: { server: source.server, name: source.target.database },
      pgDumpVersion: version,
      encryption: {
        algorithm: 'AES-256-GCM',
        chunkSize,
        chunks: summary.chunks,
        wrappedKey: key.ciphertext,
        transitKey: deps.transitKey,
        keyVersion: key.keyVersion,
      },
      data: {
        key: dataKeyName,
        bytes,
        sha256: summary.ciphertextSha256,
        plaintextBytes: summary.plaintextBytes,
        plaintextSha256: summary.plaintextSha256,
      },
      tables: snapshot.tables,
    };
    const sealed = sealManifest(manifest, key.plaintext);
    await deps.store.putBytes(
      manifestKey(tenant, tenantUid, backupId),
      Buffer.from(`${JSON.stringify(sealed, null, 2)}\n`),
    );
    return sealed;
  } finally {
    key.plaintext.fill(0);
    await snapshot.close();
    await environment.dispose();
  }
}
