import { createHash } from 'node:crypto';
import { ERROR_CODES, OperatorError } from '../errors.ts';

// A tenant name becomes the SQL names of its database and roles, and any SQL
// text that cannot take a bind parameter is quoted here. PostgreSQL cuts
// identifiers to 63 bytes without a word, so two long names sharing a prefix
// would silently land on the same role: every name is made to fit first, with
// a hash of the whole tenant name wherever characters were lost.

export const MAX_IDENTIFIER_BYTES = 63;

export interface DatabaseIdentifiers {
  database: string;
  /** NOLOGIN role that owns the database and everything in it. */
  ownerRole: string;
  /** The two LOGIN roles that take turns during password rotation. */
  loginRoles: readonly [string, string];
}

const PREFIX = 't_';
const LOGIN_SUFFIXES = ['_a', '_b'] as const;
const HASH_HEX_CHARS = 8;
const MAX_BASE_BYTES = MAX_IDENTIFIER_BYTES - 2; // room for a login suffix

// Names that map one-to-one: Kubernetes names never contain `_`, so turning
// `-` into `_` loses nothing. Anything else carries a hash.
const LOSSLESS = /^[a-z0-9-]+$/;
// A base must not look like another tenant's login role (tenant `acme-a`
// against `acme`'s `t_acme_a`) nor like a hashed base (`x-0123abcd`).
const AMBIGUOUS_ENDING = new RegExp(`(?:_[ab]|_[0-9a-f]{${HASH_HEX_CHARS}})$`);

export function databaseIdentifiersFor(tenantName: string): DatabaseIdentifiers {
  if (tenantName.length === 0) {
    throw new OperatorError(ERROR_CODES.INVALID_SPEC, 'a tenant name is needed for database names');
  }
  const base = baseIdentifier(tenantName);
  return {
    database: base,
    ownerRole: base,
    loginRoles: [`${base}${LOGIN_SUFFIXES[0]}`, `${base}${LOGIN_SUFFIXES[1]}`],
  };
}

function baseIdentifier(tenantName: string): string {
  const plain = PREFIX + tenantName.replaceAll('-', '_');
  if (
    LOSSLESS.test(tenantName) &&
    plain.length <= MAX_BASE_BYTES &&
    !AMBIGUOUS_ENDING.test(plain)
  ) {
    return plain;
  }
  const mapped = PREFIX + tenantName.toLowerCase().replace(/[^a-z0-9_]/gu, '_');
  const hash = createHash('sha256').update(tenantName, 'utf8').digest('hex');
  // `mapped` is ASCII by now, so characters and bytes are the same count.
  return `${mapped.slice(0, MAX_BASE_BYTES - HASH_HEX_CHARS - 1)}_${hash.slice(0, HASH_HEX_CHARS)}`;
}

/** "name" for SQL text; refuses what PostgreSQL would truncate or cannot store. */
export function quoteIdentifier(identifier: string): string {
  if (identifier.length === 0) {
    throw new OperatorError(ERROR_CODES.INTERNAL, 'an SQL identifier cannot be empty');
  }
  if (identifier.includes('\0')) {
    throw new OperatorError(ERROR_CODES.INTERNAL, 'an SQL identifier cannot contain NUL');
  }
  if (Buffer.byteLength(identifier, 'utf8') > MAX_IDENTIFIER_BYTES) {
    throw new OperatorError(
      ERROR_CODES.INTERNAL,
      `SQL identifier longer than ${MAX_IDENTIFIER_BYTES} bytes would be truncated by PostgreSQL`,
    );
  }
  return `"${identifier.replaceAll('"', '""')}"`;
}

/**
 * 'text' for the few statements that take no bind parameters. A backslash
 * switches to the E'' form, which means the same whatever
 * standard_conforming_strings says. The message on failure never shows the
 * value: it may be a secret.
 */
export function quoteLiteral(value: string): string {
  if (value.includes('\0')) {
    throw new OperatorError(ERROR_CODES.INTERNAL, 'an SQL literal cannot contain NUL');
  }
  const quoted = `'${value.replaceAll("'", "''")}'`;
  return value.includes('\\') ? `E${quoted.replaceAll('\\', '\\\\')}` : quoted;
}
