import { z } from 'zod';
import { ERROR_CODES, OperatorError } from '../errors.ts';
import { BACKUP_ID_PATTERN } from './layout.ts';
import { MANIFEST_FORMAT, type BackupManifest } from './manifest.ts';

// A manifest is read back from storage, which anyone with write access to the
// bucket can change, so it is parsed field by field before anything uses it
// (before the seal is checked, too: the seal needs the data key, which needs
// `encryption.wrappedKey`). Strict objects: an unknown field is refused rather
// than silently dropped, so what the seal covers is exactly what was stored.
// The chunk size is bounded because the decryptor holds one chunk in memory.

/** The largest chunk a reader accepts: a forged manifest cannot make it allocate more. */
export const MAX_CHUNK_SIZE = 64 * 1024 * 1024;

const sha256Hex = z.string().regex(/^[0-9a-f]{64}$/, 'expected 64 lowercase hex digits');
const count = z.number().int().nonnegative();
const name = z.string().min(1).max(253);

export const backupManifestSchema = z.strictObject({
  format: z.literal(MANIFEST_FORMAT),
  tenant: name,
  tenantUid: z.string().min(1).max(128),
  backupId: z
    .string()
    .regex(BACKUP_ID_PATTERN, 'expected a backup id like 20261123T020304Z-a1b2c3'),
  time: z.iso.datetime(),
  database: z.strictObject({ server: name, name: z.string().min(1).max(63) }),
  pgDumpVersion: z.string().min(1).max(200),
  encryption: z.strictObject({
    algorithm: z.literal('AES-256-GCM'),
    chunkSize: z.number().int().min(1).max(MAX_CHUNK_SIZE),
    chunks: z.number().int().min(1),
    wrappedKey: z
      .string()
      .regex(/^vault:v\d+:\S+$/, 'expected a Transit ciphertext "vault:v<N>:..."'),
    transitKey: name,
    keyVersion: z.number().int().min(1),
  }),
  data: z.strictObject({
    key: z.string().min(1).max(1024),
    bytes: count,
    sha256: sha256Hex,
    plaintextBytes: count,
    plaintextSha256: sha256Hex,
  }),
  tables: z.array(z.strictObject({ table: z.string().min(1).max(300), rows: count })),
  seal: sha256Hex.exactOptional(),
});

// Fails to compile if the schema and the hand-written type drift apart.
type Parsed = z.infer<typeof backupManifestSchema>;
const sameShape: [Parsed, BackupManifest] extends [BackupManifest, Parsed] ? true : never = true;
void sameShape;

/** A stored manifest's bytes, checked; OperatorError BACKUP_INVALID naming the first bad field. */
export function parseManifest(bytes: Buffer): BackupManifest {
  let json: unknown;
  try {
    json = JSON.parse(bytes.toString('utf8'));
  } catch {
    throw new OperatorError(ERROR_CODES.BACKUP_INVALID, 'backup manifest is not valid JSON');
  }
  const result = backupManifestSchema.safeParse(json);
  if (result.success) return result.data;
  const issue = result.error.issues[0];
  const field = issue === undefined || issue.path.length === 0 ? '(root)' : issue.path.join('.');
  throw new OperatorError(
    ERROR_CODES.BACKUP_INVALID,
    `backup manifest field ${field} is invalid: ${issue?.message ?? 'unknown problem'}`,
  );
}
