import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import { ERROR_CODES, OperatorError } from '../../src/errors.ts';
import { VaultClient } from '../../src/vault/client.ts';
import {
  DEFAULT_SA_TOKEN_FILE,
  PROJECTED_TOKEN_FILE,
  vaultIdentityFromEnv,
} from '../../src/vault/identity.ts';
import { readCredentialFile } from '../../src/vault/login-methods.ts';
import {
  backoffMs,
  expiryMarginMs,
  nearsMaxTtl,
  renewDelayMs,
} from '../../src/vault/token-source.ts';

// The operator's Vault identity: configuration from the environment, the
// renewal arithmetic, credential files, and the write hook. Logging in and
// renewing against a real Vault is test/integration/vault-identity.test.ts.

function configError(env: NodeJS.ProcessEnv): string {
  try {
    vaultIdentityFromEnv(env);
  } catch (err: unknown) {
    assert.ok(err instanceof OperatorError);
    assert.equal(err.code, ERROR_CODES.INVALID_SPEC);
    return err.message;
  }
  assert.fail('expected a configuration error');
}

describe('vaultIdentityFromEnv', () => {
  test('no VAULT_TOKEN: Kubernetes auth with the defaults', () => {
    assert.deepEqual(vaultIdentityFromEnv({}), {
      method: 'kubernetes',
      mount: 'kubernetes',
      role: 'tenant-operator',
      tokenFiles: [PROJECTED_TOKEN_FILE, DEFAULT_SA_TOKEN_FILE],
    });
  });

  test('an empty VAULT_TOKEN counts as unset', () => {
    assert.equal(vaultIdentityFromEnv({ VAULT_TOKEN: '' }).method, 'kubernetes');
    assert.equal(vaultIdentityFromEnv({ VAULT_TOKEN: '  ' }).method, 'kubernetes');
  });

  test('VAULT_TOKEN alone: the static development token', () => {
    const config = vaultIdentityFromEnv({ VAULT_TOKEN: 'dev-root' });
    assert.equal(config.method, 'token');
    assert.equal(config.method === 'token' && config.token, 'dev-root');
  });

  test('Kubernetes auth: role, mount and one token file when set', () => {
    assert.deepEqual(
      vaultIdentityFromEnv({
        VAULT_AUTH_METHOD: 'kubernetes',
        VAULT_AUTH_ROLE: 'ops',
        VAULT_AUTH_MOUNT: 'k8s-east',
        VAULT_K8S_TOKEN_FILE: '/tmp/jwt',
        VAULT_TOKEN: 'ignored',
      }),
      { method: 'kubernetes', mount: 'k8s-east', role: 'ops', tokenFiles: ['/tmp/jwt'] },
    );
  });

  test('AppRole needs a role ID and a secret ID file', () => {
    assert.deepEqual(
      vaultIdentityFromEnv({
        VAULT_AUTH_METHOD: 'approle',
        VAULT_ROLE_ID: 'rid',
        VAULT_SECRET_ID_FILE: '/run/secret-id',
      }),
      { method: 'approle', mount: 'approle', roleId: 'rid', secretIdFile: '/run/secret-id' },
    );
    assert.match(configError({ VAULT_AUTH_METHOD: 'approle' }), /VAULT_ROLE_ID must be set/);
    assert.match(
      configError({ VAULT_AUTH_METHOD: 'approle', VAULT_ROLE_ID: 'rid' }),
      /VAULT_SECRET_ID_FILE must be set/,
    );
  });

  test('method token without a token, or an unknown method, is refused', () => {
    assert.match(configError({ VAULT_AUTH_METHOD: 'token' }), /VAULT_TOKEN must be set/);
    assert.match(configError({ VAULT_AUTH_METHOD: 'ldap' }), /"ldap" is not one of/);
  });
});

describe('renewal arithmetic', () => {
  test('renew at two thirds of the lease', () => {
    assert.equal(renewDelayMs(30), 20_000);
    assert.equal(renewDelayMs(3600), 2_400_000);
    assert.equal(renewDelayMs(0), 0);
  });

  test('a token counts as expired a little before Vault says so', () => {
    assert.equal(expiryMarginMs(30), 3_000);
    assert.equal(expiryMarginMs(3600), 5_000);
  });

  test('a renewal granting less than asked means the max TTL is near', () => {
    assert.equal(nearsMaxTtl(30, 30), false);
    assert.equal(nearsMaxTtl(30, 10), true);
    assert.equal(nearsMaxTtl(3600, 0), true);
  });

  test('backoff doubles up to the cap, with jitter of at most 20 %', () => {
    const mid = () => 0.5;
    assert.deepEqual(
      [1, 2, 3, 4, 10].map((n) => backoffMs(n, 1_000, 8_000, mid)),
      [1_000, 2_000, 4_000, 8_000, 8_000],
    );
    assert.equal(
      backoffMs(1, 1_000, 8_000, () => 0),
      800,
    );
    assert.equal(
      backoffMs(1, 1_000, 8_000, () => 1),
      1_200,
    );
  });
});

