import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { after, before, describe, test } from 'node:test';
import {
  backupAuthRoleName,
  backupPolicyName,
  backupServiceAccountName,
  ensureTenantBackupKeys,
  raiseMinDecryptionVersion,
  removeTenantBackupVault,
  restorePolicyName,
  restoreVault,
  RESTORE_TOKEN_ROLE,
  rotateIfDue,
  transitKeyName,
  type BackupTenant,
  type BackupVaultObjects,
} from '../../src/backup/vault-access.ts';
import { ERROR_CODES, OperatorError } from '../../src/errors.ts';
import { credentialsPath } from '../../src/tenant/database-vault.ts';
import { VaultClient } from '../../src/vault/client.ts';
import { KubernetesAuth } from '../../src/vault/kubernetes-auth.ts';
import { KvV2 } from '../../src/vault/kv.ts';
import { policyOwnerUid, VaultPolicies } from '../../src/vault/policy.ts';
import { Transit, type DataKey } from '../../src/vault/transit.ts';
import { kubectl, requireEnv, serviceAccountToken } from '../support/cluster.ts';
import { OPERATOR_NAMESPACE } from '../support/operator.ts';

// A tenant's backup keys and the two narrow identities around them, against
// the real Vault and API server: the operator (logged in with its own
// ServiceAccount and hack/vault-config.sh's policy) sets them up; the backup
// job logs in with a real TokenRequest token of its ServiceAccount and can
// make data keys but never unwrap one; a restore token unwraps one tenant's
// keys only, and the operator cannot turn the token role into anything more.

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const RUN = `${process.pid.toString(36)}${Date.now().toString(36)}`;
const A: BackupTenant = { name: `bkv-a-${RUN}`, uid: randomUUID() };
const B: BackupTenant = { name: `bkv-b-${RUN}`, uid: randomUUID() };
/** A tenant whose backup policy name is taken by someone else. */
const C: BackupTenant = { name: `bkv-c-${RUN}`, uid: randomUUID() };
const TENANTS = [A, B, C];
const AUDIT_PATH = `bkv-${RUN}`;

let root: VaultClient;
let op: VaultClient;
/** Requests the operator's client sent that may change something (anything but GET/LIST). */
let operatorWrites = 0;
let objects: BackupVaultObjects;
let dir: string;

async function rejectsForbidden(promise: Promise<unknown>, what: string): Promise<void> {
  await assert.rejects(
    promise,
    (err: unknown) => err instanceof OperatorError && err.httpStatus === 403,
    `${what} should be refused with 403`,
  );
}

/** The backup job of `tenant`, logged in as it would be in its pod. */
async function backupJobClient(tenant: BackupTenant): Promise<VaultClient> {
  const login = await new KubernetesAuth(root.withoutToken()).loginWithKubernetes(
    backupAuthRoleName(tenant.name),
    serviceAccountToken(backupServiceAccountName(tenant.name), OPERATOR_NAMESPACE, 'vault'),
  );
  assert.deepEqual([...login.policies].sort(), [backupPolicyName(tenant.name), 'default']);
  return root.withToken(login.clientToken);
}

function credentials(tenant: BackupTenant): string {
  return credentialsPath(tenant.name);
}

