import { isIP } from 'node:net';
import type { ClientConfig } from 'pg';
import { ERROR_CODES, OperatorError } from '../errors.ts';

// How to reach one PostgreSQL server as one role. The connection is
// verify-full: the chain must lead to the given CA and the certificate must
// name the host. Without a CA there is no TLS session that would be worth
// having (one that trusts any certificate would only look safe), so a
// connection without a CA is plain text, and only when the caller says so
// explicitly: forgetting the CA must fail, not quietly downgrade.

export interface ServerConnection {
  host: string;
  port: number;
  user: string;
  password: string;
  /** Defaults to `postgres`. */
  database?: string;
  /** PEM bundle of the CA that signed the server's certificate; required unless `plaintext`. */
  caCertificate?: string;
  /** No TLS at all: only for a server whose DatabaseServer says `tls.mode: Disable`. */
  plaintext?: boolean;
}

export interface ConnectionOptions {
  connectTimeoutMs?: number;
  statementTimeoutMs?: number;
  applicationName?: string;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
// Generous for CREATE DATABASE, which copies a template and checkpoints.
export const DEFAULT_STATEMENT_TIMEOUT_MS = 30_000;

/** A server without a CA is refused unless it says plaintext: a forgotten CA must not downgrade. */
export function assertTlsDecided(server: ServerConnection): void {
  if (server.caCertificate === undefined && server.plaintext !== true) {
    throw new OperatorError(
      ERROR_CODES.INVALID_SPEC,
      `no CA for ${server.host}:${server.port}: connections to PostgreSQL use TLS with verify-full unless TLS is disabled explicitly`,
    );
  }
}

export function clientConfig(
  server: ServerConnection,
  options: ConnectionOptions = {},
): ClientConfig {
  const statementTimeout = options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS;
  assertTlsDecided(server);
  return {
    host: server.host,
    port: server.port,
    user: server.user,
    password: server.password,
    database: server.database ?? 'postgres',
    ssl:
      server.caCertificate === undefined
        ? false
        : {
            ca: server.caCertificate,
            rejectUnauthorized: true,
            // SNI and the name check use the host name; for an IP address
            // node checks the certificate's IP SANs against the address.
            ...(isIP(server.host) === 0 ? { servername: server.host } : {}),
          },
    connectionTimeoutMillis: options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS,
    statement_timeout: statementTimeout,
    // A query the server never answers (a dead peer) fails on our side too;
    // 0 (no limit, the dump's row counts on a big table) means none here too.
    ...(statementTimeout === 0 ? {} : { query_timeout: statementTimeout + 5_000 }),
    lock_timeout: statementTimeout,
    idle_in_transaction_session_timeout: statementTimeout,
    application_name: options.applicationName ?? 'tenant-operator',
    keepAlive: true,
  };
}
