// One error type for the whole operator, with a code that callers branch on
// and a message that is safe to put in a log line, an Event or a status field
// (never a secret: values are named by what they are, not shown).

export const ERROR_CODES = {
  INVALID_SPEC: 'INVALID_SPEC',
  API_CONFLICT: 'API_CONFLICT',
  API_NOT_FOUND: 'API_NOT_FOUND',
  API_GONE: 'API_GONE',
  API_THROTTLED: 'API_THROTTLED',
  API_FORBIDDEN: 'API_FORBIDDEN',
  API_INVALID: 'API_INVALID',
  API_ERROR: 'API_ERROR',
  NETWORK: 'NETWORK',
  /** A write refused because this replica does not hold the leader lease (by its own clock). */
  NOT_LEADER: 'NOT_LEADER',
  INTERNAL: 'INTERNAL',
  /** An object outside the cluster (role, database, Vault policy or secret) that is not this tenant's. */
  FOREIGN_OBJECT: 'FOREIGN_OBJECT',
  /** A stored backup or manifest that is malformed, tampered with, truncated, or not this key's. */
  BACKUP_INVALID: 'BACKUP_INVALID',
} as const;

export type ErrorCode = (typeof ERROR_CODES)[keyof typeof ERROR_CODES];

/**
 * Which system an error came from, set by the client that talked to it, so
 * that status can say "Vault is unavailable" rather than blame the database
 * step that happened to call Vault. Undefined: the operator's own logic.
 */
export type ErrorOrigin = 'vault' | 'postgres' | 'kubernetes';

export class OperatorError extends Error {
  readonly code: ErrorCode;
  readonly httpStatus: number | undefined;
  readonly origin: ErrorOrigin | undefined;

  constructor(
    code: ErrorCode,
    message: string,
    options?: { cause?: unknown; httpStatus?: number; origin?: ErrorOrigin },
  ) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'OperatorError';
    this.code = code;
    this.httpStatus = options?.httpStatus;
    this.origin = options?.origin;
  }
}

/** Whatever was thrown, as an OperatorError. */
export function toOperatorError(thrown: unknown): OperatorError {
  if (thrown instanceof OperatorError) return thrown;
  if (thrown instanceof Error) {
    const network =
      /ECONNREFUSED|ECONNRESET|ETIMEDOUT|EPIPE|fetch failed|socket|other side closed/i;
    const text = `${thrown.message} ${String((thrown.cause as Error | undefined)?.message ?? '')}`;
    if (network.test(text))
      return new OperatorError(ERROR_CODES.NETWORK, thrown.message, { cause: thrown });
    return new OperatorError(ERROR_CODES.INTERNAL, thrown.message, { cause: thrown });
  }
  return new OperatorError(ERROR_CODES.INTERNAL, String(thrown));
}

/** The error came from a dependency that is down or overloaded, not from what was asked of it. */
export function isUnavailable(err: OperatorError): boolean {
  return (
    err.code === ERROR_CODES.NETWORK ||
    err.code === ERROR_CODES.API_THROTTLED ||
    (err.code === ERROR_CODES.API_ERROR && (err.httpStatus === undefined || err.httpStatus >= 500))
  );
}

export function isNotFound(err: unknown): boolean {
  return err instanceof OperatorError && err.code === ERROR_CODES.API_NOT_FOUND;
}

export function isConflict(err: unknown): boolean {
  return err instanceof OperatorError && err.code === ERROR_CODES.API_CONFLICT;
}
