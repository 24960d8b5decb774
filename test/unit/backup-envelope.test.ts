import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import { test } from 'node:test';
import {
  DEFAULT_CHUNK_SIZE,
  decryptingStream,
  encryptingStream,
  parseManifest,
  sealManifest,
  verifyManifestSeal,
  type EncryptionSummary,
  type EnvelopeBinding,
} from '../../src/backup/envelope.ts';
import { MANIFEST_FORMAT, type BackupManifest } from '../../src/backup/manifest.ts';
import { ERROR_CODES, OperatorError } from '../../src/errors.ts';

// The backup envelope: chunked AES-256-GCM bound to one tenant and one backup,
// and the sealed manifest beside it. Every way of tampering with stored bytes
// that a restore could meet must fail with an error that says what happened.

const KEY = randomBytes(32);
const BINDING: EnvelopeBinding = {
  tenantUid: '5b1f0c2e-7d4a-4c52-9a53-2f0e8a7b6c11',
  backupId: '20261123T020304Z-a1b2c3',
};
const CHUNK = 64;
/** Stored frame = 18 header bytes + plaintext + 16 tag bytes. */
const FRAME = 18 + CHUNK + 16;

interface Encrypted {
  stored: Buffer;
  summary: EncryptionSummary;
}

async function collect(stream: Readable): Promise<Buffer> {
  const parts: Buffer[] = [];
  for await (const part of stream) parts.push(part as Buffer);
  return Buffer.concat(parts);
}

/** Input fed in odd-sized pieces, so chunking does not depend on how writes are cut. */
function pieces(data: Buffer, size = 7): Readable {
  const parts: Buffer[] = [];
  for (let at = 0; at < data.length; at += size) parts.push(data.subarray(at, at + size));
  return Readable.from(parts);
}

async function encrypt(
  plaintext: Buffer,
  binding: EnvelopeBinding = BINDING,
  key: Buffer = KEY,
): Promise<Encrypted> {
  const { stream, summary } = encryptingStream(key, binding, CHUNK);
  const stored = await collect(pieces(plaintext).pipe(stream));
  return { stored, summary: summary() };
}

async function decrypt(
  stored: Buffer,
  summary: EncryptionSummary,
  options: { key?: Buffer; binding?: EnvelopeBinding } = {},
): Promise<Buffer> {
  const stream = decryptingStream(options.key ?? KEY, options.binding ?? BINDING, {
    chunkSize: CHUNK,
    chunks: summary.chunks,
    plaintextSha256: summary.plaintextSha256,
    ciphertextSha256: summary.ciphertextSha256,
  });
  const parts: Buffer[] = [];
  await pipeline(pieces(stored, 13), stream, async (source: AsyncIterable<Buffer>) => {
    for await (const part of source) parts.push(part);
  });
  return Buffer.concat(parts);
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}

async function assertInvalid(promise: Promise<unknown>, message: RegExp): Promise<void> {
  await assert.rejects(promise, (err: unknown) => {
    assert.ok(err instanceof OperatorError, `expected an OperatorError, got ${String(err)}`);
    assert.equal(err.code, ERROR_CODES.BACKUP_INVALID);
    assert.match(err.message, message);
    assert.ok(!err.message.includes(KEY.toString('hex')));
    assert.ok(!err.message.includes(KEY.toString('base64')));
    return true;
  });
}

function frames(stored: Buffer): Buffer[] {
  const out: Buffer[] = [];
  let at = 0;
  while (at < stored.length) {
    const length = stored.readUInt32BE(at + 2);
    out.push(stored.subarray(at, at + 18 + length + 16));
    at += 18 + length + 16;
  }
  return out;
}

function flipped(data: Buffer, at: number): Buffer {
  const copy = Buffer.from(data);
  copy[at] = (copy[at] as number) ^ 0x01;
  return copy;
}

