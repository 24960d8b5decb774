import {
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  hkdfSync,
  randomBytes,
  timingSafeEqual,
  type Hash,
} from 'node:crypto';
import { Transform, type TransformCallback } from 'node:stream';
import { ERROR_CODES, OperatorError } from '../errors.ts';
import { MAX_CHUNK_SIZE } from './manifest-schema.ts';
import type { BackupManifest } from './manifest.ts';

export { parseManifest } from './manifest-schema.ts';

// The encrypted form of a backup: the plaintext (pg_dump output) cut into
// chunks, each sealed on its own with AES-256-GCM, so that encryption and
// decryption stream with one chunk in memory whatever the database size, and
// a restore can say which chunk is bad.
//
// Stored object = frame 0, frame 1, ..., frame N-1; one frame per chunk:
//
//   offset  size  field
//   0       1     format version (1)
//   1       1     flags: bit 0 = final chunk; other bits must be 0
//   2       4     plaintext length L, big-endian (= chunk size except in the final chunk)
//   6       12    nonce
//   18      L     ciphertext
//   18+L    16    GCM tag
//
// The GCM additional data (authenticated, not stored) is
//   "tenant-operator.backup/v1" | tenantUid | backupId | chunk index | the 18 header bytes
// (strings length-prefixed, index big-endian), with the index the reader
// *expects* next. So a chunk fails authentication if a byte of it or of its
// header changed, if it was moved to another position or swapped with another
// chunk, if it comes from another backup or another tenant (even one
// encrypted with the same data key), or if the key is wrong. The final flag is
// authenticated too: cutting the object at a chunk boundary leaves a stream
// without an authenticated final chunk, which is reported as truncation;
// after the final chunk nothing may follow. The reader also checks the chunk
// count and the sha256 of the whole object against the (sealed) manifest.
// An empty plaintext is one empty final chunk, so even it cannot be cut away.
//
// Nonces are 12 random bytes per chunk, not a counter. A counter would be just
// as safe while every backup has its own data key, but random nonces stay safe
// even if a data key were ever used twice (a bug, a replayed Vault answer),
// where a counter would repeat (key, nonce) pairs and break GCM entirely. The
// usual bound for random 96-bit nonces, 2^32 messages per key, is 4 PiB of
// backup at 1 MiB chunks.
//
// The data key itself (from Vault Transit, 32 bytes) is not used directly:
// HKDF-SHA256 derives one key for the chunks and another for the manifest
// seal, so neither use can be turned against the other.

export interface EnvelopeBinding {
  tenantUid: string;
  backupId: string;
}

export const DEFAULT_CHUNK_SIZE = 1024 * 1024;

export interface EncryptionSummary {
  chunks: number;
  plaintextBytes: number;
  /** hex */
  plaintextSha256: string;
  ciphertextBytes: number;
  /** hex */
  ciphertextSha256: string;
}

const FORMAT_LABEL = 'tenant-operator.backup/v1';
const FRAME_VERSION = 1;
const FLAG_FINAL = 0x01;
const HEADER_BYTES = 18;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const DATA_KEY_BYTES = 32;
const CHUNK_KEY_INFO = 'tenant-operator.backup/v1 chunk encryption key';
const SEAL_KEY_INFO = 'tenant-operator.backup/v1 manifest seal key';

function invalid(message: string): OperatorError {
  return new OperatorError(ERROR_CODES.BACKUP_INVALID, message);
}

function deriveKey(dataKey: Buffer, info: string): Buffer {
  if (dataKey.length !== DATA_KEY_BYTES)
    throw invalid(`the data key is ${dataKey.length} bytes; AES-256 needs ${DATA_KEY_BYTES}`);
  return Buffer.from(hkdfSync('sha256', dataKey, Buffer.alloc(0), info, DATA_KEY_BYTES));
}

