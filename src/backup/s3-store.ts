import { Agent } from 'node:https';
import { Readable } from 'node:stream';
import {
  AbortMultipartUploadCommand,
  DeleteObjectsCommand,
  GetObjectCommand,
  ListMultipartUploadsCommand,
  ListObjectsV2Command,
  PutObjectCommand,
  S3Client,
  S3ServiceException,
} from '@aws-sdk/client-s3';
import { Upload } from '@aws-sdk/lib-storage';
import { ERROR_CODES, OperatorError, toOperatorError } from '../errors.ts';
import { assertSafeKey, assertSafePrefix, normalizeStorePrefix } from './keys.ts';
import type { AbandonedWrite, BackupObjectStore, StoredObject } from './store.ts';

// A BackupStore in an S3-compatible bucket. Large objects go up as streaming
// multipart uploads: 8 MiB parts, two in flight, so memory stays near 24 MiB
// whatever the size; the object exists only once the upload is completed, and
// a failed upload is aborted so its parts do not linger (lib-storage's Upload
// does that unless leavePartsOnError is set, which we never do). Credentials
// go to the SDK only: errors name the bucket, the key and what S3 answered.

export interface S3StoreOptions {
  /** For S3-compatible servers ("https://minio.example:9000"); AWS itself when omitted. */
  endpoint?: string;
  /** Default us-east-1. */
  region?: string;
  bucket: string;
  /** Put before every key ("backups/prod"). */
  prefix?: string;
  forcePathStyle: boolean;
  credentials: { accessKeyId: string; secretAccessKey: string };
  /** PEM CA certificates to trust for the endpoint, instead of the system's. */
  caBundle?: string;
  /** Keys per ListObjectsV2 page (S3's own maximum, 1000, by default); small in tests to exercise paging. */
  listPageSize?: number;
}

const PART_SIZE = 8 * 1024 * 1024;
const PARTS_IN_FLIGHT = 2;
/** DeleteObjects takes at most this many keys per request. */
const DELETE_BATCH = 1000;

export class S3Store implements BackupObjectStore {
  readonly location: string;
  private readonly client: S3Client;
  private readonly bucket: string;
  private readonly prefix: string;
  private readonly listPageSize: number;
  /** Scrubbed from any message a server or the SDK sends back, just in case it echoes them. */
  private readonly secrets: readonly string[];

  constructor(options: S3StoreOptions) {
    this.bucket = options.bucket;
    this.prefix = normalizeStorePrefix(options.prefix);
    this.listPageSize = options.listPageSize ?? 1000;
    this.location = `s3://${options.bucket}/${this.prefix}`;
    this.secrets = [options.credentials.secretAccessKey, options.credentials.accessKeyId].filter(
      (value) => value.length > 0,
    );
    this.client = new S3Client({
      region: options.region ?? 'us-east-1',
      forcePathStyle: options.forcePathStyle,
      credentials: {
        accessKeyId: options.credentials.accessKeyId,
        secretAccessKey: options.credentials.secretAccessKey,
      },
      ...(options.endpoint === undefined ? {} : { endpoint: options.endpoint }),
      ...(options.caBundle === undefined
        ? {}
        : { requestHandler: { httpsAgent: new Agent({ ca: options.caBundle, keepAlive: true }) } }),
    });
  }

  private objectKey(key: string): string {
    assertSafeKey(key);
    return `${this.prefix}${key}`;
  }

  private error(action: string, key: string, err: unknown): OperatorError {
    if (err instanceof OperatorError) return err;
    const scrub = (text: string): string =>
      this.secrets.reduce((out, secret) => out.split(secret).join('[redacted]'), text);
    const where = `S3 ${action} s3://${this.bucket}/${this.prefix}${key}`;
    if (err instanceof S3ServiceException) {
      const status = err.$metadata.httpStatusCode;
      const message = `${where}: ${err.name}${status === undefined ? '' : ` (HTTP ${status})`}: ${scrub(err.message)}`;
      const options = { cause: err, ...(status === undefined ? {} : { httpStatus: status }) };
      if (status === 404 || err.name === 'NoSuchKey' || err.name === 'NotFound')
        return new OperatorError(ERROR_CODES.API_NOT_FOUND, message, options);
      if (status === 403) return new OperatorError(ERROR_CODES.API_FORBIDDEN, message, options);
      if (status === 429 || err.name === 'SlowDown')
        return new OperatorError(ERROR_CODES.API_THROTTLED, message, options);
      return new OperatorError(ERROR_CODES.API_ERROR, message, options);
    }
    const converted = toOperatorError(err);
    return new OperatorError(converted.code, `${where}: ${scrub(converted.message)}`, {
      cause: err,
    });
  }

  async putStream(key: string, body: Readable): Promise<number> {
    const objectKey = this.objectKey(key);
    let bytes = 0;
    // Counted on the way through; an error of the source ends the iteration
    // with that error, which fails (and aborts) the upload.
    const counted = Readable.from(
      (async function* () {
        for await (const part of body as AsyncIterable<Buffer>) {
          bytes += part.length;
          yield part;
        }
      })(),
      { objectMode: false },
    );
    const upload = new Upload({
      client: this.client,
      params: { Bucket: this.bucket, Key: objectKey, Body: counted },
      partSize: PART_SIZE,
      queueSize: PARTS_IN_FLIGHT,
      leavePartsOnError: false,
    });
    try {
      await upload.done();
      return bytes;
    } catch (err: unknown) {
      body.destroy();
      counted.destroy();
      throw this.error('upload to', key, err);
    }
  }

  async putBytes(key: string, data: Buffer): Promise<void> {
    const objectKey = this.objectKey(key);
    try {
      await this.client.send(
        new PutObjectCommand({ Bucket: this.bucket, Key: objectKey, Body: data }),
      );
    } catch (err: unknown) {
      throw this.error('write of', key, err);
    }
  }

