import { isIP } from 'node:net';
import type { ClientConfig } from 'pg';

// How to reach one PostgreSQL server as one role. With a CA the connection is
// verify-full: the chain must lead to that CA and the certificate must name
// the host. node-postgres has no sslmode=prefer, so without a CA the
// connection is plain rather than encrypted-but-unverified: a TLS session
// that trusts any certificate would only look safe.

export interface ServerConnection {
  host: string;
  port: number;
  user: string;
  password: string;
  /** Defaults to `postgres`. */
  database?: string;
  /** PEM bundle of the CA that signed the server's certificate. */
  caCertificate?: string;
}

export interface ConnectionOptions {
  connectTimeoutMs?: number;
  statementTimeoutMs?: number;
  applicationName?: string;
}

export const DEFAULT_CONNECT_TIMEOUT_MS = 5_000;
// Generous for CREATE DATABASE, which copies a template and checkpoints.
export const DEFAULT_STATEMENT_TIMEOUT_MS = 30_000;

export function clientConfig(
  server: ServerConnection,
  options: ConnectionOptions = {},
): ClientConfig {
  const statementTimeout = options.statementTimeoutMs ?? DEFAULT_STATEMENT_TIMEOUT_MS;
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
    // A query the server never answers (a dead peer) fails on our side too.
    query_timeout: statementTimeout + 5_000,
    lock_timeout: statementTimeout,
    idle_in_transaction_session_timeout: statementTimeout,
    application_name: options.applicationName ?? 'tenant-operator',
    keepAlive: true,
  };
}