function checkChunkSize(chunkSize: number): void {
  if (!Number.isInteger(chunkSize) || chunkSize < 1 || chunkSize > MAX_CHUNK_SIZE)
    throw invalid(`chunk size ${chunkSize} is not between 1 and ${MAX_CHUNK_SIZE} bytes`);
}

function lengthPrefixed(value: string): Buffer {
  const bytes = Buffer.from(value, 'utf8');
  const length = Buffer.alloc(4);
  length.writeUInt32BE(bytes.length);
  return Buffer.concat([length, bytes]);
}

/** The part of the additional data that is the same for every chunk of one backup. */
function bindingPrefix(binding: EnvelopeBinding): Buffer {
  if (binding.tenantUid === '' || binding.backupId === '')
    throw invalid('a backup needs both a tenant uid and a backup id to be bound to');
  return Buffer.concat([
    lengthPrefixed(FORMAT_LABEL),
    lengthPrefixed(binding.tenantUid),
    lengthPrefixed(binding.backupId),
  ]);
}

function additionalData(prefix: Buffer, index: number, header: Buffer): Buffer {
  const position = Buffer.alloc(4);
  position.writeUInt32BE(index);
  return Buffer.concat([prefix, position, header]);
}

/** Buffers handed in by a stream, taken out again in pieces of a chosen size. */
class ByteQueue {
  private readonly parts: Buffer[] = [];
  length = 0;

  push(part: Buffer): void {
    if (part.length === 0) return;
    this.parts.push(part);
    this.length += part.length;
  }

  /** The first `count` bytes (count <= length), removed from the queue. */
  take(count: number): Buffer {
    const out = Buffer.allocUnsafe(count);
    let filled = 0;
    while (filled < count) {
      const part = this.parts[0] as Buffer;
      const used = Math.min(part.length, count - filled);
      part.copy(out, filled, 0, used);
      filled += used;
      if (used === part.length) this.parts.shift();
      else this.parts[0] = part.subarray(used);
    }
    this.length -= count;
    return out;
  }

  /** The first `count` bytes without removing them. */
  peek(count: number): Buffer {
    const first = this.parts[0];
    if (first !== undefined && first.length >= count) return first.subarray(0, count);
    const copy = this.take(count);
    this.parts.unshift(copy);
    this.length += count;
    return copy;
  }
}

/** Transform: plaintext in, stored bytes out. summary() is valid after the stream ended. */
export function encryptingStream(
  dataKey: Buffer,
  binding: EnvelopeBinding,
  chunkSize: number = DEFAULT_CHUNK_SIZE,
): { stream: Transform; summary: () => EncryptionSummary } {
  checkChunkSize(chunkSize);
  const key = deriveKey(dataKey, CHUNK_KEY_INFO);
  const prefix = bindingPrefix(binding);
  // One buffer for the chunk being filled, reused for every chunk: the only
  // allocation per chunk is the ciphertext handed downstream, so the garbage
  // collector keeps up and memory stays flat.
  const chunk = Buffer.alloc(chunkSize);
  let filled = 0;
  const plaintextHash = createHash('sha256');
  const ciphertextHash = createHash('sha256');
  let chunks = 0;
  let plaintextBytes = 0;
  let ciphertextBytes = 0;
  let ended = false;

  const emit = (stream: Transform, plaintext: Buffer, final: boolean): void => {
    const header = Buffer.alloc(HEADER_BYTES);
    header.writeUInt8(FRAME_VERSION, 0);
    header.writeUInt8(final ? FLAG_FINAL : 0, 1);
    header.writeUInt32BE(plaintext.length, 2);
    randomBytes(NONCE_BYTES).copy(header, 6);
    const cipher = createCipheriv('aes-256-gcm', key, header.subarray(6), {
      authTagLength: TAG_BYTES,
    });
    cipher.setAAD(additionalData(prefix, chunks, header));
    const body = cipher.update(plaintext);
    cipher.final();
    for (const piece of [header, body, cipher.getAuthTag()]) {
      ciphertextHash.update(piece);
      ciphertextBytes += piece.length;
      stream.push(piece);
    }
    plaintextHash.update(plaintext);
    plaintextBytes += plaintext.length;
    chunks += 1;
  };

  const stream = new Transform({
    transform(data: Buffer, _encoding, done: TransformCallback) {
      let at = 0;
      while (at < data.length) {
        // A full chunk goes out only once a byte after it has arrived: until
        // then it might be the final one, and the final flag is sealed with it.
        if (filled === chunkSize) {
          emit(this, chunk, false);
          filled = 0;
        }
        const copied = data.copy(chunk, filled, at);
        filled += copied;
        at += copied;
      }
      done();
    },
    destroy(err: Error | null, done: (err: Error | null) => void) {
      key.fill(0);
      chunk.fill(0);
      done(err);
    },
    flush(done: TransformCallback) {
      emit(this, chunk.subarray(0, filled), true);
      ended = true;
      key.fill(0);
      chunk.fill(0);
      done();
    },
  });

  return {
    stream,
    summary: (): EncryptionSummary => {
      if (!ended)
        throw new OperatorError(
          ERROR_CODES.INTERNAL,
          'encryption summary asked for before the stream ended',
        );
      return {
        chunks,
        plaintextBytes,
        plaintextSha256: digestOnce(plaintextHash),
        ciphertextBytes,
        ciphertextSha256: digestOnce(ciphertextHash),
      };
    },
  };
}

