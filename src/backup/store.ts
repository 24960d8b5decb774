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

/** A write begun and never finished: an S3 multipart upload, a filesystem temporary file. */
export interface AbandonedWrite {
  /** The key it was being written to (S3), or the temporary file's own path (filesystem). */
  key: string;
  /** When the upload was initiated (S3), or when the file was last written (filesystem). */
  at: Date;
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
  /**
   * Removes writes under `prefix` (a whole-segment prefix, ending in '/')
   * that a crashed writer left behind and that are older than `before`:
   * aborts S3 multipart uploads, deletes temporary files. They are invisible
   * to list(), but hold storage (and on S3, cost) until removed. Answers what
   * it removed. Optional: a store whose writes leave nothing behind has none.
   */
  removeAbandonedWrites?(prefix: string, before: Date): Promise<AbandonedWrite[]>;
}
