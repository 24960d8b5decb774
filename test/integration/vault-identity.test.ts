import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { inspect } from 'node:util';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import { registerLocalDatabaseServers, type LocalServer } from '../../hack/database-servers.ts';
import { ERROR_CODES, OperatorError } from '../../src/errors.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import type { StoredCredentials } from '../../src/tenant/database.ts';
import { VaultClient } from '../../src/vault/client.ts';
import { KubernetesAuth, type KubernetesRole } from '../../src/vault/kubernetes-auth.ts';
import { KvV2 } from '../../src/vault/kv.ts';
import { appRoleLogin, kubernetesLogin } from '../../src/vault/login-methods.ts';
import { VaultPolicies } from '../../src/vault/policy.ts';
import { RenewingTokenSource, type TokenSourceLogger } from '../../src/vault/token-source.ts';
import { Transit } from '../../src/vault/transit.ts';
import {
  adminClient,
  createTenant,
  eraseTenantAndWait,
  kubectl,
  requireEnv,
  waitForPhase,
} from '../support/cluster.ts';
import { OPERATOR_NAMESPACE, OperatorProcess } from '../support/operator.ts';
import { dropTenantDatabasesAsAdmin } from '../support/postgres.ts';
import { tenantConnection } from '../support/tenant-data.ts';
import { waitFor } from '../support/wait.ts';

// The operator's own Vault identity, against the real Vault and API server:
// it logs in with its ServiceAccount token (Kubernetes auth, TokenReview by the
// real API server), renews, logs in again before the max TTL, survives Vault
// being unreachable, and its policy lets it do its work and nothing else.

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const RUN = `${process.pid.toString(36)}${Date.now().toString(36)}`;
const OPERATOR_ROLE = 'tenant-operator';
/** A tenant name for Vault objects this file creates directly (not through the operator). */
const PROBE = `vid-${RUN}`;
/** Tenants the operator provisions in the long run. */
const OPERATOR_TENANTS = ['vid-op-0', 'vid-op-1', 'vid-op-2', 'vid-op-3', 'vid-op-4'];
/** A Vault service token as Vault 1.10+ prints it. */
const VAULT_TOKEN_SHAPE = /hvs\.[A-Za-z0-9_-]{20,}/;
/** An AppRole mount of this file's own, removed afterwards. */
const APPROLE_MOUNT = `approle-vid-${RUN}`;

let root: VaultClient;
let client: KubeClient;
let dir: string;
let jwtFile: string;
let jwt: string;
let originalRole: KubernetesRole;
let servers: LocalServer[] = [];
let operator: OperatorProcess | undefined;
const rolesToDelete = new Set<string>();

/** A logger that keeps every line, as the operator's JSON logs would hold it. */
function memoryLogger(): TokenSourceLogger & { lines: string[]; count(message: RegExp): number } {
  const lines: string[] = [];
  const write = (level: string) => (fields: object, message: string) => {
    lines.push(JSON.stringify({ level, ...fields, msg: message }));
  };
  return {
    lines,
    info: write('info'),
    warn: write('warn'),
    count: (message) => lines.filter((line) => message.test(line)).length,
  };
}

async function rejectsForbidden(promise: Promise<unknown>, what: string): Promise<void> {
  await assert.rejects(
    promise,
    (err: unknown) => err instanceof OperatorError && err.httpStatus === 403,
    `${what} should be refused with 403`,
  );
}

function kubernetesRolePath(name: string): string {
  return `auth/kubernetes/role/${name}`;
}

/** A role for the operator's ServiceAccount with short TTLs, created with the root token. */
async function shortLivedRole(name: string, ttl: number, maxTtl: number): Promise<void> {
  rolesToDelete.add(name);
  await new KubernetesAuth(root).putKubernetesRole(name, {
    boundServiceAccountNames: [OPERATOR_ROLE],
    boundServiceAccountNamespaces: [OPERATOR_NAMESPACE],
    policies: [OPERATOR_ROLE],
    ttl,
    maxTtl,
    audience: 'vault',
  });
}

/** A TCP forwarder to Vault that the test can take down and bring back on the same port. */
class VaultProxy {
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly target: URL;
  port = 0;

  constructor(target: URL) {
    this.target = target;
  }

  async up(): Promise<void> {
    const server = createServer((inbound) => {
      const outbound = connect(Number(this.target.port), this.target.hostname);
      for (const socket of [inbound, outbound]) {
        this.sockets.add(socket);
        socket.on('close', () => this.sockets.delete(socket));
        socket.on('error', () => socket.destroy());
      }
      inbound.pipe(outbound).pipe(inbound);
    });
    await new Promise<void>((resolve) => server.listen(this.port, '127.0.0.1', resolve));
    this.port = (server.address() as { port: number }).port;
    this.server = server;
  }