/** A Hash can be digested once; summary() may be called more often. */
const digests = new WeakMap<Hash, string>();
function digestOnce(hash: Hash): string {
  let hex = digests.get(hash);
  if (hex === undefined) {
    hex = hash.digest('hex');
    digests.set(hash, hex);
  }
  return hex;
}

/**
 * Transform: stored bytes in, plaintext out; fails (BACKUP_INVALID) on any
 * tampering. Each chunk is authenticated before its plaintext is passed on,
 * but a cut-off object or a wrong total is known only at the end: the
 * consumer must treat the stream's error as the verdict on everything it
 * received (restore in one transaction, or check in a first pass).
 */
export function decryptingStream(
  dataKey: Buffer,
  binding: EnvelopeBinding,
  expect: { chunkSize: number; chunks: number; plaintextSha256: string; ciphertextSha256: string },
): Transform {
  checkChunkSize(expect.chunkSize);
  const key = deriveKey(dataKey, CHUNK_KEY_INFO);
  const prefix = bindingPrefix(binding);
  const pending = new ByteQueue();
  const plaintextHash = createHash('sha256');
  const ciphertextHash = createHash('sha256');
  let index = 0;
  let finalSeen = false;

  /** The next whole frame as plaintext; undefined while more bytes are needed. */
  const nextChunk = (): Buffer | undefined => {
    if (pending.length < HEADER_BYTES) return undefined;
    const header = Buffer.from(pending.peek(HEADER_BYTES));
    const version = header.readUInt8(0);
    if (version !== FRAME_VERSION)
      throw invalid(
        `chunk ${index} has an unknown format version ${version} (altered or not a backup)`,
      );
    const flags = header.readUInt8(1);
    if ((flags & ~FLAG_FINAL) !== 0)
      throw invalid(`chunk ${index} has unknown flags ${flags} (altered or not a backup)`);
    const length = header.readUInt32BE(2);
    if (length > expect.chunkSize)
      throw invalid(
        `chunk ${index} claims ${length} bytes, more than the manifest's chunk size ${expect.chunkSize} (altered)`,
      );
    if (pending.length < HEADER_BYTES + length + TAG_BYTES) return undefined;
    const frame = pending.take(HEADER_BYTES + length + TAG_BYTES);
    ciphertextHash.update(frame);
    const decipher = createDecipheriv('aes-256-gcm', key, header.subarray(6), {
      authTagLength: TAG_BYTES,
    });
    decipher.setAAD(additionalData(prefix, index, header));
    decipher.setAuthTag(frame.subarray(HEADER_BYTES + length));
    const plaintext = decipher.update(frame.subarray(HEADER_BYTES, HEADER_BYTES + length));
    try {
      decipher.final();
    } catch {
      throw invalid(
        `chunk ${index} failed authentication (altered, swapped, from another backup or tenant, or the wrong data key)`,
      );
    }
    const final = (flags & FLAG_FINAL) !== 0;
    if (!final && length !== expect.chunkSize)
      throw invalid(
        `chunk ${index} has ${length} bytes, not the manifest's chunk size ${expect.chunkSize}`,
      );
    if (final && index + 1 !== expect.chunks)
      throw invalid(`the backup has ${index + 1} chunks, the manifest says ${expect.chunks}`);
    if (!final && index + 1 >= expect.chunks)
      throw invalid(`the backup has more chunks than the manifest's ${expect.chunks}`);
    finalSeen = final;
    index += 1;
    plaintextHash.update(plaintext);
    return plaintext;
  };

  return new Transform({
    transform(data: Buffer, _encoding, done: TransformCallback) {
      try {
        if (finalSeen && data.length > 0)
          throw invalid('the backup has extra bytes after its final chunk');
        pending.push(data);
        for (let chunk = nextChunk(); chunk !== undefined; chunk = nextChunk()) {
          this.push(chunk);
          if (finalSeen && pending.length > 0)
            throw invalid('the backup has extra bytes after its final chunk');
        }
        done();
      } catch (err: unknown) {
        done(err as Error);
      }
    },
    destroy(err: Error | null, done: (err: Error | null) => void) {
      key.fill(0);
      done(err);
    },
    flush(done: TransformCallback) {
      key.fill(0);
      if (!finalSeen) {
        const cut =
          pending.length > 0 ? ` (it ends ${pending.length} bytes into chunk ${index})` : '';
        done(invalid(`backup is truncated: ${index} of ${expect.chunks} chunks${cut}`));
        return;
      }
      if (ciphertextHash.digest('hex') !== expect.ciphertextSha256) {
        done(invalid('the backup ciphertext sha256 differs from the manifest'));
        return;
      }
      if (plaintextHash.digest('hex') !== expect.plaintextSha256) {
        done(invalid('the backup plaintext sha256 differs from the manifest'));
        return;
      }
      done();
    },
  });
}

