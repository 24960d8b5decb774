import { createHash, createHmac, pbkdf2, randomBytes, timingSafeEqual } from 'node:crypto';
import { promisify } from 'node:util';
import { ERROR_CODES, OperatorError } from '../errors.ts';

// The server is given a SCRAM-SHA-256 verifier, never the password itself
// (as psql's \password does): the password then cannot show up in the
// server's statement log, pg_stat_activity or an error report. Comparing a
// password with the stored verifier also lets a resync leave a correct role
// untouched.
//
// A stored verifier is input from the server, and a login role may set its
// own (ALTER ROLE ... PASSWORD needs no privilege for oneself). Its iteration
// count decides how long PBKDF2 runs, so a hostile count would stall the
// operator: counts above MAX_VERIFY_ITERATIONS are not hashed at all (such a
// verifier is drift, replaced by one of ours), and hashing runs on libuv's
// thread pool, never on the event loop.

const ITERATIONS = 4096; // PostgreSQL's default scram_iterations
/** node-postgres refuses to log in above this count by default; neither do we hash more. */
export const MAX_VERIFY_ITERATIONS = 100_000;
/** Far more than a real verifier (~130 characters); the regex never scans a huge value. */
const MAX_VERIFIER_LENGTH = 1_024;
const SALT_BYTES = 16;
const VERIFIER =
  /^SCRAM-SHA-256\$(\d{1,10}):([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+):([A-Za-z0-9+/=]+)$/;

// The server SASLprep-normalises passwords before hashing; for printable
// ASCII that is the identity, so only such passwords are accepted here.
const PRINTABLE_ASCII = /^[\x20-\x7e]+$/;

const pbkdf2Async = promisify(pbkdf2);

/** The pieces of a SCRAM-SHA-256 verifier, or undefined when it is not one we would hash. */
export interface ParsedVerifier {
  iterations: number;
  salt: Buffer;
  storedKey: Buffer;
  serverKey: Buffer;
}

export async function scramSha256Verifier(
  password: string,
  salt = randomBytes(SALT_BYTES),
): Promise<string> {
  const { storedKey, serverKey } = await keys(password, salt, ITERATIONS);
  return `SCRAM-SHA-256$${ITERATIONS}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/**
 * Parses a stored verifier. undefined for anything that is not SCRAM-SHA-256
 * (md5, plain text, garbage) and for an iteration count of 0 or above
 * MAX_VERIFY_ITERATIONS: the caller treats all of them as drift.
 */
export function parseVerifier(verifier: string): ParsedVerifier | undefined {
  if (verifier.length > MAX_VERIFIER_LENGTH) return undefined;
  const match = VERIFIER.exec(verifier);
  if (!match) return undefined;
  const [, iterations, salt, storedKey, serverKey] = match as unknown as [
    string,
    string,
    string,
    string,
    string,
  ];
  const count = Number(iterations);
  if (!Number.isSafeInteger(count) || count < 1 || count > MAX_VERIFY_ITERATIONS) return undefined;
  return {
    iterations: count,
    salt: Buffer.from(salt, 'base64'),
    storedKey: Buffer.from(storedKey, 'base64'),
    serverKey: Buffer.from(serverKey, 'base64'),
  };
}

/** Whether `verifier` (as stored in pg_authid) accepts `password`; false, unhashed, for one we refuse to parse. */
export async function verifierAccepts(verifier: string, password: string): Promise<boolean> {
  const parsed = parseVerifier(verifier);
  if (!parsed) return false;
  const expected = await keys(password, parsed.salt, parsed.iterations);
  return (
    safeEqual(expected.storedKey, parsed.storedKey) &&
    safeEqual(expected.serverKey, parsed.serverKey)
  );
}

async function keys(password: string, salt: Buffer, iterations: number) {
  if (!PRINTABLE_ASCII.test(password)) {
    throw new OperatorError(
      ERROR_CODES.INVALID_SPEC,
      'a database password must be printable ASCII (as generatePassword makes them)',
    );
  }
  const salted = await pbkdf2Async(password, salt, iterations, 32, 'sha256');
  const clientKey = createHmac('sha256', salted).update('Client Key').digest();
  return {
    storedKey: createHash('sha256').update(clientKey).digest(),
    serverKey: createHmac('sha256', salted).update('Server Key').digest(),
  };
}

function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
