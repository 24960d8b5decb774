import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { createServer, type Server, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { after, before, describe, test } from 'node:test';
import { ERROR_CODES, OperatorError, type ErrorCode } from '../../src/errors.ts';
import { VaultClient } from '../../src/vault/client.ts';
import { KubernetesAuth } from '../../src/vault/kubernetes-auth.ts';
import { KvV2 } from '../../src/vault/kv.ts';
import { policyOwnerUid, tenantReadPolicy, VaultPolicies } from '../../src/vault/policy.ts';
import { Transit } from '../../src/vault/transit.ts';
import { kubectl, requireEnv } from '../support/cluster.ts';
import { waitFor } from '../support/wait.ts';

// src/vault against the real dev Vault and the real kube-apiserver of the test
// control plane: KV v2, per-tenant policies and Kubernetes auth roles (logging
// in with real TokenRequest tokens, checked by Vault through a TokenReview),
// and Transit data keys.

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const API_AUDIENCE = 'https://kubernetes.default.svc.cluster.local';
const RUN = `${process.pid.toString(36)}${Date.now().toString(36)}`;
/** Stands for a Tenant's metadata.uid. */
const UID = '3f9c2a4e-0b7d-4c1e-9a55-6d2f8e1b7c30';

let root: VaultClient;

/** Asserts that `promise` rejects with an OperatorError of `code` (and HTTP status). */
async function rejectsWith(
  promise: Promise<unknown>,
  code: ErrorCode,
  httpStatus?: number,
): Promise<OperatorError> {
  let caught: unknown;
  await assert.rejects(promise, (err: unknown) => {
    caught = err;
    return true;
  });
  assert.ok(caught instanceof OperatorError, `expected an OperatorError, got ${String(caught)}`);
  assert.equal(caught.code, code, caught.message);
  if (httpStatus !== undefined) assert.equal(caught.httpStatus, httpStatus, caught.message);
  return caught;
}

function mustKubectl(args: string[], input?: string): string {
  const result = kubectl(args, input);
  assert.equal(result.status, 0, `kubectl ${args.join(' ')}: ${result.stderr}`);
  return result.stdout;
}

before(() => {
  // The configuration is idempotent: running it here makes this file
  // self-contained under `npm test -- test/integration/vault.test.ts`.
  const configured = spawnSync('bash', ['hack/vault-config.sh', requireEnv('TEST_CLUSTER_DIR')], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(configured.status, 0, `hack/vault-config.sh failed:\n${configured.stderr}`);
  root = new VaultClient({ address: requireEnv('VAULT_ADDR'), token: requireEnv('VAULT_TOKEN') });
});

describe('VaultClient', () => {
  test('health: initialized and unsealed, without a token', async () => {
    const health = await new VaultClient({ address: requireEnv('VAULT_ADDR') }).health();
    assert.deepEqual(
      { initialized: health.initialized, sealed: health.sealed },
      { initialized: true, sealed: false },
    );
    assert.match(health.version, /^1\.21\./);
  });

  test('the token never shows in JSON, inspect or errors', async () => {
    const token = requireEnv('VAULT_TOKEN');
    assert.ok(!JSON.stringify(root).includes(token));
    assert.ok(!inspect(root, { showHidden: true, depth: 5 }).includes(token));
    const bogus = 'hvs.not-a-real-token-' + RUN;
    const err = await rejectsWith(
      new KvV2(root.withToken(bogus)).readSecret('tenants/x/database'),
      ERROR_CODES.API_FORBIDDEN,
      403,
    );
    assert.ok(!err.message.includes(bogus), err.message);
    assert.match(err.message, /permission denied/);
  });

  test('a missing object is undefined, a missing mount is an error', async () => {
    assert.equal(await new KvV2(root).readSecret(`tenants/none-${RUN}/database`), undefined);
    assert.equal(await new Transit(root).keyInfo(`none-${RUN}`), undefined);
    // No engine at nope/: not "absent", but misconfiguration.
    const err = await rejectsWith(
      new KvV2(root, 'nope').readSecret('tenants/x/database'),
      ERROR_CODES.API_INVALID,
      404,
    );
    assert.match(err.message, /no handler for route/);
  });

  test('paths cannot leave their mount', async () => {
    const kv = new KvV2(root);
    for (const path of ['../../sys/policies/acl/root', 'a//b', 'a/./b', 'a?list=true', 'x#y', '']) {
      await rejectsWith(kv.readSecret(path), ERROR_CODES.INVALID_SPEC);
    }
    await rejectsWith(kv.writeSecret('tenants/x/../../y', { a: 'b' }), ERROR_CODES.INVALID_SPEC);
  });

  test('a server that never answers times out', async () => {
    const sockets = new Set<Socket>();
    const server: Server = createServer((socket) => sockets.add(socket));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = server.address() as { port: number };
      const silent = new VaultClient({
        address: `http://127.0.0.1:${port}`,
        token: 't',
        timeoutMs: 300,
      });
      const started = performance.now();
      const err = await rejectsWith(silent.read('secret/data/x'), ERROR_CODES.NETWORK);
      const elapsed = performance.now() - started;
      assert.match(err.message, /timed out after 300 ms/);
      assert.ok(elapsed >= 250 && elapsed < 3_000, `took ${Math.round(elapsed)} ms`);
    } finally {
      for (const socket of sockets) socket.destroy();
      server.close();
    }
  });
});

describe('KV v2', () => {
  const prefix = `tenants/kv-${RUN}`;
  const path = `${prefix}/database`;

  after(async () => {
    const kv = new KvV2(root);
    for (const key of await kv.listSecrets(prefix))
      await kv.deleteSecretAllVersions(`${prefix}/${key}`);
  });

  test('write, read, versions, check-and-set, list, delete all versions', async (t) => {
    const kv = new KvV2(root);
    const first = { username: 't_kv', password: randomBytes(24).toString('base64url') };
    const second = { username: 't_kv', password: randomBytes(24).toString('base64url') };

    let started = performance.now();
    assert.equal(await kv.writeSecret(path, first, { cas: 0 }), 1);
    t.diagnostic(`KV write: ${(performance.now() - started).toFixed(1)} ms`);
    assert.equal(await kv.writeSecret(path, second), 2);

    started = performance.now();
    const latest = await kv.readSecret(path);
    t.diagnostic(`KV read: ${(performance.now() - started).toFixed(1)} ms`);
    assert.deepEqual(latest?.data, second);
    assert.equal(latest?.version, 2);
    assert.deepEqual((await kv.readSecret(path, { version: 1 }))?.data, first);
    assert.equal(await kv.readSecret(path, { version: 9 }), undefined);

    const metadata = await kv.readMetadata(path);
    assert.equal(metadata?.currentVersion, 2);
    assert.deepEqual(Object.keys(metadata?.versions ?? {}).sort(), ['1', '2']);

    // Check-and-set: a stale version, or "must not exist yet", is a conflict,
    // and the refusal does not quote the data.
    const third = { username: 't_kv', password: randomBytes(24).toString('base64url') };
    const stale = await rejectsWith(
      kv.writeSecret(path, third, { cas: 1 }),
      ERROR_CODES.API_CONFLICT,
      400,
    );
    assert.ok(!stale.message.includes(third.password), stale.message);
    await rejectsWith(kv.writeSecret(path, third, { cas: 0 }), ERROR_CODES.API_CONFLICT, 400);
    assert.equal(await kv.writeSecret(path, third, { cas: 2 }), 3);
    assert.deepEqual((await kv.readSecret(path))?.data, third);

    assert.equal(await kv.writeSecret(`${prefix}/other`, { a: 'b' }), 1);
    assert.deepEqual((await kv.listSecrets(prefix)).sort(), ['database', 'other']);
    assert.ok((await kv.listSecrets('tenants')).includes(`kv-${RUN}/`));

    await kv.deleteSecretAllVersions(path);
    assert.equal(await kv.readSecret(path), undefined);
    assert.equal(await kv.readSecret(path, { version: 1 }), undefined);
    assert.equal(await kv.readMetadata(path), undefined);
    assert.deepEqual(await kv.listSecrets(prefix), ['other']);
    await kv.deleteSecretAllVersions(path); // already gone: fine
    // After a full delete the versions start again at 1.
    assert.equal(await kv.writeSecret(path, first, { cas: 0 }), 1);

    await kv.deleteSecretAllVersions(path);
    await kv.deleteSecretAllVersions(`${prefix}/other`);
    assert.deepEqual(await kv.listSecrets(prefix), []);
  });

  test('custom metadata claims a path before its first version, and stays', async () => {
    const kv = new KvV2(root);
    const claimed = `${prefix}/claimed`;
    const claim = { 'managed-by': 'tenant-operator', tenant: 'a', uid: UID };
    await kv.writeCustomMetadata(claimed, claim);
    const empty = await kv.readMetadata(claimed);
    assert.equal(empty?.currentVersion, 0);
    assert.deepEqual(empty?.customMetadata, claim);
    assert.equal(await kv.readSecret(claimed), undefined);
    // "Must not exist yet" still holds for the data: the claim wrote no version.
    assert.equal(await kv.writeSecret(claimed, { username: 't_a' }, { cas: 0 }), 1);
    await rejectsWith(
      kv.writeSecret(claimed, { username: 't_a' }, { cas: 0 }),
      ERROR_CODES.API_CONFLICT,
    );
    assert.equal(await kv.writeSecret(claimed, { username: 't_a', password: 'p' }, { cas: 1 }), 2);
    assert.deepEqual((await kv.readMetadata(claimed))?.customMetadata, claim);
    // A secret nobody claimed has none.
    await kv.writeSecret(`${prefix}/unclaimed`, { a: 'b' });
    assert.deepEqual((await kv.readMetadata(`${prefix}/unclaimed`))?.customMetadata, {});
  });
});

describe('tenant policy', () => {
  test('renders read of the tenant prefix only', () => {
    const hcl = tenantReadPolicy('secret', 'a', UID);
    const paths = [...hcl.matchAll(/path "([^"]+)" \{\s*capabilities = (\[[^\]]*\])\s*\}/g)].map(
      (m) => [m[1], m[2]],
    );
    assert.deepEqual(paths, [
      ['secret/data/tenants/a/*', '["read"]'],
      ['secret/metadata/tenants/a/*', '["read"]'],
    ]);
    assert.equal((hcl.match(/path "/g) ?? []).length, 2);
    assert.equal(policyOwnerUid(hcl), UID);
    assert.equal(policyOwnerUid('path "secret/*" { capabilities = ["read"] }'), undefined);
  });

  test('refuses anything but a DNS label, and odd mounts', () => {
    for (const bad of [
      '',
      'A',
      'a_b',
      'a/b',
      'a*',
      '-a',
      'a-',
      'a"',
      'a\n',
      '../a',
      'x'.repeat(64),
    ]) {
      assert.throws(
        () => tenantReadPolicy('secret', bad, UID),
        (err: unknown) => err instanceof OperatorError && err.code === ERROR_CODES.INVALID_SPEC,
        JSON.stringify(bad),
      );
    }
    assert.doesNotThrow(() => tenantReadPolicy('secret', 'x'.repeat(63), UID));
    for (const mount of ['', 'secret"', 'secret/*', '/secret', 'sec ret']) {
      assert.throws(() => tenantReadPolicy(mount, 'a', UID), OperatorError, JSON.stringify(mount));
    }
    // The uid goes into a comment: a newline would end it and start a rule.
    for (const uid of ['', 'x\npath "*" { capabilities = ["sudo"] }', 'a b', 'u'.repeat(65)]) {
      assert.throws(() => tenantReadPolicy('secret', 'a', uid), OperatorError, JSON.stringify(uid));
    }
  });
});

describe('tenant access through Kubernetes auth', () => {
  const kv = () => new KvV2(root);
  const policies = () => new VaultPolicies(root);
  const auth = () => new KubernetesAuth(root);
  const roleA = 'tenant-a';
  const policyA = 'tenant-a';
  const secretA = { username: 't_a', password: randomBytes(24).toString('base64url') };
  const secretB = { username: 't_b', password: randomBytes(24).toString('base64url') };

  before(async () => {
    for (const ns of ['tenant-a', 'tenant-b']) {
      // A namespace left terminating by an earlier run must be gone first.
      await waitFor(`namespace ${ns} not terminating`, () => {
        const phase = kubectl(['get', 'namespace', ns, '-o', 'jsonpath={.status.phase}']);
        return phase.status !== 0 || phase.stdout !== 'Terminating';
      });
    }
    mustKubectl(
      ['apply', '-f', '-'],
      ['tenant-a', 'tenant-b']
        .map(
          (ns) => `apiVersion: v1
kind: Namespace
metadata: { name: ${ns} }
---
apiVersion: v1
kind: ServiceAccount
metadata: { name: app, namespace: ${ns} }
`,
        )
        .join('---\n'),
    );
    // `default` comes from the service account controller.
    for (const ns of ['tenant-a', 'tenant-b']) {
      await waitFor(
        `service account default in ${ns}`,
        () => kubectl(['-n', ns, 'get', 'sa', 'default']).status === 0,
      );
    }
    await kv().writeSecret('tenants/a/database', secretA);
    await kv().writeSecret('tenants/b/database', secretB);
    // "ab" starts with "a": the policy must not reach it.
    await kv().writeSecret('tenants/ab/database', { username: 't_ab', password: 'x' });
  });

  after(async () => {
    await auth().deleteKubernetesRole(roleA);
    await policies().deletePolicy(policyA);
    for (const tenant of ['a', 'b', 'ab'])
      await kv().deleteSecretAllVersions(`tenants/${tenant}/database`);
    // Terminating takes ~5 s; a rerun waits for it in before().
    kubectl(['delete', 'namespace', 'tenant-a', 'tenant-b', '--wait=false']);
  });

  function serviceAccountToken(namespace: string, name: string): string {
    return mustKubectl(['-n', namespace, 'create', 'token', name, '--duration=10m']).trim();
  }

  test('policy and role are written and read back', async () => {
    const hcl = tenantReadPolicy('secret', 'a', UID);
    await policies().putPolicy(policyA, hcl);
    assert.equal(await policies().readPolicy(policyA), hcl);
    await policies().putPolicy(policyA, hcl); // idempotent
    await auth().putKubernetesRole(roleA, {
      boundServiceAccountNames: ['*'],
      boundServiceAccountNamespaces: ['tenant-a'],
      policies: [policyA],
      ttl: '10m',
      audience: API_AUDIENCE,
    });
    assert.deepEqual(await auth().readKubernetesRole(roleA), {
      boundServiceAccountNames: ['*'],
      boundServiceAccountNamespaces: ['tenant-a'],
      policies: [policyA],
      ttl: 600,
      maxTtl: 0,
      period: 0,
      explicitMaxTtl: 0,
      audience: API_AUDIENCE,
    });
    assert.equal(await auth().readKubernetesRole(`none-${RUN}`), undefined);
    // A period (periodic tokens renew forever) set behind our back is taken
    // back by the next write, which names every TTL field.
    await root.write(`auth/kubernetes/role/${roleA}`, { token_period: 3600 });
    assert.equal((await auth().readKubernetesRole(roleA))?.period, 3600);
    await auth().putKubernetesRole(roleA, {
      boundServiceAccountNames: ['*'],
      boundServiceAccountNamespaces: ['tenant-a'],
      policies: [policyA],
      ttl: '10m',
      audience: API_AUDIENCE,
    });
    assert.equal((await auth().readKubernetesRole(roleA))?.period, 0);
    await rejectsWith(policies().putPolicy('root', 'path "*" {}'), ERROR_CODES.INVALID_SPEC);
  });

  for (const serviceAccount of ['default', 'app']) {
    test(`tenant-a/${serviceAccount} reads A's secret, and nothing else`, async (t) => {
      const jwt = serviceAccountToken('tenant-a', serviceAccount);
      const started = performance.now();
      const login = await auth().loginWithKubernetes(roleA, jwt);
      t.diagnostic(
        `Kubernetes login (TokenReview included): ${(performance.now() - started).toFixed(1)} ms`,
      );
      assert.deepEqual([...login.policies].sort(), ['default', policyA]);
      assert.equal(login.metadata.service_account_namespace, 'tenant-a');
      assert.equal(login.metadata.service_account_name, serviceAccount);
      assert.ok(login.leaseDurationSeconds > 0 && login.leaseDurationSeconds <= 600);
      assert.ok(login.clientToken.length > 10);
      assert.ok(!JSON.stringify(login).includes(login.clientToken));
      assert.ok(!inspect(login).includes(login.clientToken));

      const asA = new KvV2(auth().clientFor(login));
      assert.deepEqual((await asA.readSecret('tenants/a/database'))?.data, secretA);
      assert.equal((await asA.readMetadata('tenants/a/database'))?.currentVersion, 1);
      await rejectsWith(asA.readSecret('tenants/b/database'), ERROR_CODES.API_FORBIDDEN, 403);
      await rejectsWith(asA.readSecret('tenants/ab/database'), ERROR_CODES.API_FORBIDDEN, 403);
      await rejectsWith(
        asA.writeSecret('tenants/a/database', { username: 't_a', password: 'mine-now' }),
        ERROR_CODES.API_FORBIDDEN,
        403,
      );
      await rejectsWith(
        asA.deleteSecretAllVersions('tenants/a/database'),
        ERROR_CODES.API_FORBIDDEN,
        403,
      );
      await rejectsWith(asA.listSecrets('tenants/a'), ERROR_CODES.API_FORBIDDEN, 403);
      // Nor can it claim (or un-claim) its secret.
      await rejectsWith(
        asA.writeCustomMetadata('tenants/a/database', { uid: 'mine-now' }),
        ERROR_CODES.API_FORBIDDEN,
        403,
      );
      await rejectsWith(
        new VaultPolicies(auth().clientFor(login)).putPolicy(
          policyA,
          'path "*" { capabilities = ["sudo"] }',
        ),
        ERROR_CODES.API_FORBIDDEN,
        403,
      );
      // The refused write changed nothing.
      assert.deepEqual((await kv().readSecret('tenants/a/database'))?.data, secretA);
    });
  }

  test("tenant-b's service account cannot log in with A's role", async () => {
    const jwt = serviceAccountToken('tenant-b', 'default');
    const err = await rejectsWith(
      auth().loginWithKubernetes(roleA, jwt),
      ERROR_CODES.API_FORBIDDEN,
      403,
    );
    assert.ok(!err.message.includes(jwt), err.message);
    // Nor with a token that no API server signed.
    await rejectsWith(
      auth().loginWithKubernetes(roleA, 'not-a-jwt'),
      ERROR_CODES.API_FORBIDDEN,
      403,
    );
  });

  test('a token for another audience is refused', async () => {
    const jwt = mustKubectl([
      '-n',
      'tenant-a',
      'create',
      'token',
      'default',
      '--audience=someone-else',
    ]).trim();
    const err = await rejectsWith(
      auth().loginWithKubernetes(roleA, jwt),
      ERROR_CODES.API_FORBIDDEN,
      403,
    );
    assert.match(err.message, /audience/);
  });

  test('deleting policy and role cuts access, also for tokens already issued', async () => {
    const login = await auth().loginWithKubernetes(
      roleA,
      serviceAccountToken('tenant-a', 'default'),
    );
    const asA = new KvV2(auth().clientFor(login));
    assert.deepEqual((await asA.readSecret('tenants/a/database'))?.data, secretA);

    await policies().deletePolicy(policyA);
    assert.equal(await policies().readPolicy(policyA), undefined);
    await policies().deletePolicy(policyA); // already gone: fine
    await rejectsWith(asA.readSecret('tenants/a/database'), ERROR_CODES.API_FORBIDDEN, 403);

    await auth().deleteKubernetesRole(roleA);
    assert.equal(await auth().readKubernetesRole(roleA), undefined);
    await auth().deleteKubernetesRole(roleA); // already gone: fine
    await rejectsWith(
      auth().loginWithKubernetes(roleA, serviceAccountToken('tenant-a', 'default')),
      ERROR_CODES.API_INVALID,
      400,
    );
  });
});

describe('Transit', () => {
  const key = `tenant-vt-${RUN}`;
  const transit = () => new Transit(root);

  after(async () => {
    await transit().deleteKey(key);
  });

  test('create, rotate, wrap and unwrap data keys, delete (crypto-shredding)', async (t) => {
    const created = await transit().ensureKey(key);
    assert.deepEqual(
      {
        type: created.type,
        latest: created.latestVersion,
        deletionAllowed: created.deletionAllowed,
      },
      { type: 'aes256-gcm96', latest: 1, deletionAllowed: false },
    );
    assert.equal((await transit().ensureKey(key)).latestVersion, 1); // idempotent

    let started = performance.now();
    const v1 = await transit().generateDataKey(key);
    t.diagnostic(`Transit datakey: ${(performance.now() - started).toFixed(1)} ms`);
    assert.equal(v1.plaintext.length, 32);
    assert.match(v1.ciphertext, /^vault:v1:/);
    assert.equal(v1.keyVersion, 1);
    assert.ok(!v1.ciphertext.includes(v1.plaintext.toString('base64')));
    started = performance.now();
    assert.deepEqual(await transit().decryptDataKey(key, v1.ciphertext), v1.plaintext);
    t.diagnostic(`Transit decrypt: ${(performance.now() - started).toFixed(1)} ms`);

    // Envelope: data sealed with the plaintext key opens with the unwrapped one.
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', v1.plaintext, iv);
    const sealed = Buffer.concat([cipher.update('pg_dump bytes'), cipher.final()]);
    const tag = cipher.getAuthTag();
    const unwrapped = await transit().decryptDataKey(key, v1.ciphertext);
    const decipher = createDecipheriv('aes-256-gcm', unwrapped, iv).setAuthTag(tag);
    assert.equal(
      Buffer.concat([decipher.update(sealed), decipher.final()]).toString(),
      'pg_dump bytes',
    );

    assert.equal((await transit().rotateKey(key)).latestVersion, 2);
    assert.equal((await transit().keyInfo(key))?.latestVersion, 2);
    const v2 = await transit().generateDataKey(key);
    assert.match(v2.ciphertext, /^vault:v2:/);
    assert.notDeepEqual(v2.plaintext, v1.plaintext);
    // Old backups still open after a rotation, and can be re-wrapped to the new version.
    assert.deepEqual(await transit().decryptDataKey(key, v1.ciphertext), v1.plaintext);
    const rewrapped = await transit().rewrapDataKey(key, v1.ciphertext);
    assert.match(rewrapped.ciphertext, /^vault:v2:/);
    assert.equal(rewrapped.keyVersion, 2);
    assert.deepEqual(await transit().decryptDataKey(key, rewrapped.ciphertext), v1.plaintext);

    await rejectsWith(transit().decryptDataKey(key, 'not a ciphertext'), ERROR_CODES.INVALID_SPEC);
    await rejectsWith(transit().decryptDataKey(key, 'vault:v1:AAAA'), ERROR_CODES.API_INVALID, 400);

    await transit().deleteKey(key);
    assert.equal(await transit().keyInfo(key), undefined);
    await transit().deleteKey(key); // already gone: fine
    // Crypto-shredding: the wrapped data keys are now useless.
    await assert.rejects(transit().decryptDataKey(key, v1.ciphertext), OperatorError);
    await assert.rejects(transit().decryptDataKey(key, rewrapped.ciphertext), OperatorError);
  });

  test('refuses an existing key of another type', async () => {
    const other = `rsa-${RUN}`;
    await root.write(`transit/keys/${other}`, { type: 'rsa-2048' });
    try {
      await rejectsWith(transit().ensureKey(other), ERROR_CODES.API_CONFLICT);
    } finally {
      await transit().deleteKey(other);
    }
    assert.equal(await transit().keyInfo(other), undefined);
  });
});