  async down(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    const server = this.server;
    this.server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}

before(async () => {
  // Idempotent; makes this file self-contained and restores the operator's role.
  const configured = spawnSync('bash', ['hack/vault-config.sh', requireEnv('TEST_CLUSTER_DIR')], {
    cwd: REPO,
    encoding: 'utf8',
    timeout: 120_000,
  });
  assert.equal(configured.status, 0, `hack/vault-config.sh failed:\n${configured.stderr}`);
  root = VaultClient.fromEnv();
  client = await adminClient();
  const role = await new KubernetesAuth(root).readKubernetesRole(OPERATOR_ROLE);
  assert.ok(role, `hack/vault-config.sh made no role ${OPERATOR_ROLE}`);
  originalRole = role;
  dir = await mkdtemp(join(tmpdir(), 'vault-identity-'));
  jwtFile = join(dir, 'vault-token');
  // What the kubelet would project for the operator's pod: a TokenRequest
  // token with audience "vault".
  const created = kubectl([
    'create',
    'token',
    OPERATOR_ROLE,
    '-n',
    OPERATOR_NAMESPACE,
    '--audience',
    'vault',
    '--duration',
    '1h',
  ]);
  assert.equal(created.status, 0, `kubectl create token: ${created.stderr}`);
  jwt = created.stdout.trim();
  await writeFile(jwtFile, jwt, { mode: 0o600 });
});

after(async () => {
  // The operator removes its finalizer: delete the tenants while it still runs.
  for (const name of OPERATOR_TENANTS)
    await eraseTenantAndWait(client, name, 90_000).catch(() => undefined);
  await operator?.stop();
  // What an interrupted run left, removed as the servers' admins would.
  await dropTenantDatabasesAsAdmin(servers, OPERATOR_TENANTS);
  const kv = new KvV2(root);
  const auth = new KubernetesAuth(root);
  const policies = new VaultPolicies(root);
  for (const name of [...OPERATOR_TENANTS, PROBE]) {
    for (const key of await kv.listSecrets(`tenants/${name}`))
      await kv.deleteSecretAllVersions(`tenants/${name}/${key}`);
    await policies.deletePolicy(`tenant-${name}`);
    await auth.deleteKubernetesRole(`tenant-${name}`);
  }
  await new Transit(root).deleteKey(`tenant-${PROBE}`);
  await policies.deletePolicy(`backup-${PROBE}`);
  await policies.deletePolicy(`restore-${PROBE}`);
  await auth.deleteKubernetesRole(`backup-${PROBE}`);
  await kv.deleteSecretAllVersions(`database-servers/vid-probe-${RUN}`);
  await kv.deleteSecretAllVersions(`other-${RUN}/x`);
  for (const name of rolesToDelete) await auth.deleteKubernetesRole(name);
  await root.delete(`sys/auth/${APPROLE_MOUNT}`);
  // The operator's role as hack/vault-config.sh left it.
  if (originalRole) {
    await root.write(kubernetesRolePath(OPERATOR_ROLE), {
      token_ttl: originalRole.ttl,
      token_max_ttl: originalRole.maxTtl,
    });
  }
  await rm(dir, { recursive: true, force: true });
  await client.close();
});

describe('the tenant-operator policy', () => {
  let op: VaultClient;
  before(async () => {
    const login = await new KubernetesAuth(root.withoutToken()).loginWithKubernetes(
      OPERATOR_ROLE,
      jwt,
    );
    assert.deepEqual([...login.policies].sort(), ['default', OPERATOR_ROLE]);
    op = root.withToken(login.clientToken);
  });
  after(async () => {
    await op.write('auth/token/revoke-self');
  });

  test('allows what the operator does: tenant KV, server credentials, tenant policies, roles and keys', async () => {
    const kv = new KvV2(op);
    const path = `tenants/${PROBE}/database`;
    assert.equal(await kv.writeSecret(path, { username: 'u', password: 'p' }, { cas: 0 }), 1);
    assert.equal((await kv.readSecret(path))?.data.username, 'u');
    await op.write(kv.metadataPath(path), { custom_metadata: { owner: 'tenant-operator' } });
    assert.equal((await kv.readMetadata(path))?.currentVersion, 1);
    assert.deepEqual(await kv.listSecrets(`tenants/${PROBE}`), ['database']);
    await kv.deleteSecretAllVersions(path);
    assert.equal(await kv.readMetadata(path), undefined);

    await new KvV2(root).writeSecret(`database-servers/vid-probe-${RUN}`, { username: 'a' });
    assert.equal((await kv.readSecret(`database-servers/vid-probe-${RUN}`))?.data.username, 'a');

    const policies = new VaultPolicies(op);
    const hcl = `path "secret/data/tenants/${PROBE}/*" { capabilities = ["read"] }\n`;
    await policies.putPolicy(`tenant-${PROBE}`, hcl);
    assert.equal(await policies.readPolicy(`tenant-${PROBE}`), hcl);

    const auth = new KubernetesAuth(op);
    await auth.putKubernetesRole(`tenant-${PROBE}`, {
      boundServiceAccountNames: ['*'],
      boundServiceAccountNamespaces: [`tenant-${PROBE}`],
      policies: [`tenant-${PROBE}`],
      ttl: 3600,
      audience: 'vault',
    });
    assert.deepEqual((await auth.readKubernetesRole(`tenant-${PROBE}`))?.policies, [
      `tenant-${PROBE}`,
    ]);
    await auth.deleteKubernetesRole(`tenant-${PROBE}`);
    await policies.deletePolicy(`tenant-${PROBE}`);

    // Transit keys: create, read, rotate, configure, delete (data keys are not its business).
    const transit = new Transit(op);
    await transit.ensureKey(`tenant-${PROBE}`);
    assert.equal((await transit.rotateKey(`tenant-${PROBE}`)).latestVersion, 2);
    const configured = await transit.configureKey(`tenant-${PROBE}`, { minDecryptionVersion: 2 });
    assert.equal(configured.minDecryptionVersion, 2);
    assert.equal((await new Transit(root).keyInfo(`tenant-${PROBE}`))?.exportable, false);
    await transit.deleteKey(`tenant-${PROBE}`);
    assert.equal(await transit.keyInfo(`tenant-${PROBE}`), undefined);

    // Backup identities: backup-/restore- policies, a backup role bound to its own namespace.
    for (const name of [`backup-${PROBE}`, `restore-${PROBE}`]) {
      await policies.putPolicy(name, hcl);
      assert.equal(await policies.readPolicy(name), hcl);
    }
    await auth.putKubernetesRole(`backup-${PROBE}`, {
      boundServiceAccountNames: [`backup-${PROBE}`],
      boundServiceAccountNamespaces: [OPERATOR_NAMESPACE],
      policies: [`backup-${PROBE}`],
      ttl: 3600,
      maxTtl: 7200,
      audience: 'vault',
    });
    assert.deepEqual(
      (await auth.readKubernetesRole(`backup-${PROBE}`))?.boundServiceAccountNamespaces,
      [OPERATOR_NAMESPACE],
    );
    // A restore token through the token role: exactly the restore policy asked for.
    const minted = await op.write('auth/token/create/tenant-backup-restore', {
      policies: [`restore-${PROBE}`],
    });
    assert.deepEqual(minted?.auth?.policies, [`restore-${PROBE}`]);
    await root.write('auth/token/revoke', { token: minted?.auth?.client_token });
    await auth.deleteKubernetesRole(`backup-${PROBE}`);
    await policies.deletePolicy(`backup-${PROBE}`);
    await policies.deletePolicy(`restore-${PROBE}`);
  });

  test('refuses everything else: sys/, other KV prefixes, its own identity, roles beyond a tenant', async () => {
    await new KvV2(root).writeSecret(`other-${RUN}/x`, { a: 'b' });
    const kv = new KvV2(op);
    await rejectsForbidden(kv.readSecret(`other-${RUN}/x`), 'reading another KV prefix');
    await rejectsForbidden(kv.listSecrets(''), 'listing the KV mount');
    await rejectsForbidden(
      kv.writeSecret(`database-servers/vid-probe-${RUN}`, { username: 'evil' }),
      'writing DatabaseServer admin credentials',
    );
    for (const path of [
      'sys/mounts',
      'sys/auth',
      'sys/policies/acl/root',
      'sys/policies/acl/default',
      `sys/policies/acl/${OPERATOR_ROLE}`,
      'auth/kubernetes/config',
      `auth/kubernetes/role/${OPERATOR_ROLE}`,
      'auth/token/accessors',
      'sys/audit',
    ]) {
      await rejectsForbidden(op.read(path), `GET ${path}`);
    }
    // Names, not contents: the inventory (src/vault/inventory.ts) lists them.
    assert.ok((await op.list('sys/policies/acl')).includes(OPERATOR_ROLE));
    assert.ok((await op.list('auth/kubernetes/role')).includes(OPERATOR_ROLE));
    await rejectsForbidden(op.list('auth/token/accessors'), 'listing token accessors');
    await rejectsForbidden(
      op.write('auth/token/create', { policies: ['default'] }),
      'token create',
    );
    await rejectsForbidden(op.write('sys/mounts/vid-evil', { type: 'kv' }), 'mounting an engine');
    // Its own identity: a Tenant named "operator" maps to these very names.
    await rejectsForbidden(
      new VaultPolicies(op).putPolicy(OPERATOR_ROLE, 'path "*" { capabilities = ["read"] }'),
      'overwriting its own policy',
    );
    await rejectsForbidden(
      op.write(kubernetesRolePath(OPERATOR_ROLE), { bound_service_account_namespaces: ['*'] }),
      'rewriting its own login role',
    );
    // A tenant role can grant only a tenant policy, in a tenant namespace.
    const auth = new KubernetesAuth(op);
    const tenantRole: KubernetesRole = {
      boundServiceAccountNames: ['*'],
      boundServiceAccountNamespaces: [`tenant-${PROBE}`],
      policies: [`tenant-${PROBE}`],
      ttl: 3600,
    };
    for (const [what, role] of [
      ['a role granting root', { ...tenantRole, policies: ['root'] }],
      ['a role granting the operator policy', { ...tenantRole, policies: [OPERATOR_ROLE] }],
      [
        'a role granting a tenant policy and more',
        { ...tenantRole, policies: [`tenant-${PROBE}`, 'default', 'admin'] },
      ],
      [
        'a role bound to kube-system',
        { ...tenantRole, boundServiceAccountNamespaces: ['kube-system'] },
      ],
      ['a role bound to any namespace', { ...tenantRole, boundServiceAccountNamespaces: ['*'] }],
      [
        'a role bound to the operator namespace',
        { ...tenantRole, boundServiceAccountNamespaces: [OPERATOR_NAMESPACE] },
      ],
    ] satisfies [string, KubernetesRole][]) {
      await rejectsForbidden(auth.putKubernetesRole(`tenant-${PROBE}`, role), what);
    }
    await rejectsForbidden(
      op.write(kubernetesRolePath(`tenant-${PROBE}`), {
        ...{
          bound_service_account_names: ['*'],
          bound_service_account_namespaces: [`tenant-${PROBE}`],
        },
        token_policies: [`tenant-${PROBE}`],
        policies: ['root'],
      }),
      'a role granting root through the legacy `policies` field',
    );
    assert.equal(await new KubernetesAuth(root).readKubernetesRole(`tenant-${PROBE}`), undefined);
    // Transit: only tenant keys, and no way to take a key out of Vault.
    await rejectsForbidden(
      new Transit(op).ensureKey(`other-${RUN}`),
      'a Transit key of another name',
    );
    await new Transit(op).ensureKey(`tenant-${PROBE}`);
    await rejectsForbidden(
      op.read(`transit/export/encryption-key/tenant-${PROBE}`),
      'exporting a tenant key',
    );
    await rejectsForbidden(op.read(`transit/backup/tenant-${PROBE}`), 'backing up a tenant key');
    // Nor any way to make a key leave Vault later, or to bring in material it knows.
    for (const [what, path, body] of [
      ['making a key exportable', `transit/keys/tenant-${PROBE}/config`, { exportable: true }],
      ['exportable, even false', `transit/keys/tenant-${PROBE}/config`, { exportable: false }],
      [
        'allowing a plaintext backup',
        `transit/keys/tenant-${PROBE}/config`,
        { allow_plaintext_backup: true },
      ],
      ['creating an exportable key', `transit/keys/tenant-x${PROBE}`, { exportable: 'true' }],
      [
        'importing key material',
        `transit/keys/tenant-x${PROBE}/import`,
        { ciphertext: 'AAAA', type: 'aes256-gcm96' },
      ],
      [
        'importing a key version',
        `transit/keys/tenant-${PROBE}/import_version`,
        { ciphertext: 'AAAA' },
      ],
    ] as const) {
      await rejectsForbidden(op.write(path, body), what);
    }
    assert.equal(await new Transit(root).keyInfo(`tenant-x${PROBE}`), undefined);
    // The operator never holds a data key: no datakey, decrypt, rewrap, encrypt.
    const key = await new Transit(root).generateDataKey(`tenant-${PROBE}`);
    const transit = new Transit(op);
    await rejectsForbidden(transit.generateDataKey(`tenant-${PROBE}`), 'a data key');
    await rejectsForbidden(
      op.write(`transit/datakey/wrapped/tenant-${PROBE}`, {}),
      'a wrapped data key',
    );
    await rejectsForbidden(transit.decryptDataKey(`tenant-${PROBE}`, key.ciphertext), 'decrypt');
    await rejectsForbidden(transit.rewrapDataKey(`tenant-${PROBE}`, key.ciphertext), 'rewrap');
    await rejectsForbidden(
      op.write(`transit/encrypt/tenant-${PROBE}`, { plaintext: 'AAAA' }),
      'encrypt',
    );
    // Backup roles: only backup ServiceAccounts of its own namespace, only backup policies.
    const backupRole: KubernetesRole = {
      boundServiceAccountNames: [`backup-${PROBE}`],
      boundServiceAccountNamespaces: [OPERATOR_NAMESPACE],
      policies: [`backup-${PROBE}`],
      ttl: 3600,
    };
    for (const [what, role] of [
      [
        'a backup role bound to a tenant namespace',
        { ...backupRole, boundServiceAccountNamespaces: [`tenant-${PROBE}`] },
      ],
      [
        'a backup role bound to any namespace',
        { ...backupRole, boundServiceAccountNamespaces: ['*'] },
      ],
      [
        'a backup role for the operator account',
        { ...backupRole, boundServiceAccountNames: [OPERATOR_ROLE] },
      ],
      ['a backup role for any account', { ...backupRole, boundServiceAccountNames: ['*'] }],
      ['a backup role granting the operator policy', { ...backupRole, policies: [OPERATOR_ROLE] }],
      [
        'a backup role granting a restore policy',
        { ...backupRole, policies: [`restore-${PROBE}`] },
      ],
      ['a backup role granting a tenant policy', { ...backupRole, policies: [`tenant-${PROBE}`] }],
    ] satisfies [string, KubernetesRole][]) {
      await rejectsForbidden(auth.putKubernetesRole(`backup-${PROBE}`, role), what);
    }
    assert.equal(await new KubernetesAuth(root).readKubernetesRole(`backup-${PROBE}`), undefined);
    // Tokens: only restore-* policies through the restore token role; no token roles.
    for (const policies of [[OPERATOR_ROLE], ['default'], ['root'], [`tenant-${PROBE}`]])
      await rejectsForbidden(
        op.write('auth/token/create/tenant-backup-restore', { policies }),
        `a token with ${policies.join(',')} through the restore role`,
      );
    await rejectsForbidden(op.write('auth/token/create-orphan', {}), 'orphan token create');
    await rejectsForbidden(
      op.write('auth/token/roles/tenant-backup-restore', { allowed_policies_glob: ['*'] }),
      'widening the restore token role',
    );
  });
});

describe('the token source against the real Vault', () => {
  test('renews at 2/3 of the TTL and logs in again before the max TTL', async () => {
    const role = `vid-source-${RUN}`;
    await shortLivedRole(role, 6, 15);
    const log = memoryLogger();
    const source = new RenewingTokenSource({
      client: root,
      method: kubernetesLogin({ mount: 'kubernetes', role, tokenFiles: [jwtFile] }),
      log,
    });
    const operatorClient = new VaultClient({ address: root.address, tokenProvider: source });
    const kv = new KvV2(operatorClient);
    await new KvV2(root).writeSecret(`tenants/${PROBE}/probe`, { seen: 'yes' });
    const tokens = new Set<string>();
    source.start();
    try {
      const started = Date.now();
      // 22 s: two full cycles of login, renewals, and a login forced by the max TTL.
      while (Date.now() - started < 22_000) {
        assert.equal((await kv.readSecret(`tenants/${PROBE}/probe`))?.data.seen, 'yes');
        tokens.add(await source.token());
        await sleep(500);
      }
      assert.ok(source.counts.renewals >= 3, `renewals: ${source.counts.renewals}`);
      assert.ok(source.counts.logins >= 2, `logins: ${source.counts.logins}`);
      assert.equal(source.counts.loginFailures, 0);
      assert.equal(source.counts.renewalFailures, 0);
      assert.ok(
        log.count(/renewed up to its max TTL; logging in again/) >= 1,
        log.lines.join('\n'),
      );
      assert.ok(tokens.size >= 2, 'a new login gives a new token');
      // The token is in no log line, nor in what inspect shows of the source or client.
      for (const token of tokens) {
        assert.ok(!log.lines.some((line) => line.includes(token)), 'a token is in the log');
        assert.ok(!inspect(source, { showHidden: true, depth: 6 }).includes(token));
        assert.ok(!inspect(operatorClient, { showHidden: true, depth: 6 }).includes(token));
        assert.ok(!JSON.stringify(operatorClient).includes(token));
      }
      assert.ok(!log.lines.some((line) => line.includes(jwt)), 'the JWT is in the log');
    } finally {
      await source.close({ revoke: true });
    }
    // Revoked on close: Vault no longer knows the last token.
    const last = [...tokens].at(-1) ?? '';
    await rejectsForbidden(root.withToken(last).read('auth/token/lookup-self'), 'a revoked token');
  });

  test('a revoked token gets one login and one retry; a real denial gets none', async () => {
    const log = memoryLogger();
    const source = new RenewingTokenSource({
      client: root,
      method: kubernetesLogin({ mount: 'kubernetes', role: OPERATOR_ROLE, tokenFiles: [jwtFile] }),
      log,
    });
    const kv = new KvV2(new VaultClient({ address: root.address, tokenProvider: source }));
    try {
      await new KvV2(root).writeSecret(`tenants/${PROBE}/probe`, { seen: 'again' });
      const first = await source.token();
      assert.equal(source.counts.logins, 1);
      await root.write('auth/token/revoke', { token: first });
      // The request's 403 is retried once, with the token of a new login.
      assert.equal((await kv.readSecret(`tenants/${PROBE}/probe`))?.data.seen, 'again');
      assert.equal(source.counts.logins, 2);
      assert.notEqual(await source.token(), first);
      assert.equal(log.count(/Vault refused the operator token/), 1);
      // A path the policy does not allow: 403, thrown at once, no login.
      await rejectsForbidden(kv.readSecret(`other-${RUN}/x`), 'another prefix');
      assert.equal(source.counts.logins, 2);
    } finally {
      await source.close({ revoke: true });
    }
  });

  test('AppRole: logs in with a role ID and a secret ID read from a file at each login', async () => {
    await root.write(`sys/auth/${APPROLE_MOUNT}`, { type: 'approle' });
    await root.write(`auth/${APPROLE_MOUNT}/role/${OPERATOR_ROLE}`, {
      token_policies: [OPERATOR_ROLE],
      token_ttl: 4,
      token_max_ttl: 60,
      // Each secret ID works once: a second login must read the file again.
      secret_id_num_uses: 1,
    });
    const roleId = (
      await root.read<{ role_id: string }>(`auth/${APPROLE_MOUNT}/role/${OPERATOR_ROLE}/role-id`)
    )?.data?.role_id;
    assert.ok(roleId);
    const newSecretId = async () =>
      (
        await root.write<{ secret_id: string }>(
          `auth/${APPROLE_MOUNT}/role/${OPERATOR_ROLE}/secret-id`,
        )
      )?.data?.secret_id ?? assert.fail('no secret ID');
    const secretIdFile = join(dir, 'secret-id');
    await writeFile(secretIdFile, await newSecretId(), { mode: 0o600 });
    const log = memoryLogger();
    const source = new RenewingTokenSource({
      client: root,
      method: appRoleLogin({ mount: APPROLE_MOUNT, roleId, secretIdFile }),
      log,
    });
    const kv = new KvV2(new VaultClient({ address: root.address, tokenProvider: source }));
    try {
      assert.equal((await kv.readSecret(`tenants/${PROBE}/probe`))?.data.seen, 'again');
      await rejectsForbidden(kv.readSecret(`other-${RUN}/x`), 'another prefix, through AppRole');
      // The first secret ID is used up; a rotated one is picked up by the next login.
      await writeFile(secretIdFile, await newSecretId(), { mode: 0o600 });
      await root.write('auth/token/revoke', { token: await source.token() });
      assert.equal((await kv.readSecret(`tenants/${PROBE}/probe`))?.data.seen, 'again');
      assert.equal(source.counts.logins, 2);
      assert.match(log.lines.join('\n'), /"method":"approle"/);
    } finally {
      await source.close({ revoke: true });
    }
  });

  test('while Vault is unreachable, logins back off; when it is back, one succeeds', async () => {
    const proxy = new VaultProxy(new URL(root.address));
    await proxy.up();
    await proxy.down(); // the port is known, nothing listens on it
    const log = memoryLogger();
    const source = new RenewingTokenSource({
      client: new VaultClient({ address: `http://127.0.0.1:${proxy.port}`, timeoutMs: 2_000 }),
      method: kubernetesLogin({ mount: 'kubernetes', role: OPERATOR_ROLE, tokenFiles: [jwtFile] }),
      log,
      minBackoffMs: 200,
      maxBackoffMs: 1_600,
    });
    try {
      source.start();
      await waitFor('three failed logins', () => source.counts.loginFailures >= 3, {
        timeoutMs: 10_000,
      });
      // A request meanwhile fails at once with the reason, without a login of its own.
      const failuresBefore = source.counts.loginFailures;
      await assert.rejects(
        source.token(),
        (err: unknown) =>
          err instanceof OperatorError &&
          err.code === ERROR_CODES.NETWORK &&
          /last login failed .*next attempt in/.test(err.message),
      );
      assert.ok(source.counts.loginFailures <= failuresBefore + 1);
      const delays = log.lines
        .filter((line) => line.includes('Vault login failed'))
        .map((line) => (JSON.parse(line) as { retryInMs: number }).retryInMs);
      assert.ok(delays.length >= 3);
      assert.ok(delays[2]! > delays[0]!, `backoff grows: ${delays.join(', ')}`);
      assert.ok(delays.every((d) => d <= 1_600 * 1.2));
      await proxy.up();
      await waitFor('a login once Vault is reachable', () => source.counts.logins === 1, {
        timeoutMs: 10_000,
      });
      const kv = new KvV2(
        new VaultClient({ address: `http://127.0.0.1:${proxy.port}`, tokenProvider: source }),
      );
      assert.equal((await kv.readSecret(`tenants/${PROBE}/probe`))?.data.seen, 'again');
    } finally {
      await source.close({ revoke: true });
      await proxy.down();
    }
  });
});

describe('the operator with its own identity', () => {
  /** Logs in to PostgreSQL with what Vault holds for the tenant. */
  async function vaultCredentialsWork(tenant: string): Promise<boolean> {
    const secret = await new KvV2(root).readSecret<StoredCredentials>(`tenants/${tenant}/database`);
    if (!secret) return false;
    const conn = tenantConnection(secret.data);
    try {
      await conn.connect();
      await conn.query('select 1');
      return true;
    } catch {
      return false;
    } finally {
      await conn.end().catch(() => undefined);
    }
  }

  async function adminSql(tenant: string, sql: string): Promise<void> {
    const server = servers.find((s) => s.region === 'eu-west');
    assert.ok(server, `no eu-west server for ${tenant}`);
    const conn = new pg.Client({
      host: server.host,
      port: server.port,
      user: server.adminUser,
      password: server.adminPassword,
      database: 'postgres',
      ssl: { ca: await readFile(requireEnv('PG_CA_FILE'), 'utf8'), rejectUnauthorized: true },
    });
    await conn.connect();
    try {
      await conn.query(sql);
    } finally {
      await conn.end();
    }
  }

  /** Drift of the operator's Vault and PostgreSQL work, one kind per tenant, each repaired. */
  const drifts: Record<
    string,
    { what: string; make: () => Promise<void>; repaired: () => Promise<boolean> }
  > = {
    'vid-op-0': {
      what: 'the tenant policy deleted in Vault',
      make: () => new VaultPolicies(root).deletePolicy('tenant-vid-op-0'),
      repaired: async () =>
        (await new VaultPolicies(root).readPolicy('tenant-vid-op-0')) !== undefined,
    },
    'vid-op-1': {
      what: 'the tenant login role deleted in Vault',
      make: () => new KubernetesAuth(root).deleteKubernetesRole('tenant-vid-op-1'),
      repaired: async () =>
        (await new KubernetesAuth(root).readKubernetesRole('tenant-vid-op-1')) !== undefined,
    },
    'vid-op-2': {
      what: 'the database password changed behind the operator',
      make: async () => {
        const secret = await new KvV2(root).readSecret<StoredCredentials>(
          'tenants/vid-op-2/database',
        );
        assert.ok(secret);
        await adminSql(
          'vid-op-2',
          `ALTER ROLE "${secret.data.username}" PASSWORD 'changed-by-someone'`,
        );
        assert.equal(await vaultCredentialsWork('vid-op-2'), false);
      },
      repaired: () => vaultCredentialsWork('vid-op-2'),
    },
    'vid-op-3': {
      what: 'the credentials deleted from Vault',
      make: () => new KvV2(root).deleteSecretAllVersions('tenants/vid-op-3/database'),
      repaired: () => vaultCredentialsWork('vid-op-3'),
    },
  };

  test('provisions tenants for minutes on renewed and re-obtained tokens, with no permission error', async (t) => {
    // Short TTLs so that minutes see many renewals and logins forced by the max TTL.
    await root.write(kubernetesRolePath(OPERATOR_ROLE), { token_ttl: 30, token_max_ttl: 90 });
    const role = await new KubernetesAuth(root).readKubernetesRole(OPERATOR_ROLE);
    assert.deepEqual([role?.ttl, role?.maxTtl], [30, 90]);
    servers = await registerLocalDatabaseServers(client);
    operator = await OperatorProcess.start({
      resyncSeconds: 10,
      // No static token: the operator must use its ServiceAccount token.
      env: { VAULT_TOKEN: '', VAULT_K8S_TOKEN_FILE: jwtFile },
    });
    await operator.waitUntilLeader();
    await waitFor(
      'both DatabaseServers reachable',
      async () => {
        for (const server of servers) {
          const live = await client.get<KubeObject & { status?: { reachable?: boolean } }>(
            objectPath(RESOURCES.DatabaseServer, server.name),
          );
          if (live?.status?.reachable !== true) return false;
        }
        return true;
      },
      { timeoutMs: 60_000 },
    );
    const started = Date.now();
    for (const [index, name] of OPERATOR_TENANTS.entries()) {
      const slot = started + index * 40_000;
      await sleep(Math.max(0, slot - Date.now()));
      await createTenant(client, name, { region: 'eu-west', database: { enabled: true } });
      await waitForPhase(client, name, 'Ready', 60_000);
      t.diagnostic(`${name} Ready after ${Math.round((Date.now() - slot) / 1000)} s`);
      const drift = drifts[name];
      if (drift) {
        await drift.make();
        await waitFor(`${name}: ${drift.what}, repaired`, drift.repaired, { timeoutMs: 60_000 });
        t.diagnostic(`${name}: ${drift.what}: repaired`);
      }
    }
    await sleep(Math.max(0, started + 190_000 - Date.now()));
    for (const name of OPERATOR_TENANTS) {
      await waitForPhase(client, name, 'Ready', 30_000);
      assert.equal(await vaultCredentialsWork(name), true, `${name}: Vault's credentials log in`);
    }

    const lines = operator.output;
    const count = (pattern: RegExp) => lines.filter((line) => pattern.test(line)).length;
    t.diagnostic(
      `${count(/"msg":"logged in to Vault"/)} logins, ${count(/"msg":"Vault token renewed"/)} renewals in ${Math.round((Date.now() - started) / 1000)} s`,
    );
    assert.equal(count(/static VAULT_TOKEN/), 0, 'the operator used a static token');
    const logins = lines.filter((line) => line.includes('"msg":"logged in to Vault"'));
    assert.ok(logins.length >= 3, `logins: ${logins.length}`);
    for (const line of logins) assert.match(line, /"policies":\["default","tenant-operator"\]/);
    assert.ok(count(/"reason":"max TTL near"/) >= 2, 'logins forced by the max TTL');
    assert.ok(count(/"msg":"Vault token renewed"/) >= 5, 'renewals');
    for (const bad of [
      /HTTP 403/,
      /permission denied/,
      /Vault login failed/,
      /renewal failed/,
      /refused the operator token/,
    ])
      assert.equal(
        count(bad),
        0,
        `log lines matching ${bad}:\n${lines.filter((l) => bad.test(l)).join('\n')}`,
      );
    assert.equal(count(VAULT_TOKEN_SHAPE), 0, 'a Vault token is in the operator log');
    assert.ok(!lines.some((line) => line.includes(jwt)), 'the service account token is in the log');
  });

  test('erases its tenants with its own identity: the policy allows every step of the purge and the certificate', async () => {
    for (const name of OPERATOR_TENANTS) {
      await eraseTenantAndWait(client, name, 90_000);
      assert.equal(await new KvV2(root).readMetadata(`tenants/${name}/database`), undefined, name);
      assert.equal(await new VaultPolicies(root).readPolicy(`tenant-${name}`), undefined, name);
    }
    assert.ok(operator, 'the operator of the previous test is not running');
    const lines = operator.output;
    const certified = lines.filter((line) => line.includes('"msg":"erasure certificate"'));
    assert.equal(certified.length, OPERATOR_TENANTS.length, 'certificates signed');
    for (const bad of [/HTTP 403/, /permission denied/])
      assert.equal(
        lines.filter((line) => bad.test(line)).length,
        0,
        `log lines matching ${bad}:\n${lines.filter((l) => bad.test(l)).join('\n')}`,
      );
  });
});