/**
 * The manifest as one exact byte string: keys sorted at every level, no
 * whitespace, `seal` left out. JSON.stringify is deterministic for the
 * strings, numbers and booleans a manifest holds.
 */
function canonicalJson(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value as Record<string, unknown>)
      .filter(([, field]) => field !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([name, field]) => `${JSON.stringify(name)}:${canonicalJson(field)}`).join(',')}}`;
  }
  return JSON.stringify(value);
}

function computeSeal(manifest: BackupManifest, dataKey: Buffer): Buffer {
  const sealed: Partial<BackupManifest> = { ...manifest };
  delete sealed.seal;
  const key = deriveKey(dataKey, SEAL_KEY_INFO);
  const mac = createHmac('sha256', key).update(canonicalJson(sealed), 'utf8').digest();
  key.fill(0);
  return mac;
}

/** A copy of `manifest` with `seal` set (any previous seal replaced). */
export function sealManifest(manifest: BackupManifest, dataKey: Buffer): BackupManifest {
  return { ...manifest, seal: computeSeal(manifest, dataKey).toString('hex') };
}

/** Throws BACKUP_INVALID unless `manifest.seal` was made with this data key over exactly these fields. */
export function verifyManifestSeal(manifest: BackupManifest, dataKey: Buffer): void {
  if (manifest.seal === undefined) throw invalid('the backup manifest is not sealed');
  const expected = computeSeal(manifest, dataKey);
  const stored = Buffer.from(manifest.seal, 'hex');
  if (stored.length !== expected.length || !timingSafeEqual(stored, expected))
    throw invalid(
      'the backup manifest seal does not match (the manifest was altered, or the data key is wrong)',
    );
}