before(async () => {
  const configured = spawnSync('bash', ['hack/vault-config.sh', requireEnv('TEST_CLUSTER_DIR')], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(configured.status, 0, `hack/vault-config.sh failed:\n${configured.stderr}`);
  root = VaultClient.fromEnv();
  dir = await mkdtemp(join(tmpdir(), 'backup-vault-'));
  const login = await new KubernetesAuth(root.withoutToken()).loginWithKubernetes(
    'tenant-operator',
    serviceAccountToken('tenant-operator', OPERATOR_NAMESPACE, 'vault'),
  );
  assert.deepEqual([...login.policies].sort(), ['default', 'tenant-operator']);
  op = new VaultClient({
    address: root.address,
    token: login.clientToken,
    beforeWrite: () => {
      operatorWrites += 1;
    },
  });
  objects = {
    transit: new Transit(op),
    policies: new VaultPolicies(op),
    kubernetesAuth: new KubernetesAuth(op),
    kv: new KvV2(op),
    operatorNamespace: OPERATOR_NAMESPACE,
  };
  for (const tenant of TENANTS) {
    await new KvV2(root).writeSecret(credentials(tenant), {
      username: `u_${tenant.name}`,
      password: `p-${tenant.uid}`,
    });
    const applied = kubectl(
      ['apply', '-f', '-'],
      JSON.stringify({
        apiVersion: 'v1',
        kind: 'ServiceAccount',
        metadata: { name: backupServiceAccountName(tenant.name), namespace: OPERATOR_NAMESPACE },
      }),
    );
    assert.equal(applied.status, 0, applied.stderr);
  }
});

after(async () => {
  const transit = new Transit(root);
  const policies = new VaultPolicies(root);
  const auth = new KubernetesAuth(root);
  for (const tenant of TENANTS) {
    await transit.deleteKey(transitKeyName(tenant.name));
    await policies.deletePolicy(backupPolicyName(tenant.name));
    await policies.deletePolicy(restorePolicyName(tenant.name));
    await auth.deleteKubernetesRole(backupAuthRoleName(tenant.name));
    await new KvV2(root).deleteSecretAllVersions(credentials(tenant));
    kubectl([
      'delete',
      'serviceaccount',
      backupServiceAccountName(tenant.name),
      '-n',
      OPERATOR_NAMESPACE,
      '--ignore-not-found',
    ]);
  }
  await root.delete(`sys/audit/${AUDIT_PATH}`);
  await op?.write('auth/token/revoke-self');
  await rm(dir, { recursive: true, force: true });
});

describe('backup keys and identities', () => {
  /** Data keys the backup job of A made: version 1 before rotation, version 2 after. */
  let keyV1: DataKey;
  let keyV2: DataKey;
  /** A data key of B's Transit key. */
  let keyOfB: DataKey;

  test('the operator creates key, policies and role with its own identity; a foreign policy stops it', async () => {
    for (const tenant of [A, B]) {
      const ensured = await ensureTenantBackupKeys(objects, tenant);
      assert.deepEqual(ensured.written, [
        `Transit key ${transitKeyName(tenant.name)}`,
        `Vault policy ${restorePolicyName(tenant.name)}`,
        `Vault policy ${backupPolicyName(tenant.name)}`,
        `Vault Kubernetes auth role ${backupAuthRoleName(tenant.name)}`,
      ]);
    }
    // As Vault holds them.
    const key = await new Transit(root).keyInfo(transitKeyName(A.name));
    assert.ok(key);
    assert.deepEqual(
      [key.type, key.exportable, key.allowPlaintextBackup, key.deletionAllowed, key.latestVersion],
      ['aes256-gcm96', false, false, false, 1],
    );
    const policies = new VaultPolicies(root);
    for (const name of [backupPolicyName(A.name), restorePolicyName(A.name)])
      assert.equal(policyOwnerUid((await policies.readPolicy(name)) ?? ''), A.uid, name);
    const role = await new KubernetesAuth(root).readKubernetesRole(backupAuthRoleName(A.name));
    assert.deepEqual(role, {
      boundServiceAccountNames: [backupServiceAccountName(A.name)],
      boundServiceAccountNamespaces: [OPERATOR_NAMESPACE],
      policies: [backupPolicyName(A.name)],
      ttl: 3600,
      maxTtl: 7200,
      period: 0,
      explicitMaxTtl: 0,
      audience: 'vault',
    });

    // C's backup policy name holds another Tenant's policy: nothing is written.
    const other = `# tenancy.io/tenant-uid: ${randomUUID()}\npath "secret/data/x" { capabilities = ["read"] }\n`;
    await policies.putPolicy(backupPolicyName(C.name), other);
    const writesBefore = operatorWrites;
    await assert.rejects(
      ensureTenantBackupKeys(objects, C),
      (err: unknown) =>
        err instanceof OperatorError &&
        err.code === ERROR_CODES.FOREIGN_OBJECT &&
        err.message.includes(`Vault policy ${backupPolicyName(C.name)}`),
    );
    assert.equal(operatorWrites, writesBefore);
    assert.equal(await new Transit(root).keyInfo(transitKeyName(C.name)), undefined);
    assert.equal(await policies.readPolicy(backupPolicyName(C.name)), other);
  });

  test('the backup job makes data keys of its own key and reads its credentials, nothing else', async () => {
    const job = await backupJobClient(A);
    const transit = new Transit(job);
    keyV1 = await transit.generateDataKey(transitKeyName(A.name));
    assert.equal(keyV1.keyVersion, 1);
    assert.match(keyV1.ciphertext, /^vault:v1:/);
    assert.equal((await new KvV2(job).readSecret(credentials(A)))?.data.username, `u_${A.name}`);
    keyOfB = await new Transit(root).generateDataKey(transitKeyName(B.name));

    const keyA = transitKeyName(A.name);
    const keyB = transitKeyName(B.name);
    await rejectsForbidden(
      transit.decryptDataKey(keyA, keyV1.ciphertext),
      'decrypt of its own key',
    );
    await rejectsForbidden(transit.rewrapDataKey(keyA, keyV1.ciphertext), 'rewrap');
    await rejectsForbidden(transit.generateDataKey(keyB), "a data key of B's key");
    await rejectsForbidden(transit.decryptDataKey(keyB, keyOfB.ciphertext), "decrypt of B's key");
    await rejectsForbidden(new KvV2(job).readSecret(credentials(B)), "B's credentials");
    await rejectsForbidden(new KvV2(job).readMetadata(credentials(A)), 'its credentials metadata');
    await rejectsForbidden(transit.keyInfo(keyA), 'reading its key');
    await rejectsForbidden(
      job.write(`transit/keys/${keyA}/config`, { min_decryption_version: 1 }),
      'configuring its key',
    );
    await rejectsForbidden(transit.rotateKey(keyA), 'rotating its key');
    await rejectsForbidden(
      job.write(`transit/datakey/wrapped/${keyA}`, { bits: 256 }),
      'a wrapped-only data key',
    );
    await rejectsForbidden(
      job.write(`transit/encrypt/${keyA}`, { plaintext: 'AAAA' }),
      'encrypt with its key',
    );
    await rejectsForbidden(
      job.write(`auth/token/create/${RESTORE_TOKEN_ROLE}`, {
        policies: [restorePolicyName(A.name)],
      }),
      'a restore token',
    );
    await job.write('auth/token/revoke-self');

    // B's job cannot log in to A's role; A's own token without audience "vault" cannot either.
    const anonymous = new KubernetesAuth(root.withoutToken());
    await rejectsForbidden(
      anonymous.loginWithKubernetes(
        backupAuthRoleName(A.name),
        serviceAccountToken(backupServiceAccountName(B.name), OPERATOR_NAMESPACE, 'vault'),
      ),
      "B's ServiceAccount logging in to A's role",
    );
    await rejectsForbidden(
      anonymous.loginWithKubernetes(
        backupAuthRoleName(A.name),
        serviceAccountToken(backupServiceAccountName(A.name), OPERATOR_NAMESPACE),
      ),
      "A's ServiceAccount token without the vault audience",
    );
  });

  test("a restore token unwraps A's data keys only, and mints nothing", async () => {
    await using restore = await restoreVault(op, A.name);
    assert.deepEqual(restore.policies, [restorePolicyName(A.name)]);
    // As Vault sees the token: one policy, an orphan, not renewable, 15 minutes.
    const token = await root.write<{
      policies: string[];
      orphan: boolean;
      renewable: boolean;
      ttl: number;
    }>('auth/token/lookup-accessor', { accessor: restore.accessor });
    assert.deepEqual(token?.data?.policies, [restorePolicyName(A.name)]);
    assert.equal(token?.data?.orphan, true);
    assert.equal(token?.data?.renewable, false);
    assert.ok((token?.data?.ttl ?? 0) <= 900 && (token?.data?.ttl ?? 0) > 800);

    const transit = new Transit(restore.client);
    const keyA = transitKeyName(A.name);
    assert.deepEqual(await transit.decryptDataKey(keyA, keyV1.ciphertext), keyV1.plaintext);
    assert.equal(
      (await new KvV2(restore.client).readSecret(credentials(A)))?.data.username,
      `u_${A.name}`,
    );
    const keyB = transitKeyName(B.name);
    await rejectsForbidden(transit.decryptDataKey(keyB, keyOfB.ciphertext), "decrypt of B's key");
    await rejectsForbidden(new KvV2(restore.client).readSecret(credentials(B)), "B's credentials");
    await rejectsForbidden(transit.generateDataKey(keyA), 'a data key');
    await rejectsForbidden(transit.rewrapDataKey(keyA, keyV1.ciphertext), 'rewrap');
    await rejectsForbidden(transit.keyInfo(keyA), 'reading the key');
    await rejectsForbidden(
      restore.client.read('auth/token/lookup-self'),
      'lookup-self (no default policy)',
    );
    for (const path of [
      'auth/token/create',
      'auth/token/create-orphan',
      `auth/token/create/${RESTORE_TOKEN_ROLE}`,
    ])
      await rejectsForbidden(
        restore.client.write(path, { policies: [restorePolicyName(A.name)] }),
        `${path} with a restore token`,
      );

    await restore.dispose();
    await rejectsForbidden(transit.decryptDataKey(keyA, keyV1.ciphertext), 'a disposed token');
    await restore.dispose(); // again: nothing happens
  });

  test('the operator cannot make the token role mint anything but a restore policy', async () => {
    const create = (body: unknown) => op.write(`auth/token/create/${RESTORE_TOKEN_ROLE}`, body);
    for (const [what, body] of [
      ['the operator policy', { policies: ['tenant-operator'] }],
      ['default only', { policies: ['default'] }],
      ['root', { policies: ['root'] }],
      ["A's workload policy", { policies: [`tenant-${A.name}`] }],
      ["A's backup policy", { policies: [backupPolicyName(A.name)] }],
      [
        'a restore policy and the operator policy',
        { policies: [restorePolicyName(A.name), 'tenant-operator'] },
      ],
      ['no policies (the parent policies)', {}],
      ['restore policy with a longer life', { policies: [restorePolicyName(A.name)], ttl: '24h' }],
      ['restore policy with metadata', { policies: [restorePolicyName(A.name)], meta: { a: 'b' } }],
    ] as const) {
      await rejectsForbidden(create(body), what);
    }
    await rejectsForbidden(
      op.write('auth/token/create', { policies: [restorePolicyName(A.name)] }),
      'token create without the role',
    );
    await rejectsForbidden(op.write('auth/token/create-orphan', {}), 'orphan token create');
    await rejectsForbidden(
      op.write(`auth/token/roles/${RESTORE_TOKEN_ROLE}`, { allowed_policies_glob: ['*'] }),
      'widening the token role',
    );
    await rejectsForbidden(
      op.write('auth/token/roles/vid-evil', { allowed_policies: ['root'] }),
      'a new token role',
    );
    // The role's own lock, independent of the operator's policy: even the
    // root token gets nothing but restore-* policies through it.
    for (const policies of [['tenant-operator'], ['default'], ['root'], [`tenant-${A.name}`]]) {
      await assert.rejects(
        root.write(`auth/token/create/${RESTORE_TOKEN_ROLE}`, { policies }),
        (err: unknown) => err instanceof OperatorError && err.httpStatus === 400,
        `root through the role with ${JSON.stringify(policies)}`,
      );
    }
    // One string with a comma passes the operator's policy (it starts with
    // "restore-") and the role (Vault keeps it as ONE policy name): the token
    // holds that literal name, which no policy has, and not tenant-operator.
    const comma = await create({ policies: `${restorePolicyName(A.name)},tenant-operator` });
    assert.deepEqual(comma?.auth?.policies, [`${restorePolicyName(A.name)},tenant-operator`]);
    await rejectsForbidden(
      new KvV2(root.withToken(comma?.auth?.client_token ?? '')).readSecret(credentials(A)),
      'a token with a comma policy name',
    );
    await root.write('auth/token/revoke', { token: comma?.auth?.client_token });
    // An empty policy list passes the operator's policy: the token it gives has no policy at all.
    const empty = await create({ policies: [] });
    const minted = empty?.auth;
    assert.ok(minted);
    assert.deepEqual(minted.policies ?? [], []);
    await rejectsForbidden(
      root.withToken(minted.client_token).read(`secret/data/${credentials(A)}`),
      'a token without policies',
    );
    await root.write('auth/token/revoke', { token: minted.client_token });
  });

  test('rotation: new data keys use the new version; old ones decrypt until the minimum passes them', async () => {
    const transit = new Transit(op);
    const keyA = transitKeyName(A.name);
    const versionOf = ({ version, rotated }: { version: number; rotated: boolean }) => ({
      version,
      rotated,
    });
    const first = await rotateIfDue(transit, keyA, 90 * 86_400_000, new Date());
    assert.deepEqual(versionOf(first), { version: 1, rotated: false });
    await sleep(1_100);
    const second = await rotateIfDue(transit, keyA, 1_000, new Date());
    assert.deepEqual(versionOf(second), { version: 2, rotated: true });
    assert.ok(second.rotatedAt > first.rotatedAt, 'the new version is younger than the first');
    const writes = operatorWrites;
    const third = await rotateIfDue(transit, keyA, 60_000, new Date());
    assert.deepEqual(versionOf(third), { version: 2, rotated: false });
    assert.equal(third.rotatedAt.getTime(), second.rotatedAt.getTime());
    assert.equal(operatorWrites, writes, 'a rotation not due writes nothing');

    const job = await backupJobClient(A);
    keyV2 = await new Transit(job).generateDataKey(keyA);
    assert.equal(keyV2.keyVersion, 2);
    assert.match(keyV2.ciphertext, /^vault:v2:/);
    await job.write('auth/token/revoke-self');

    {
      await using restore = await restoreVault(op, A.name);
      const unwrap = new Transit(restore.client);
      assert.deepEqual(await unwrap.decryptDataKey(keyA, keyV1.ciphertext), keyV1.plaintext);
      assert.deepEqual(await unwrap.decryptDataKey(keyA, keyV2.ciphertext), keyV2.plaintext);
      // The oldest retained backup needs version 2 now.
      assert.equal(await raiseMinDecryptionVersion(transit, keyA, 2), 2);
      assert.equal((await new Transit(root).keyInfo(keyA))?.minDecryptionVersion, 2);
      await assert.rejects(
        unwrap.decryptDataKey(keyA, keyV1.ciphertext),
        (err: unknown) =>
          err instanceof OperatorError &&
          err.code === ERROR_CODES.API_INVALID &&
          /wrapped by key version 1, which is below the key's min_decryption_version/.test(
            err.message,
          ),
      );
      assert.deepEqual(await unwrap.decryptDataKey(keyA, keyV2.ciphertext), keyV2.plaintext);
    }

    // Never lowered, never above the latest version; neither case writes.
    const before = operatorWrites;
    assert.equal(await raiseMinDecryptionVersion(transit, keyA, 1), 2);
    assert.equal(await raiseMinDecryptionVersion(transit, keyA, 2), 2);
    assert.equal(await raiseMinDecryptionVersion(transit, keyA, 9), 2);
    assert.equal(operatorWrites, before);
    const live = await new Transit(root).keyInfo(keyA);
    assert.deepEqual([live?.minDecryptionVersion, live?.latestVersion], [2, 2]);
    await assert.rejects(raiseMinDecryptionVersion(transit, keyA, 0), OperatorError);
  });

  test('an unchanged tenant: a second ensure writes nothing (client observer and Vault audit log)', async () => {
    const auditFile = join(dir, 'audit.log');
    await root.write(`sys/audit/${AUDIT_PATH}`, {
      type: 'file',
      options: { file_path: auditFile },
    });
    const policies = new VaultPolicies(root);
    const snapshot = async () => ({
      backup: await policies.readPolicy(backupPolicyName(A.name)),
      restore: await policies.readPolicy(restorePolicyName(A.name)),
      role: await new KubernetesAuth(root).readKubernetesRole(backupAuthRoleName(A.name)),
      key: await new Transit(root).keyInfo(transitKeyName(A.name)),
    });
    const before = await snapshot();
    const writes = operatorWrites;
    const ensured = await ensureTenantBackupKeys(objects, A);
    assert.deepEqual(ensured.written, []);
    assert.equal(ensured.key.latestVersion, 2);
    assert.equal(operatorWrites, writes, 'the operator client sent a write');
    await root.delete(`sys/audit/${AUDIT_PATH}`);
    assert.deepEqual(await snapshot(), before);

    const entries = (await readFile(auditFile, 'utf8'))
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map(
        (line) =>
          JSON.parse(line) as { type: string; request?: { path?: string; operation?: string } },
      )
      .filter((entry) => entry.type === 'request' && entry.request?.path !== undefined);
    const ofA = entries.filter((entry) => entry.request?.path?.includes(A.name));
    // The log saw the reads (so it saw the requests at all), and nothing else.
    assert.deepEqual(
      ofA.map((entry) => `${entry.request?.operation} ${entry.request?.path}`).sort(),
      [
        `read auth/kubernetes/role/${backupAuthRoleName(A.name)}`,
        `read sys/policies/acl/${backupPolicyName(A.name)}`,
        `read sys/policies/acl/${restorePolicyName(A.name)}`,
        `read transit/keys/${transitKeyName(A.name)}`,
        // The snapshot's own reads, by root.
        `read auth/kubernetes/role/${backupAuthRoleName(A.name)}`,
        `read sys/policies/acl/${backupPolicyName(A.name)}`,
        `read sys/policies/acl/${restorePolicyName(A.name)}`,
        `read transit/keys/${transitKeyName(A.name)}`,
      ].sort(),
    );
  });

  test('drift is repaired, and only the drifted object is written', async () => {
    await new VaultPolicies(root).deletePolicy(restorePolicyName(A.name));
    await root.write(`transit/keys/${transitKeyName(A.name)}/config`, { deletion_allowed: true });
    const ensured = await ensureTenantBackupKeys(objects, A);
    assert.deepEqual(ensured.written, [
      `Transit key ${transitKeyName(A.name)} config`,
      `Vault policy ${restorePolicyName(A.name)}`,
    ]);
    assert.equal((await new Transit(root).keyInfo(transitKeyName(A.name)))?.deletionAllowed, false);
    assert.deepEqual((await ensureTenantBackupKeys(objects, A)).written, []);
  });

  test("purge removes B's role, policies and key: B's wrapped keys are unreadable; C's foreign policy stays", async () => {
    const wrapped = await new Transit(root).generateDataKey(transitKeyName(B.name));
    assert.deepEqual(await removeTenantBackupVault(objects, B), [
      `Vault Kubernetes auth role ${backupAuthRoleName(B.name)}`,
      `Vault policy ${backupPolicyName(B.name)}`,
      `Vault policy ${restorePolicyName(B.name)}`,
      `Transit key ${transitKeyName(B.name)}`,
    ]);
    assert.equal(await new Transit(root).keyInfo(transitKeyName(B.name)), undefined);
    assert.equal(await new VaultPolicies(root).readPolicy(restorePolicyName(B.name)), undefined);
    assert.equal(
      await new KubernetesAuth(root).readKubernetesRole(backupAuthRoleName(B.name)),
      undefined,
    );
    // Even root cannot unwrap a data key of the deleted key.
    await assert.rejects(
      new Transit(root).decryptDataKey(transitKeyName(B.name), wrapped.ciphertext),
      OperatorError,
    );
    assert.deepEqual(await removeTenantBackupVault(objects, B), []); // resumable: nothing left
    assert.deepEqual(await removeTenantBackupVault(objects, C), []);
    assert.notEqual(await new VaultPolicies(root).readPolicy(backupPolicyName(C.name)), undefined);
  });
});
