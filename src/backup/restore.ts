import { spawn } from 'node:child_process';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { ERROR_CODES, OperatorError } from '../errors.ts';
import { decryptingStream, parseManifest, verifyManifestSeal } from './envelope.ts';
import { dataKey as dataObjectKey, manifestKey } from './layout.ts';
import type { BackupManifest } from './manifest.ts';
import { exited, pgEnvironment, stderrTail, type PgTarget } from './pg-tools.ts';
import type { BackupObjectStore } from './store.ts';

// Reading a backup back. Nothing in the store is trusted: the manifest must
// name this tenant, this backup and this backup's own data object; its data
// key must unwrap with this tenant's Transit key; its seal must verify under
// that key; and the whole data object is decrypted and checked once (every
// chunk's tag, the chunk count, both digests) before a single byte goes to
// PostgreSQL. The restore itself runs in one transaction, and is killed if
// the second read differs from the first, so a tampered backup writes nothing.

export interface OpenedBackup {
  manifest: BackupManifest;
  /** The plaintext data key: zero it (dispose) when done. */
  dataKey: Buffer;
  dispose(): void;
}

export interface BackupReader {
  store: BackupObjectStore;
  /** The tenant's Transit key name: a manifest naming another key is refused. */
  transitKey: string;
  /** Transit decrypt of the wrapped data key (the restore role's one power). */
  unwrapDataKey(wrapped: string): Promise<Buffer>;
}

function invalid(message: string, cause?: unknown): OperatorError {
  return new OperatorError(
    ERROR_CODES.BACKUP_INVALID,
    message,
    cause === undefined ? undefined : { cause },
  );
}

export async function openBackup(
  reader: BackupReader,
  tenant: string,
  tenantUid: string,
  backupId: string,
): Promise<OpenedBackup> {
  const bytes = await reader.store.getBytes(manifestKey(tenant, tenantUid, backupId));
  if (!bytes)
    throw new OperatorError(
      ERROR_CODES.API_NOT_FOUND,
      `backup ${backupId} of tenant ${tenant} has no manifest: it does not exist (or was never finished)`,
    );
  const manifest = parseManifest(bytes);
  const where = `backup ${backupId} of tenant ${tenant}`;
  if (manifest.tenant !== tenant || manifest.tenantUid !== tenantUid)
    throw invalid(
      `${where}: the manifest belongs to tenant ${manifest.tenant} (uid ${manifest.tenantUid}), not to this tenant`,
    );
  if (manifest.backupId !== backupId)
    throw invalid(`${where}: the manifest describes backup ${manifest.backupId}`);
  if (manifest.data.key !== dataObjectKey(tenant, tenantUid, backupId))
    throw invalid(`${where}: the manifest points at another object (${manifest.data.key})`);
  if (manifest.encryption.transitKey !== reader.transitKey)
    throw invalid(
      `${where}: the data key is wrapped by Transit key ${manifest.encryption.transitKey}, not by this tenant's ${reader.transitKey}`,
    );
  let dataKey: Buffer;
  try {
    dataKey = await reader.unwrapDataKey(manifest.encryption.wrappedKey);
  } catch (err: unknown) {
    throw invalid(
      `${where}: the data key does not unwrap with Transit key ${reader.transitKey} (a wrong or retired key version, or a key of another tenant): ${(err as Error).message}`,
      err,
    );
  }
  try {
    verifyManifestSeal(manifest, dataKey);
  } catch (err: unknown) {
    dataKey.fill(0);
    throw err;
  }
  return { manifest, dataKey, dispose: () => dataKey.fill(0) };
}

function expectations(manifest: BackupManifest) {
  return {
    chunkSize: manifest.encryption.chunkSize,
    chunks: manifest.encryption.chunks,
    plaintextSha256: manifest.data.plaintextSha256,
    ciphertextSha256: manifest.data.sha256,
  };
}

function decrypting(opened: OpenedBackup) {
  return decryptingStream(
    opened.dataKey,
    { tenantUid: opened.manifest.tenantUid, backupId: opened.manifest.backupId },
    expectations(opened.manifest),
  );
}

/** Reads and checks the whole data object, discarding the plaintext. */
export async function checkBackupData(
  store: BackupObjectStore,
  opened: OpenedBackup,
): Promise<void> {
  const discard = new Writable({ write: (_chunk, _encoding, done) => done() });
  await pipeline(await store.getStream(opened.manifest.data.key), decrypting(opened), discard);
}

export interface RestoreOptions {
  /** Drop the dump's objects first (restoring over the tenant's live database). */
  clean: boolean;
}

/**
 * Restores into `target` (which must exist): check everything, then
 * pg_restore in a single transaction from a second, again checked, read.
 */
export async function restoreBackup(
  store: BackupObjectStore,
  opened: OpenedBackup,
  target: PgTarget,
  options: RestoreOptions,
): Promise<void> {
  await checkBackupData(store, opened);
  const environment = await pgEnvironment(target);
  try {
    const args = [
      '--no-password',
      '--single-transaction',
      '--exit-on-error',
      `--dbname=${target.database}`,
      ...(options.clean ? ['--clean', '--if-exists'] : []),
    ];
    const restore = spawn('pg_restore', args, {
      env: environment.env,
      stdio: ['pipe', 'ignore', 'pipe'],
    });
    const done = exited(restore, 'pg_restore', stderrTail(restore));
    const plaintext = decrypting(opened);
    // Killed before its input is closed, so it can never take a cut-off
    // archive for a whole one and commit: its one transaction is rolled back.
    // (Registered before pipeline's own listener, so it runs first.)
    plaintext.once('error', () => restore.kill('SIGKILL'));
    try {
      await pipeline(await store.getStream(opened.manifest.data.key), plaintext, restore.stdin);
    } catch (err: unknown) {
      restore.kill('SIGKILL');
      await done.catch(() => undefined);
      throw err;
    }
    await done;
  } finally {
    await environment.dispose();
  }
}