test('round trips of empty, 1-byte, one-chunk and multi-chunk inputs', async () => {
  const cases: [string, number, number][] = [
    ['empty', 0, 1],
    ['1 byte', 1, 1],
    ['exactly one chunk', CHUNK, 1],
    ['one chunk and a byte', CHUNK + 1, 2],
    ['seven chunks, the last short', CHUNK * 6 + 5, 7],
    ['exactly three chunks', CHUNK * 3, 3],
  ];
  for (const [name, size, chunks] of cases) {
    const plaintext = randomBytes(size);
    const { stored, summary } = await encrypt(plaintext);
    const lastLength = size === 0 ? 0 : size - (chunks - 1) * CHUNK;
    assert.equal(summary.chunks, chunks, name);
    assert.equal(stored.length, (chunks - 1) * FRAME + 18 + lastLength + 16, name);
    assert.deepEqual(summary, {
      chunks,
      plaintextBytes: size,
      plaintextSha256: sha256(plaintext),
      ciphertextBytes: stored.length,
      ciphertextSha256: sha256(stored),
    });
    assert.deepEqual(await decrypt(stored, summary), plaintext, name);
    if (size >= 16)
      assert.ok(!stored.includes(plaintext.subarray(0, 16)), `${name}: no plaintext stored`);
  }
  assert.equal(DEFAULT_CHUNK_SIZE, 1024 * 1024);
});

test('the same plaintext encrypts differently every time (fresh nonces)', async () => {
  const plaintext = Buffer.alloc(CHUNK * 2, 'a');
  const one = await encrypt(plaintext);
  const two = await encrypt(plaintext);
  assert.notDeepEqual(one.stored, two.stored);
  const [first, second] = frames(one.stored);
  assert.notDeepEqual(first?.subarray(18, 18 + CHUNK), second?.subarray(18, 18 + CHUNK));
});

test('a flipped byte in a chunk body, its tag or its nonce fails authentication of that chunk', async () => {
  const { stored, summary } = await encrypt(randomBytes(CHUNK * 6 + 5));
  const chunk3 = 3 * FRAME;
  for (const offset of [18 + 10, 18 + CHUNK + 3, 6 + 2]) {
    await assertInvalid(
      decrypt(flipped(stored, chunk3 + offset), summary),
      /^chunk 3 failed authentication \(altered, swapped, from another backup or tenant, or the wrong data key\)$/,
    );
  }
});

test('a flipped byte in a chunk header is refused', async () => {
  const { stored, summary } = await encrypt(randomBytes(CHUNK * 6 + 5));
  const chunk2 = 2 * FRAME;
  await assertInvalid(
    decrypt(flipped(stored, chunk2), summary),
    /^chunk 2 has an unknown format version 0/,
  );
  // The final flag is authenticated: a middle chunk cannot be declared the last.
  await assertInvalid(
    decrypt(flipped(stored, chunk2 + 1), summary),
    /^chunk 2 failed authentication/,
  );
  const otherFlag = Buffer.from(stored);
  otherFlag[chunk2 + 1] = 0x80;
  await assertInvalid(decrypt(otherFlag, summary), /^chunk 2 has unknown flags 128/);
  // Length: one more byte than the chunk size, and one less (frames then misalign).
  await assertInvalid(
    decrypt(flipped(stored, chunk2 + 5), summary),
    /^chunk 2 claims 65 bytes, more than the manifest's chunk size 64/,
  );
  const shorter = Buffer.from(stored);
  shorter.writeUInt32BE(CHUNK - 1, chunk2 + 2);
  await assertInvalid(decrypt(shorter, summary), /^chunk 2 failed authentication/);
});