  async getStream(key: string): Promise<Readable> {
    const objectKey = this.objectKey(key);
    try {
      const answer = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: objectKey }),
      );
      if (!(answer.Body instanceof Readable))
        throw new OperatorError(
          ERROR_CODES.INTERNAL,
          `S3 read of ${key}: the SDK answered no Node stream`,
        );
      return answer.Body;
    } catch (err: unknown) {
      throw this.error('read of', key, err);
    }
  }

  async getBytes(key: string): Promise<Buffer | undefined> {
    const objectKey = this.objectKey(key);
    try {
      const answer = await this.client.send(
        new GetObjectCommand({ Bucket: this.bucket, Key: objectKey }),
      );
      if (answer.Body === undefined) return Buffer.alloc(0);
      return Buffer.from(await answer.Body.transformToByteArray());
    } catch (err: unknown) {
      const converted = this.error('read of', key, err);
      if (converted.code === ERROR_CODES.API_NOT_FOUND) return undefined;
      throw converted;
    }
  }

  async *list(prefix: string): AsyncIterable<StoredObject> {
    assertSafePrefix(prefix);
    let token: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListObjectsV2Command({
            Bucket: this.bucket,
            Prefix: `${this.prefix}${prefix}`,
            MaxKeys: this.listPageSize,
            ...(token === undefined ? {} : { ContinuationToken: token }),
          }),
        );
      } catch (err: unknown) {
        throw this.error('list of', prefix, err);
      }
      for (const { Key, Size, LastModified } of page.Contents ?? []) {
        if (Key === undefined || Size === undefined || LastModified === undefined)
          throw new OperatorError(
            ERROR_CODES.API_ERROR,
            `S3 list of s3://${this.bucket}/${this.prefix}${prefix}: an entry without key, size or time`,
          );
        yield { key: Key.slice(this.prefix.length), size: Size, lastModified: LastModified };
      }
      token = page.IsTruncated === true ? page.NextContinuationToken : undefined;
    } while (token !== undefined);
  }

  async delete(keys: readonly string[]): Promise<void> {
    const objectKeys = keys.map((key) => this.objectKey(key));
    for (let at = 0; at < objectKeys.length; at += DELETE_BATCH) {
      const batch = objectKeys.slice(at, at + DELETE_BATCH);
      let answer;
      try {
        answer = await this.client.send(
          new DeleteObjectsCommand({
            Bucket: this.bucket,
            Delete: { Objects: batch.map((Key) => ({ Key })), Quiet: true },
          }),
        );
      } catch (err: unknown) {
        throw this.error('delete in', batch[0]?.slice(this.prefix.length) ?? '', err);
      }
      // A missing key is not an error for DeleteObjects; anything reported here is.
      const failed = (answer.Errors ?? []).filter((error) => error.Code !== 'NoSuchKey');
      const first = failed[0];
      if (first !== undefined)
        throw new OperatorError(
          ERROR_CODES.API_ERROR,
          `S3 delete of ${failed.length} object(s) in s3://${this.bucket}/${this.prefix} failed; first ${first.Key ?? '?'}: ${first.Code ?? 'error'}`,
        );
    }
  }

  /**
   * Multipart uploads under `prefix` initiated before `before` and never
   * completed (the writer was killed before it could abort them): aborted,
   * which frees their parts. Paged like list().
   */
  async removeAbandonedWrites(prefix: string, before: Date): Promise<AbandonedWrite[]> {
    assertSafePrefix(prefix);
    const stale: { key: string; uploadId: string; at: Date }[] = [];
    let keyMarker: string | undefined;
    let uploadIdMarker: string | undefined;
    do {
      let page;
      try {
        page = await this.client.send(
          new ListMultipartUploadsCommand({
            Bucket: this.bucket,
            Prefix: `${this.prefix}${prefix}`,
            MaxUploads: this.listPageSize,
            ...(keyMarker === undefined ? {} : { KeyMarker: keyMarker }),
            ...(uploadIdMarker === undefined ? {} : { UploadIdMarker: uploadIdMarker }),
          }),
        );
      } catch (err: unknown) {
        throw this.error('list of multipart uploads in', prefix, err);
      }
      for (const { Key, UploadId, Initiated } of page.Uploads ?? []) {
        if (Key === undefined || UploadId === undefined || Initiated === undefined)
          throw new OperatorError(
            ERROR_CODES.API_ERROR,
            `S3 list of multipart uploads in s3://${this.bucket}/${this.prefix}${prefix}: an entry without key, upload id or time`,
          );
        if (Initiated.getTime() < before.getTime())
          stale.push({ key: Key.slice(this.prefix.length), uploadId: UploadId, at: Initiated });
      }
      const more = page.IsTruncated === true;
      keyMarker = more ? page.NextKeyMarker : undefined;
      uploadIdMarker = more ? page.NextUploadIdMarker : undefined;
    } while (keyMarker !== undefined);
    const removed: AbandonedWrite[] = [];
    for (const upload of stale) {
      try {
        await this.client.send(
          new AbortMultipartUploadCommand({
            Bucket: this.bucket,
            Key: this.objectKey(upload.key),
            UploadId: upload.uploadId,
          }),
        );
      } catch (err: unknown) {
        // Completed or aborted by its writer meanwhile: nothing left to remove.
        if (err instanceof S3ServiceException && err.name === 'NoSuchUpload') continue;
        throw this.error('abort of the multipart upload to', upload.key, err);
      }
      removed.push({ key: upload.key, at: upload.at });
    }
    return removed;
  }

  /** Closes the client's connections. */
  destroy(): void {
    this.client.destroy();
  }
}