describe('credential files', () => {
  let dir: string;
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'vault-identity-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  test('the first readable, non-empty file wins; content is trimmed', async () => {
    const empty = join(dir, 'empty');
    const jwt = join(dir, 'jwt');
    await writeFile(empty, '\n');
    await writeFile(jwt, 'eyJ.secret-part.sig\n');
    assert.equal(
      await readCredentialFile('token', [join(dir, 'missing'), empty, jwt]),
      'eyJ.secret-part.sig',
    );
  });

  test('a missing file is named, its content never', async () => {
    const empty = join(dir, 'empty2');
    await writeFile(empty, '');
    await assert.rejects(
      readCredentialFile('service account token', [join(dir, 'nope'), empty]),
      (err: unknown) =>
        err instanceof OperatorError &&
        err.code === ERROR_CODES.INVALID_SPEC &&
        /no service account token: .*nope: ENOENT, .*empty2: empty/.test(err.message),
    );
  });
});

describe('VaultClient', () => {
  test('beforeWrite runs before every request but GET and LIST, and can refuse it', async () => {
    // A port nothing listens on: a request that gets past the hook fails with NETWORK.
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    await new Promise<void>((resolve) => server.close(() => resolve()));
    const calls: string[] = [];
    const client = new VaultClient({
      address: `http://127.0.0.1:${port}`,
      token: 't',
      timeoutMs: 2_000,
      beforeWrite: () => {
        calls.push('hook');
        throw new OperatorError(ERROR_CODES.API_CONFLICT, 'not the leader');
      },
    });
    for (const method of ['POST', 'PUT', 'DELETE'] as const) {
      await assert.rejects(client.request(method, 'secret/data/x', {}), /not the leader/);
    }
    assert.equal(calls.length, 3);
    for (const method of ['GET', 'LIST'] as const) {
      await assert.rejects(
        client.request(method, 'secret/data/x'),
        (err: unknown) => err instanceof OperatorError && err.code === ERROR_CODES.NETWORK,
      );
    }
    assert.equal(calls.length, 3, 'reads never call the hook');
    // A client for another token acts for the same process: still fenced.
    await assert.rejects(client.withToken('other').write('secret/data/x', {}), /not the leader/);
  });

  test('a static token and a token provider exclude each other', () => {
    assert.throws(
      () =>
        new VaultClient({
          address: 'http://127.0.0.1:8200',
          token: 't',
          tokenProvider: {
            token: () => Promise.resolve('u'),
            tokenAfterForbidden: () => Promise.resolve(undefined),
          },
        }),
      /static token or a token provider/,
    );
  });
});

describe('tenant-operator operator', () => {
  test('refuses to start when its Vault credential file is missing', () => {
    const result = spawnSync(
      process.execPath,
      [fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url)), 'operator'],
      {
        encoding: 'utf8',
        timeout: 20_000,
        env: {
          PATH: process.env.PATH ?? '',
          VAULT_ADDR: 'http://127.0.0.1:1',
          VAULT_K8S_TOKEN_FILE: '/nonexistent/vault-token',
        },
      },
    );
    assert.equal(result.status, 1, result.stderr);
    assert.match(
      result.stderr,
      /no service account token for Vault: \/nonexistent\/vault-token: ENOENT/,
    );
  });

  test('the usage text documents the Vault identity', () => {
    const result = spawnSync(
      process.execPath,
      [fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url)), '--help'],
      { encoding: 'utf8', timeout: 20_000 },
    );
    assert.equal(result.status, 0);
    for (const name of [
      'VAULT_AUTH_METHOD',
      'VAULT_AUTH_ROLE',
      'VAULT_AUTH_MOUNT',
      'VAULT_K8S_TOKEN_FILE',
      'VAULT_ROLE_ID',
      'VAULT_SECRET_ID_FILE',
      'development only',
    ])
      assert.ok(result.stderr.includes(name), `usage lacks ${name}`);
  });
});
