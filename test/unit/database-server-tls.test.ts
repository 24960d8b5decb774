import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import {
  databaseServerSpecSchema,
  TLS_CONTRADICTION_MESSAGE,
  TLS_REQUIRED_MESSAGE,
} from '../../src/api/databaseserver.ts';
import { describeIssues } from '../../src/api/validate.ts';
import { clientConfig } from '../../src/postgres/connection.ts';

// TLS to database servers is the rule; plain text must be asked for by name.
// The API server enforces the same rule with CEL (database-servers.test.ts).

const base = { host: 'db.example.com', adminCredentialsVaultPath: 'database-servers/x' };
const ca = { name: 'database-ca', namespace: 'tenant-system' };

function problems(spec: unknown): string {
  const parsed = databaseServerSpecSchema.safeParse(spec);
  return parsed.success ? '' : describeIssues(parsed.error, 'spec');
}

describe('DatabaseServer spec', () => {
  test('without a CA it is refused, naming spec.tls', () => {
    assert.equal(problems(base), `spec.tls: ${TLS_REQUIRED_MESSAGE}`);
    assert.equal(problems({ ...base, tls: {} }), `spec.tls: ${TLS_REQUIRED_MESSAGE}`);
    assert.equal(
      problems({ ...base, tls: { mode: 'VerifyFull' } }),
      `spec.tls: ${TLS_REQUIRED_MESSAGE}`,
    );
  });

  test('with a CA it is verify-full; Disable must be said, and not next to a CA', () => {
    const verified = databaseServerSpecSchema.parse({ ...base, tls: { caSecretRef: ca } });
    assert.equal(verified.tls?.mode, 'VerifyFull');
    assert.equal(verified.tls?.caSecretRef?.key, 'ca.crt');
    assert.equal(
      databaseServerSpecSchema.parse({ ...base, tls: { mode: 'Disable' } }).tls?.mode,
      'Disable',
    );
    assert.equal(
      problems({ ...base, tls: { mode: 'Disable', caSecretRef: ca } }),
      `spec.tls: ${TLS_CONTRADICTION_MESSAGE}`,
    );
  });
});

describe('connection settings', () => {
  const server = { host: 'db.example.com', port: 5432, user: 'u', password: 'p' };

  test('a CA gives verify-full with the host name checked', () => {
    const config = clientConfig({ ...server, caCertificate: 'PEM' });
    assert.deepEqual(config.ssl, {
      ca: 'PEM',
      rejectUnauthorized: true,
      servername: 'db.example.com',
    });
  });

  test('no CA and no explicit plaintext: refused, never a silent downgrade', () => {
    assert.throws(() => clientConfig(server), /no CA for db\.example\.com:5432/);
    assert.equal(clientConfig({ ...server, plaintext: true }).ssl, false);
  });

  test('no statement limit means no client-side read limit either (long row counts)', () => {
    const unlimited = clientConfig({ ...server, plaintext: true }, { statementTimeoutMs: 0 });
    assert.equal(unlimited.statement_timeout, 0);
    assert.equal(unlimited.query_timeout, undefined);
    const limited = clientConfig({ ...server, plaintext: true }, { statementTimeoutMs: 1_000 });
    assert.equal(limited.query_timeout, 6_000);
  });
});
