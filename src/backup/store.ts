import type { Readable } from 'node:stream';

// Where encrypted backups are kept: an S3-compatible bucket or a mounted
// directory (src/backup/s3-store.ts, src/backup/fs-store.ts). Keys are
// relative to the BackupStore's own prefix and use '/' as separator; they are
// made by src/backup/layout.ts, and every implementation refuses a key that
// could leave its prefix ('..', empty segments, a leading '/').

export interface StoredObject {
  key: string;
  size: number;
  lastModified: Date;
}

export interface BackupObjectStore {
  /** For status and logs, never with credentials: "s3://bucket/prefix" or "file:///path". */
  readonly location: string;
  /**
   * Streams `body` to `key`; memory stays bounded whatever the size. The
   * object becomes visible only complete (multipart upload completed, or a
   * temporary file renamed): a crash leaves no partial object under `key`.
   * Answers the number of bytes stored.
   */
  putStream(key: string, body: Readable): Promise<number>;
  /** A small object (a manifest), written whole. */
  putBytes(key: string, data: Buffer): Promise<void>;
  /** The object's bytes as a stream; OperatorError API_NOT_FOUND when missing. */
  getStream(key: string): Promise<Readable>;
  /** A small object whole; undefined when missing. */
  getBytes(key: string): Promise<Buffer | undefined>;
  /** Every object whose key starts with `prefix` (paged underneath). */
  list(prefix: string): AsyncIterable<StoredObject>;
  /** Deletes these keys; missing ones count as deleted. */
  delete(keys: readonly string[]): Promise<void>;
}