test('truncation is detected: a dropped last chunk, a cut mid-chunk, nothing at all', async () => {
  const { stored, summary } = await encrypt(randomBytes(CHUNK * 6 + 5));
  assert.equal(summary.chunks, 7);
  await assertInvalid(
    decrypt(stored.subarray(0, 6 * FRAME), summary),
    /^backup is truncated: 6 of 7 chunks$/,
  );
  await assertInvalid(
    decrypt(stored.subarray(0, 4 * FRAME), summary),
    /^backup is truncated: 4 of 7 chunks$/,
  );
  await assertInvalid(
    decrypt(stored.subarray(0, 4 * FRAME + 30), summary),
    /^backup is truncated: 4 of 7 chunks \(it ends 30 bytes into chunk 4\)$/,
  );
  await assertInvalid(decrypt(Buffer.alloc(0), summary), /^backup is truncated: 0 of 7 chunks$/);
  // An empty backup is one empty final chunk: even it cannot be cut away unnoticed.
  const empty = await encrypt(Buffer.alloc(0));
  await assertInvalid(
    decrypt(Buffer.alloc(0), empty.summary),
    /^backup is truncated: 0 of 1 chunks$/,
  );
});

test('swapped or repeated chunks fail authentication at the first misplaced one', async () => {
  const { stored, summary } = await encrypt(randomBytes(CHUNK * 6 + 5));
  const parts = frames(stored);
  const swapped = [...parts];
  [swapped[2], swapped[4]] = [parts[4] as Buffer, parts[2] as Buffer];
  await assertInvalid(decrypt(Buffer.concat(swapped), summary), /^chunk 2 failed authentication/);
  const repeated = [...parts];
  repeated[5] = parts[1] as Buffer;
  await assertInvalid(decrypt(Buffer.concat(repeated), summary), /^chunk 5 failed authentication/);
});

test('a chunk from another backup or another tenant fails, even under the same data key', async () => {
  const plaintext = randomBytes(CHUNK * 4);
  const mine = await encrypt(plaintext);
  const otherBackup = await encrypt(plaintext, { ...BINDING, backupId: '20261124T020304Z-ffffff' });
  const otherTenant = await encrypt(plaintext, {
    ...BINDING,
    tenantUid: '0e9a3a4c-1111-4c52-9a53-2f0e8a7b6c11',
  });
  for (const other of [otherBackup, otherTenant]) {
    const spliced = frames(mine.stored);
    spliced[1] = frames(other.stored)[1] as Buffer;
    await assertInvalid(
      decrypt(Buffer.concat(spliced), mine.summary),
      /^chunk 1 failed authentication/,
    );
  }
  // A whole object presented as another backup's (a manifest pointing at someone else's data).
  await assertInvalid(
    decrypt(otherTenant.stored, otherTenant.summary, { binding: BINDING }),
    /^chunk 0 failed authentication/,
  );
});

test('the wrong data key fails at the first chunk; a key of the wrong size is refused', async () => {
  const { stored, summary } = await encrypt(randomBytes(CHUNK * 2));
  await assertInvalid(
    decrypt(stored, summary, { key: randomBytes(32) }),
    /^chunk 0 failed authentication/,
  );
  assert.throws(
    () => encryptingStream(randomBytes(16), BINDING, CHUNK),
    (err: unknown) =>
      err instanceof OperatorError &&
      /the data key is 16 bytes; AES-256 needs 32/.test(err.message),
  );
});

test('extra bytes after the final chunk are refused', async () => {
  const { stored, summary } = await encrypt(randomBytes(CHUNK * 2 + 3));
  await assertInvalid(
    decrypt(Buffer.concat([stored, Buffer.from([0])]), summary),
    /^the backup has extra bytes after its final chunk$/,
  );
  // A whole valid frame appended from the same backup is still refused.
  const again = Buffer.concat([stored, frames(stored)[2] as Buffer]);
  await assertInvalid(
    decrypt(again, summary),
    /^the backup has extra bytes after its final chunk$/,
  );
});

