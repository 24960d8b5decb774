import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { ERROR_CODES, OperatorError } from '../errors.ts';

// The server is given a SCRAM-SHA-256 verifier, never the password itself
// (as psql's \password does): the password then cannot show up in the
// server's statement log, pg_stat_activity or an error report. Comparing a
// password with the stored verifier also lets a resync leave a correct role
// untouched.

const ITERATIONS = 4096; // PostgreSQL's default scram_iterations
const SALT_BYTES = 16;
const VERIFIER = /^SCRAM-SHA-256\$(\d+):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/;

// The server SASLprep-normalises passwords before hashing; for printable
// ASCII that is the identity, so only such passwords are accepted here.
const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;

export function scramSha256Verifier(password: string, salt = randomBytes(SALT_BYTES)): string {
  const { storedKey, serverKey } = keys(password, salt, ITERATIONS);
  return `SCRAM-SHA-256$${ITERATIONS}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** Whether `verifier` (as stored in pg_authid) accepts `password`. */
export function verifierAccepts(verifier: string, password: string): boolean {
  const match = VERIFIER.exec(verifier);
  if (!match) return false;
  const [, iterations, salt, storedKey, serverKey] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
  ];
  const expected = keys(password, Buffer.from(salt, 'base64'), Number(iterations));
  return (
    safeEqual(expected.storedKey, Buffer.from(storedKey, 'base64')) &&
    safeEqual(expected.serverKey, Buffer.from(serverKey, 'base64'))
  );
}

function keys(password: string, salt: Buffer, iterations: number) {
  if (!PRINTABLE_ASCII.test(password)) {
    throw new OperatorError(
      ERROR_CODES.INVALID_SPEC,
      'a database password must be printable ASCII (as generatePassword makes them)',
    );
  }
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  return {
    storedKey: createHash('sha256').update(clientKey).digest(),
    serverKey: createHmac('sha256', salted).update('Server Key').digest(),
  };
}

function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
