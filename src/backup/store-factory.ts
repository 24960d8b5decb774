import type { BackupStoreSpec } from '../api/backupstore.ts';
import { ERROR_CODES, OperatorError } from '../errors.ts';
import { FilesystemStore } from './fs-store.ts';
import type { BackupObjectStore } from './store.ts';

// A BackupStore's spec made into a store client. Credentials (and a CA) come
// from Secrets in the operator's namespace, read through `readSecret`, which
// answers the Secret's decoded data. The S3 client is imported only when an
// S3 store is opened: the AWS SDK is about 30 MiB of the operator's resident
// memory, which an operator with a filesystem store or no backups never needs.

export type SecretReader = (name: string) => Promise<Record<string, string>>;

export async function openStore(
  spec: BackupStoreSpec,
  readSecret: SecretReader,
): Promise<BackupObjectStore> {
  if (spec.filesystem) return new FilesystemStore({ root: spec.filesystem.path });
  const s3 = spec.s3;
  if (!s3)
    throw new OperatorError(ERROR_CODES.INVALID_SPEC, 'BackupStore: neither s3 nor filesystem');
  const credentials = await readSecret(s3.credentialsSecret.name);
  const { accessKeyId, secretAccessKey } = credentials;
  if (!accessKeyId || !secretAccessKey)
    throw new OperatorError(
      ERROR_CODES.INVALID_SPEC,
      `BackupStore credentials Secret ${s3.credentialsSecret.name} needs keys accessKeyId and secretAccessKey`,
    );
  let caBundle: string | undefined;
  if (s3.caSecret) {
    caBundle = (await readSecret(s3.caSecret.name))[s3.caSecret.key];
    if (!caBundle)
      throw new OperatorError(
        ERROR_CODES.INVALID_SPEC,
        `BackupStore CA Secret ${s3.caSecret.name} has no key ${s3.caSecret.key}`,
      );
  }
  const { S3Store } = await import('./s3-store.ts');
  return new S3Store({
    ...(s3.endpoint ? { endpoint: s3.endpoint } : {}),
    region: s3.signingRegion,
    bucket: s3.bucket,
    ...(s3.prefix ? { prefix: s3.prefix } : {}),
    forcePathStyle: s3.forcePathStyle,
    credentials: { accessKeyId, secretAccessKey },
    ...(caBundle ? { caBundle } : {}),
  });
}