test('the chunk count and both sha256 sums are checked against the manifest', async () => {
  const plaintext = randomBytes(CHUNK * 2 + 3);
  const { stored, summary } = await encrypt(plaintext);
  await assertInvalid(
    decrypt(stored, { ...summary, chunks: 4 }),
    /^the backup has 3 chunks, the manifest says 4$/,
  );
  await assertInvalid(
    decrypt(stored, { ...summary, chunks: 2 }),
    /^the backup has more chunks than the manifest's 2$/,
  );
  await assertInvalid(
    decrypt(stored, { ...summary, ciphertextSha256: sha256(Buffer.from('other')) }),
    /^the backup ciphertext sha256 differs from the manifest$/,
  );
  await assertInvalid(
    decrypt(stored, { ...summary, plaintextSha256: sha256(Buffer.from('other')) }),
    /^the backup plaintext sha256 differs from the manifest$/,
  );
});

function manifest(): BackupManifest {
  return {
    format: MANIFEST_FORMAT,
    tenant: 'acme',
    tenantUid: BINDING.tenantUid,
    backupId: BINDING.backupId,
    time: '2026-11-23T02:03:04.000Z',
    database: { server: 'pg-eu', name: 't_acme' },
    pgDumpVersion: 'pg_dump (PostgreSQL) 15.10',
    encryption: {
      algorithm: 'AES-256-GCM',
      chunkSize: DEFAULT_CHUNK_SIZE,
      chunks: 3,
      wrappedKey: 'vault:v2:c2VjcmV0LWJ1dC13cmFwcGVk',
      transitKey: 'tenant-acme',
      keyVersion: 2,
    },
    data: {
      key: `tenants/acme/${BINDING.tenantUid}/${BINDING.backupId}/data`,
      bytes: 3_000_102,
      sha256: 'a'.repeat(64),
      plaintextBytes: 3_000_000,
      plaintextSha256: 'b'.repeat(64),
    },
    tables: [
      { table: 'public.orders', rows: 12 },
      { table: 'public.customers', rows: 3 },
    ],
  };
}

test('a sealed manifest survives JSON in any key order; any changed field or another key fails', () => {
  const sealed = sealManifest(manifest(), KEY);
  assert.match(sealed.seal ?? '', /^[0-9a-f]{64}$/);
  assert.equal(manifest().seal, undefined, 'sealManifest returns a copy');
  const stored = Buffer.from(JSON.stringify(sealed, null, 2));
  verifyManifestSeal(parseManifest(stored), KEY);
  // The seal is over canonical JSON: key order in the file does not matter.
  const { format, ...rest } = sealed;
  verifyManifestSeal(parseManifest(Buffer.from(JSON.stringify({ ...rest, format }))), KEY);
  // Sealing again replaces the seal rather than sealing the old one.
  assert.equal(sealManifest(sealed, KEY).seal, sealed.seal);

  const changes: [string, (m: BackupManifest) => BackupManifest][] = [
    ['tenantUid', (m) => ({ ...m, tenantUid: '0e9a3a4c-1111-4c52-9a53-2f0e8a7b6c11' })],
    ['data.key', (m) => ({ ...m, data: { ...m.data, key: 'tenants/other/x/y/data' } })],
    ['data.sha256', (m) => ({ ...m, data: { ...m.data, sha256: 'c'.repeat(64) } })],
    ['encryption.chunks', (m) => ({ ...m, encryption: { ...m.encryption, chunks: 2 } })],
    [
      'tables[0].rows',
      (m) => ({ ...m, tables: [{ table: 'public.orders', rows: 13 }, ...m.tables.slice(1)] }),
    ],
    ['tables order', (m) => ({ ...m, tables: [...m.tables].reverse() })],
  ];
  for (const [name, change] of changes) {
    assert.throws(
      () => verifyManifestSeal(change(sealed), KEY),
      (err: unknown) =>
        err instanceof OperatorError &&
        err.code === ERROR_CODES.BACKUP_INVALID &&
        /^the backup manifest seal does not match/.test(err.message),
      name,
    );
  }
  assert.throws(
    () => verifyManifestSeal(sealed, randomBytes(32)),
    /the backup manifest seal does not match/,
  );
  assert.throws(() => verifyManifestSeal(manifest(), KEY), /the backup manifest is not sealed/);
  assert.throws(
    () => verifyManifestSeal({ ...sealed, seal: 'f'.repeat(64) }, KEY),
    /seal does not match/,
  );
  assert.throws(() => verifyManifestSeal({ ...sealed, seal: 'ff' }, KEY), /seal does not match/);
});

