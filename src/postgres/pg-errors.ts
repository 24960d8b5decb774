import pg from 'pg';
import { ERROR_CODES, OperatorError } from '../errors.ts';

// What went wrong talking to PostgreSQL, as an OperatorError whose message
// says which step failed and the server's SQLSTATE. Messages come from the
// server or the socket and never contain a password: statements carry SCRAM
// verifiers, and the server does not echo statement text in its errors.

export const SQLSTATE = {
  INSUFFICIENT_PRIVILEGE: '42501',
  DUPLICATE_OBJECT: '42710',
  DUPLICATE_DATABASE: '42P04',
  UNDEFINED_OBJECT: '42704',
  INVALID_CATALOG_NAME: '3D000',
  INVALID_PASSWORD: '28P01',
  INVALID_AUTHORIZATION: '28000',
  DEPENDENT_OBJECTS_STILL_EXIST: '2BP01',
  ADMIN_SHUTDOWN: '57P01',
} as const;

const NETWORK_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ETIMEDOUT',
  'EPIPE',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENOTFOUND',
  'EAI_AGAIN',
]);

/** The SQLSTATE of an error the server sent (also when wrapped); undefined for socket and TLS errors. */
export function sqlState(thrown: unknown): string | undefined {
  if (thrown instanceof OperatorError) return sqlState(thrown.cause);
  return thrown instanceof pg.DatabaseError ? thrown.code : undefined;
}

/** The server refused these credentials (wrong password, NOLOGIN, or no CONNECT). */
export function isLoginRejected(thrown: unknown): boolean {
  const state = sqlState(thrown);
  return (
    state !== undefined && (state.startsWith('28') || state === SQLSTATE.INSUFFICIENT_PRIVILEGE)
  );
}

export function isNetworkFailure(thrown: unknown): boolean {
  const state = sqlState(thrown);
  if (state !== undefined) return state.startsWith('08') || /^57P0[1-3]$/.test(state);
  const code = (thrown as { code?: unknown } | null)?.code;
  if (typeof code === 'string' && NETWORK_CODES.has(code)) return true;
  const message = thrown instanceof Error ? thrown.message : '';
  return /Connection terminated|timeout expired|connection timeout/i.test(message);
}

export function toPostgresError(thrown: unknown, action: string): OperatorError {
  if (thrown instanceof OperatorError) return thrown;
  const state = sqlState(thrown);
  const reason = thrown instanceof Error ? thrown.message : String(thrown);
  const message = `${action}: ${reason}${state ? ` (SQLSTATE ${state})` : ''}`;
  const code = isNetworkFailure(thrown) ? ERROR_CODES.NETWORK : ERROR_CODES.INTERNAL;
  return new OperatorError(code, message, { cause: thrown, origin: 'postgres' });
}
