// The record that makes a backup exist. Written last, after the data object
// is complete; a data object without a manifest is an unfinished backup and
// is cleaned up. Stored in plaintext beside the data (it holds no secret: the
// data key is wrapped by the tenant's Transit key), and sealed with an HMAC
// under a key derived from the data key, so only a holder of that data key can
// have written it (src/backup/envelope.ts seals and opens it).

export const MANIFEST_FORMAT = 'tenant-operator.backup/v1';

export interface TableCount {
  /** Schema-qualified, as the catalog names it: "public.orders". */
  table: string;
  rows: number;
}

export interface BackupManifest {
  format: typeof MANIFEST_FORMAT;
  tenant: string;
  tenantUid: string;
  backupId: string;
  /** ISO time the dump's snapshot was taken. */
  time: string;
  database: { server: string; name: string };
  pgDumpVersion: string;
  encryption: {
    algorithm: 'AES-256-GCM';
    chunkSize: number;
    chunks: number;
    /** The data key wrapped by the tenant's Transit key: "vault:v<N>:...". */
    wrappedKey: string;
    transitKey: string;
    keyVersion: number;
  };
  data: {
    key: string;
    /** Bytes of the stored (encrypted) object. */
    bytes: number;
    /** sha256 of the stored (encrypted) object, hex. */
    sha256: string;
    plaintextBytes: number;
    /** sha256 of the pg_dump output, checked again on restore. */
    plaintextSha256: string;
  };
  /** Row counts in the dump's snapshot: what verification checks a restore against. */
  tables: TableCount[];
  /** HMAC-SHA256 over everything above (see envelope.ts), hex. */
  seal?: string;
}