test('parseManifest refuses bad shapes and names the field', () => {
  const good = sealManifest(manifest(), KEY);
  const bad: [string, unknown, RegExp][] = [
    ['not JSON', '{', /^backup manifest is not valid JSON$/],
    ['array', [], /^backup manifest field \(root\) is invalid/],
    ['format', { ...good, format: 'v0' }, /^backup manifest field format is invalid/],
    ['backupId', { ...good, backupId: '../../x' }, /^backup manifest field backupId is invalid/],
    ['time', { ...good, time: 'yesterday' }, /^backup manifest field time is invalid/],
    [
      'chunkSize too large',
      { ...good, encryption: { ...good.encryption, chunkSize: 1024 ** 3 } },
      /^backup manifest field encryption\.chunkSize is invalid/,
    ],
    [
      'chunks missing',
      { ...good, encryption: { ...good.encryption, chunks: undefined } },
      /^backup manifest field encryption\.chunks is invalid/,
    ],
    [
      'wrappedKey',
      { ...good, encryption: { ...good.encryption, wrappedKey: 'plain' } },
      /^backup manifest field encryption\.wrappedKey is invalid/,
    ],
    [
      'data.sha256',
      { ...good, data: { ...good.data, sha256: 'XYZ' } },
      /^backup manifest field data\.sha256 is invalid/,
    ],
    [
      'tables row count',
      { ...good, tables: [{ table: 'public.t', rows: -1 }] },
      /^backup manifest field tables\.0\.rows is invalid/,
    ],
    ['unknown field', { ...good, extra: 1 }, /^backup manifest field \(root\) is invalid: .*extra/],
    ['seal', { ...good, seal: 42 }, /^backup manifest field seal is invalid/],
  ];
  for (const [name, value, message] of bad) {
    const bytes = Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));
    assert.throws(
      () => parseManifest(bytes),
      (err: unknown) =>
        err instanceof OperatorError &&
        err.code === ERROR_CODES.BACKUP_INVALID &&
        message.test(err.message),
      name,
    );
  }
  assert.deepEqual(parseManifest(Buffer.from(JSON.stringify(good))), good);
});

// The bound is 128 MiB, not less: V8 frees the ciphertext buffers handed
// downstream (1 MiB each) only when a collection runs, which it lets wait
// until some 64 MiB of such garbage has piled up. Measured growth is 67, 79
// and 86 MiB for 64 MiB, 256 MiB and 1 GiB of input (flat), while an
// implementation that buffered the input (or its output) would grow by at
// least the 256 MiB pushed through here.
test('encryption memory stays flat: 256 MiB through the stream grows RSS by far less than that', async () => {
  const total = 256 * 1024 * 1024;
  const piece = randomBytes(64 * 1024);
  let produced = 0;
  const source = new Readable({
    read() {
      if (produced >= total) {
        this.push(null);
        return;
      }
      produced += piece.length;
      this.push(piece);
    },
  });
  const { stream, summary } = encryptingStream(KEY, BINDING);
  let stored = 0;
  let peak = 0;
  const sink = new Writable({
    write(chunk: Buffer, _encoding, done) {
      stored += chunk.length;
      peak = Math.max(peak, process.memoryUsage.rss());
      done();
    },
  });
  const before = process.memoryUsage.rss();
  await pipeline(source, stream, sink);
  const growth = peak - before;
  assert.equal(summary().plaintextBytes, total);
  assert.equal(summary().chunks, 256);
  assert.equal(stored, total + 256 * (18 + 16));
  assert.ok(growth < 128 * 1024 * 1024, `RSS grew by ${Math.round(growth / 1024 / 1024)} MiB`);
});
