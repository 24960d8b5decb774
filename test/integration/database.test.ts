import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import {
  databaseServerManifest,
  registerLocalDatabaseServers,
  type LocalServer,
} from '../../hack/database-servers.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import { PostgresAdmin } from '../../src/postgres/admin.ts';
import { databaseIdentifiersFor } from '../../src/postgres/identifiers.ts';
import { ownershipMarker } from '../../src/postgres/ownership.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import type { StoredCredentials } from '../../src/tenant/database.ts';
import { VaultClient } from '../../src/vault/client.ts';
import { KubernetesAuth, type VaultLogin } from '../../src/vault/kubernetes-auth.ts';
import { KvV2 } from '../../src/vault/kv.ts';
import { VaultPolicies } from '../../src/vault/policy.ts';
import {
  adminClient,
  createTenant,
  eraseTenantAndWait,
  getTenant,
  kubectl,
  requireEnv,
  waitForPhase,
} from '../support/cluster.ts';
import { OperatorProcess } from '../support/operator.ts';
import { adminRows, dropTenantDatabasesAsAdmin } from '../support/postgres.ts';
import { waitFor } from '../support/wait.ts';

// The tenant database against two real PostgreSQL servers (TLS) and a real
// Vault whose Kubernetes auth talks to the real API server.

let client: KubeClient;
let operator: OperatorProcess;
/** Every operator this file started, killed ones included: the leak test reads all their output. */
const operators: OperatorProcess[] = [];
let servers: LocalServer[];
let ca: string;
const root = () => VaultClient.fromEnv();
const kv = () => new KvV2(root());
const tenants: string[] = [];
/** Vault tokens tenants' workloads got in this file: none may show up anywhere. */
const issuedTokens: string[] = [];

// Tests rotate every few seconds; the operator's default refuses intervals under a minute.
const TEST_OPERATOR_ARGS = ['--min-rotation-interval', '1'];

async function startOperator(
  options: Parameters<typeof OperatorProcess.start>[0] = {},
): Promise<OperatorProcess> {
  const started = await OperatorProcess.start({
    resyncSeconds: 3,
    extraArgs: TEST_OPERATOR_ARGS,
    ...options,
  });
  operators.push(started);
  return started;
}

type Credentials = StoredCredentials;

async function credentials(tenant: string): Promise<Credentials> {
  const secret = await kv().readSecret(`tenants/${tenant}/database`);
  assert.ok(secret, `no credentials in Vault for ${tenant}`);
  return secret.data as unknown as Credentials;
}

async function connect(c: Credentials, dbname = c.dbname): Promise<pg.Client> {
  const conn = new pg.Client({
    host: c.host,
    port: Number(c.port),
    user: c.username,
    password: c.password,
    database: dbname,
    ssl: {
      ca: c.ca,
      rejectUnauthorized: true,
      servername: c.host === '127.0.0.1' ? undefined : c.host,
    },
    connectionTimeoutMillis: 5_000,
  });
  await conn.connect();
  return conn;
}

async function canConnect(c: Credentials, dbname?: string): Promise<true | string> {
  try {
    const conn = await connect(c, dbname);
    await conn.query('select 1');
    await conn.end();
    return true;
  } catch (err: unknown) {
    return (err as Error).message;
  }
}

async function newTenant(name: string, spec: Record<string, unknown>): Promise<void> {
  tenants.push(name);
  await createTenant(client, name, { database: { enabled: true }, ...spec });
}

/**
 * What a tenant of this file leaves outside the cluster (deleting a Tenant
 * does not purge yet), removed as the servers' and Vault's admin would: a
 * rerun on the same cluster meets leftovers of an earlier Tenant otherwise.
 */
async function removeLeftovers(name: string): Promise<void> {
  await dropTenantDatabasesAsAdmin(servers, [name]);
  await kv().deleteSecretAllVersions(`tenants/${name}/database`);
  await new VaultPolicies(root()).deletePolicy(`tenant-${name}`);
  await new KubernetesAuth(root()).deleteKubernetesRole(`tenant-${name}`);
}

const FILE_TENANTS = [
  'dbt-one',
  'dbt-two',
  'dbt-us',
  'dbt-nowhere',
  'dbt-crash',
  'dbt-secret',
  'dbt-first',
  'dbt-second',
  'dbt-waiting',
  `dbt-${'x'.repeat(50)}-z`,
  'dbt-failpoint',
  'dbt-hasty',
  'dbt-frole',
  'dbt-fdb',
  'dbt-fpol',
  'dbt-fkv',
  'dbt-frv',
  'dbt-again',
  'dbt-leak',
];

/** A Vault token for the default service account of the tenant's namespace, as its apps get one. */
async function tenantLogin(tenant: string): Promise<VaultLogin> {
  const token = kubectl([
    'create',
    'token',
    'default',
    '-n',
    `tenant-${tenant}`,
    '--audience',
    'vault',
  ]);
  assert.equal(token.status, 0, token.stderr);
  const auth = new KubernetesAuth(new VaultClient({ address: requireEnv('VAULT_ADDR') }));
  const login = await auth.loginWithKubernetes(`tenant-${tenant}`, token.stdout.trim());
  issuedTokens.push(login.clientToken);
  return login;
}

function databaseCondition(tenant: TenantObjectLike | undefined) {
  return tenant?.status?.conditions?.find((c) => c.type === 'DatabaseReady');
}

type TenantObjectLike = Awaited<ReturnType<typeof getTenant>>;

before(async () => {
  client = await adminClient();
  ca = await readFile(requireEnv('PG_CA_FILE'), 'utf8');
  servers = await registerLocalDatabaseServers(client);
  operator = await startOperator();
  await operator.waitUntilLeader();
  // A rerun on the same cluster: the operator lets go of old Tenants, then their leftovers go.
  for (const name of FILE_TENANTS) {
    if (await getTenant(client, name)) await eraseTenantAndWait(client, name);
    await removeLeftovers(name);
  }
  await waitFor('both DatabaseServers reachable', async () => {
    for (const server of servers) {
      const live = await client.get<KubeObject & { status?: { reachable?: boolean } }>(
        objectPath(RESOURCES.DatabaseServer, server.name),
      );
      if (live?.status?.reachable !== true) return false;
    }
    return true;
  });
  await newTenant('dbt-one', { region: 'eu-west' });
  await newTenant('dbt-two', { region: 'eu-west' });
  await newTenant('dbt-us', { region: 'us-east' });
  // Ages while the other tests run: the crash test needs credentials older than its interval.
  await newTenant('dbt-failpoint', { region: 'us-east' });
  for (const name of ['dbt-one', 'dbt-two', 'dbt-us', 'dbt-failpoint'])
    await waitForPhase(client, name, 'Ready', 60_000);
});

after(async () => {
  for (const name of tenants) await eraseTenantAndWait(client, name).catch(() => undefined);
  for (const name of ['pg-tiny', 'pg-flaky'])
    await client.delete(objectPath(RESOURCES.DatabaseServer, name));
  await operator.stop();
  for (const name of FILE_TENANTS) await removeLeftovers(name);
  await client.close();
});

describe('provisioning', () => {
  test('the database is placed by region and reported in status', async () => {
    const a = await getTenant(client, 'dbt-one');
    assert.equal(a?.status?.database?.server, 'pg-eu');
    assert.equal(a?.status?.database?.name, 't_dbt_one');
    assert.equal(a?.status?.vaultPath, 'secret/data/tenants/dbt-one/database');
    const us = await getTenant(client, 'dbt-us');
    assert.equal(us?.status?.database?.server, 'pg-us');
    for (const type of ['DatabaseReady', 'CredentialsStored']) {
      assert.equal(a?.status?.conditions?.find((c) => c.type === type)?.status, 'True', type);
    }
  });

  test("the tenant's apps may reach their database server and Vault, nothing else", async () => {
    const policy = await client.get<KubeObject & { spec: { egress: unknown[] } }>(
      objectPath(RESOURCES.NetworkPolicy, 'allow-database-and-vault', 'tenant-dbt-one'),
    );
    const vault = new URL(requireEnv('VAULT_ADDR'));
    assert.deepEqual(policy?.spec.egress, [
      {
        to: [{ ipBlock: { cidr: '127.0.0.1/32' } }],
        ports: [{ protocol: 'TCP', port: servers[0]!.port }],
      },
      {
        to: [{ ipBlock: { cidr: '127.0.0.1/32' } }],
        ports: [{ protocol: 'TCP', port: Number(vault.port) }],
      },
    ]);
  });

  test('credentials from Vault connect over TLS with verify-full', async () => {
    const c = await credentials('dbt-one');
    assert.equal(c.sslmode, 'verify-full');
    assert.equal(c.dbname, 't_dbt_one');
    assert.equal(await canConnect(c), true);
    assert.ok(c.password.length >= 40, 'password is 32 random bytes, encoded');
  });

  test("tenant A's credentials cannot open B's database", async () => {
    const a = await credentials('dbt-one');
    const result = await canConnect(a, 't_dbt_two');
    assert.notEqual(result, true);
    assert.match(String(result), /permission denied for database|not permitted/);
  });

  test("A's service account logs in to Vault, reads A's secret and is refused B's", async () => {
    const token = kubectl([
      'create',
      'token',
      'default',
      '-n',
      'tenant-dbt-one',
      '--audience',
      'vault',
    ]);
    assert.equal(token.status, 0, token.stderr);
    const auth = new KubernetesAuth(new VaultClient({ address: requireEnv('VAULT_ADDR') }));
    const login = await auth.loginWithKubernetes('tenant-dbt-one', token.stdout.trim());
    const tenantKv = new KvV2(auth.clientFor(login));
    const own = await tenantKv.readSecret('tenants/dbt-one/database');
    assert.equal(own?.data.dbname, 't_dbt_one');
    await assert.rejects(tenantKv.readSecret('tenants/dbt-two/database'), /403|permission denied/i);
    // And B's token cannot use A's role.
    const tokenB = kubectl([
      'create',
      'token',
      'default',
      '-n',
      'tenant-dbt-two',
      '--audience',
      'vault',
    ]);
    await assert.rejects(
      auth.loginWithKubernetes('tenant-dbt-one', tokenB.stdout.trim()),
      /403|permission denied|not authorized|namespace not authorized/i,
    );
  });

  test('no server in the region: DatabaseReady=False says so, nothing is created', async () => {
    await newTenant('dbt-nowhere', { region: 'ap-south' });
    const tenant = await waitFor('the placement condition', async () => {
      const t = await getTenant(client, 'dbt-nowhere');
      const cond = t?.status?.conditions?.find((c) => c.type === 'DatabaseReady');
      return cond?.reason === 'NoServerInRegion' ? t : undefined;
    });
    assert.equal(tenant.status?.phase, 'Provisioning');
    assert.equal(tenant.status?.database, undefined);
    assert.equal(await kv().readSecret('tenants/dbt-nowhere/database'), undefined);
  });
});

describe('suspension and drift', () => {
  test('suspension revokes login and ends sessions; reactivation restores', async () => {
    const c = await credentials('dbt-two');
    const session = await connect(c);
    // The server ends this session on purpose; the client reports that as an error event.
    session.on('error', () => undefined);
    await client.mergePatch(objectPath(RESOURCES.Tenant, 'dbt-two'), {
      spec: { state: 'Suspended' },
    });
    await waitForPhase(client, 'dbt-two', 'Suspended');
    await waitFor('the open session to be ended', async () => {
      try {
        await session.query('select 1');
        return false;
      } catch {
        return true;
      }
    });
    assert.notEqual(await canConnect(c), true);
    await client.mergePatch(objectPath(RESOURCES.Tenant, 'dbt-two'), { spec: { state: 'Active' } });
    await waitForPhase(client, 'dbt-two', 'Ready');
    assert.equal(await canConnect(await credentials('dbt-two')), true);
  });

  test('a password changed behind our back is repaired from Vault', async () => {
    const c = await credentials('dbt-one');
    await adminRows(servers[0]!, `ALTER ROLE "${c.username}" PASSWORD 'someone-else'`);
    assert.notEqual(await canConnect(c), true);
    await waitFor('the role to be repaired', async () => (await canConnect(c)) === true, {
      timeoutMs: 20_000,
    });
  });

  test('a dropped login role is recreated with the password Vault holds', async () => {
    const c = await credentials('dbt-two');
    await adminRows(servers[0]!, `DROP ROLE "${c.username}"`);
    assert.notEqual(await canConnect(c), true);
    await waitFor('the role to be recreated', async () => (await canConnect(c)) === true, {
      timeoutMs: 20_000,
    });
  });

  test('a dropped database is recreated empty, with a Warning event', async () => {
    await adminRows(servers[0]!, 'DROP DATABASE t_dbt_one WITH (FORCE)');
    await waitFor(
      'the database to be back',
      async () => (await canConnect(await credentials('dbt-one'))) === true,
      {
        timeoutMs: 20_000,
      },
    );
    await waitFor('a Warning event about the recreated database', async () => {
      const events = await client.request<{ items: { reason: string; type: string }[] }>(
        'GET',
        '/api/v1/namespaces/default/events',
        { query: { fieldSelector: 'involvedObject.kind=Tenant,involvedObject.name=dbt-one' } },
      );
      return events.items.some((e) => e.reason === 'DatabaseRecreated' && e.type === 'Warning');
    });
  });
});

describe('rotation', () => {
  test('a client that reads Vault and connects throughout a rotation never fails after the switch', async () => {
    const before = await credentials('dbt-us');
    await client.mergePatch(objectPath(RESOURCES.Tenant, 'dbt-us'), {
      spec: { database: { rotationInterval: '4s' } },
    });
    const failures: string[] = [];
    let attempts = 0;
    const users = new Set<string>();
    const deadline = Date.now() + 12_000;
    while (Date.now() < deadline) {
      const c = await credentials('dbt-us');
      users.add(c.username);
      const result = await canConnect(c);
      attempts++;
      if (result !== true) failures.push(result);
      await sleep(100);
    }
    await client.mergePatch(objectPath(RESOURCES.Tenant, 'dbt-us'), {
      spec: { database: { rotationInterval: '30d' } },
    });
    assert.ok(users.size >= 2, `no rotation happened (${[...users].join(', ')})`);
    assert.deepEqual(failures, [], `${failures.length} of ${attempts} connections failed`);
    assert.notEqual((await credentials('dbt-us')).password, before.password);
  });
});

describe('retirement', () => {
  test('a retired role cannot be brought back from a session it kept open', async () => {
    const old = await credentials('dbt-us');
    // A session kept open across the rotation, as an intruder with the old password would.
    const kept = await connect(old);
    kept.on('error', () => undefined);
    await client.mergePatch(objectPath(RESOURCES.Tenant, 'dbt-us'), {
      spec: { database: { rotationInterval: '20s' } },
    });
    try {
      const rotated = await waitFor('a rotation', async () => {
        const c = await credentials('dbt-us');
        return c.username !== old.username ? c : undefined;
      });
      await waitFor('the old role to be retired (10 s grace)', async () => {
        const t = await getTenant(client, 'dbt-us');
        return (
          t?.status?.database?.lastRotated === rotated.rotatedAt &&
          t.status.database.standbyRetired === true
        );
      });
    } finally {
      await client.mergePatch(objectPath(RESOURCES.Tenant, 'dbt-us'), {
        spec: { database: { rotationInterval: '30d' } },
      });
    }
    // Any role may set its own password; the session is still open.
    await kept.query('SET ROLE NONE'); // sessions start as the owner role
    await kept.query(`ALTER ROLE "${old.username}" PASSWORD 'known-to-the-intruder'`);
    await kept.end();
    const again = { ...old, password: 'known-to-the-intruder' };
    assert.match(String(await canConnect(again)), /not permitted to log in/);
    await sleep(4_000); // a resync later, still out
    assert.match(String(await canConnect(again)), /not permitted to log in/);
    assert.equal(await canConnect(await credentials('dbt-us')), true);
  });
});

describe('crash between role and secret', () => {
  test('a role created without a Vault secret ends in one working password', async () => {
    // The state a crash right after "role created" leaves, made by the same
    // code the operator runs: roles exist with a password nobody kept, and
    // Vault holds nothing. The roles carry this Tenant's marker, so the
    // Tenant exists first, where no server can take it.
    await newTenant('dbt-crash', { region: 'nowhere' });
    const tenant = await waitFor('dbt-crash to wait for a server', async () => {
      const t = await getTenant(client, 'dbt-crash');
      return databaseCondition(t)?.reason === 'NoServerInRegion' ? t : undefined;
    });
    const uid = tenant.metadata.uid ?? '';
    const claim = ownershipMarker('dbt-crash', uid);
    const server = servers[0]!;
    const admin = new PostgresAdmin({
      host: server.host,
      port: server.port,
      user: server.adminUser,
      password: server.adminPassword,
      caCertificate: ca,
    });
    const ids = databaseIdentifiersFor('dbt-crash');
    await admin.ensureOwnerRole(ids.ownerRole, claim);
    await admin.ensureLoginRole(ids.loginRoles[0], ids.ownerRole, claim, 'lost-in-the-crash');
    await admin.close();
    await client.mergePatch(objectPath(RESOURCES.Tenant, 'dbt-crash'), {
      spec: { region: 'eu-west' },
    });
    await waitForPhase(client, 'dbt-crash', 'Ready', 60_000);
    const c = await credentials('dbt-crash');
    assert.equal(await canConnect(c), true);
    assert.notEqual(c.password, 'lost-in-the-crash');
  });
});

describe('delivery as a Secret', () => {
  test('VaultAndSecret writes the same credentials into the tenant namespace; Vault alone removes it', async () => {
    await newTenant('dbt-secret', {
      region: 'us-east',
      database: { enabled: true, delivery: 'VaultAndSecret' },
    });
    await waitForPhase(client, 'dbt-secret', 'Ready', 60_000);
    const c = await credentials('dbt-secret');
    const secret = await waitFor('the credentials Secret', () =>
      client.get<KubeObject & { data?: Record<string, string> }>(
        objectPath(RESOURCES.Secret, 'database-credentials', 'tenant-dbt-secret'),
      ),
    );
    assert.equal(Buffer.from(secret.data?.password ?? '', 'base64').toString(), c.password);
    // A key slipped into it is drift like any other: the Secret is put back exactly.
    const patched = kubectl(
      [
        '-n',
        'tenant-dbt-secret',
        'patch',
        'secret',
        'database-credentials',
        '--type=merge',
        '-p',
        '{"stringData":{"extra":"x"}}',
      ],
      undefined,
      { as: 'break-glass' },
    );
    assert.equal(patched.status, 0, patched.stderr);
    const repaired = await waitFor(
      'the added key to be removed',
      async () => {
        const now = await client.get<KubeObject & { data?: Record<string, string> }>(
          objectPath(RESOURCES.Secret, 'database-credentials', 'tenant-dbt-secret'),
        );
        return now?.data && !('extra' in now.data) ? now : undefined;
      },
      { timeoutMs: 20_000 },
    );
    assert.deepEqual(repaired.data, secret.data);
    await client.mergePatch(objectPath(RESOURCES.Tenant, 'dbt-secret'), {
      spec: { database: { delivery: 'Vault' } },
    });
    await waitFor(
      'the Secret to be removed',
      async () =>
        !(await client.get(
          objectPath(RESOURCES.Secret, 'database-credentials', 'tenant-dbt-secret'),
        )),
    );
  });
});

describe('server capacity and reachability', () => {
  async function addServer(name: string, region: string, port: number, maxDatabases: number) {
    const eu = servers[0]!;
    const manifest = databaseServerManifest({ ...eu, name, region, port }, maxDatabases);
    // Same admin credentials as pg-eu: it is the same PostgreSQL behind another name.
    await client.apply({
      ...manifest,
      spec: { ...manifest.spec, adminCredentialsVaultPath: `database-servers/${eu.name}` },
    });
  }

  test('a full server places no more databases, and says so', async () => {
    await addServer('pg-tiny', 'tiny', servers[0]!.port, 1);
    await newTenant('dbt-first', { region: 'tiny' });
    await waitForPhase(client, 'dbt-first', 'Ready', 60_000);
    await newTenant('dbt-second', { region: 'tiny' });
    const second = await waitFor('NoCapacity', async () => {
      const t = await getTenant(client, 'dbt-second');
      return t?.status?.conditions?.find((c) => c.reason === 'NoCapacity') ? t : undefined;
    });
    assert.match(
      second.status?.conditions?.find((c) => c.type === 'DatabaseReady')?.message ?? '',
      /full/,
    );
    assert.equal(await kv().readSecret('tenants/dbt-second/database'), undefined);
  });

  test('an unreachable server is reported, and tenants wait until it is back', async () => {
    const closedPort = 1; // nothing listens on port 1 on loopback
    await addServer('pg-flaky', 'flaky', closedPort, 10);
    await waitFor('pg-flaky reported unreachable', async () => {
      const live = await client.get<
        KubeObject & { status?: { reachable?: boolean; lastError?: string } }
      >(objectPath(RESOURCES.DatabaseServer, 'pg-flaky'));
      return live?.status?.reachable === false && Boolean(live.status.lastError);
    });
    await newTenant('dbt-waiting', { region: 'flaky' });
    await waitFor('NoServerReachable', async () => {
      const t = await getTenant(client, 'dbt-waiting');
      return t?.status?.conditions?.some((c) => c.reason === 'NoServerReachable');
    });
    await client.mergePatch(objectPath(RESOURCES.DatabaseServer, 'pg-flaky'), {
      spec: { port: servers[0]!.port },
    });
    await waitForPhase(client, 'dbt-waiting', 'Ready', 60_000);
    assert.equal(await canConnect(await credentials('dbt-waiting')), true);
  });
});

describe('long names', () => {
  test('a 56-character tenant name gets distinct identifiers of at most 63 bytes that work', async () => {
    const name = `dbt-${'x'.repeat(50)}-z`;
    assert.equal(name.length, 56);
    await newTenant(name, { region: 'us-east' });
    const tenant = await waitForPhase(client, name, 'Ready', 60_000);
    const dbname = tenant.status?.database?.name ?? '';
    assert.ok(Buffer.byteLength(dbname) <= 63, dbname);
    assert.equal(await canConnect(await credentials(name)), true);
  });
});

describe('hostile password verifiers', () => {
  async function storedVerifier(role: string): Promise<string> {
    const [row] = await adminRows<{ rolpassword: string }>(
      servers[0]!,
      'SELECT rolpassword FROM pg_authid WHERE rolname = $1',
      [role],
    );
    assert.ok(row, `role ${role} has no row in pg_authid`);
    return row.rolpassword;
  }

  const salt = Buffer.alloc(16, 7).toString('base64');
  const key = Buffer.alloc(32, 9).toString('base64');
  for (const [what, verifier] of [
    // 2^30 PBKDF2 rounds: minutes of CPU for whoever checks a password against it.
    ['an iteration count of 2^30', `SCRAM-SHA-256$1073741824:${salt}$${key}:${key}`],
    ['a verifier that does not parse', 'md5' + 'e'.repeat(32)],
  ] as const) {
    test(`${what} on the current role is replaced within seconds`, async () => {
      const c = await credentials('dbt-one');
      // A tenant's session may do this (a role may set its own password), but
      // ALTER ROLE itself runs PBKDF2 on the verifier (the server checks it
      // against the empty password) and would stall for minutes: the same
      // stored state is written into the catalog directly.
      await adminRows(servers[0]!, 'UPDATE pg_authid SET rolpassword = $1 WHERE rolname = $2', [
        verifier,
        c.username,
      ]);
      assert.equal(await storedVerifier(c.username), verifier);
      const started = Date.now();
      // Polled in the catalog: a client logging in against 2^30 rounds would stall itself.
      await waitFor(
        'the verifier to be replaced',
        async () => (await storedVerifier(c.username)) !== verifier,
        { timeoutMs: 15_000 },
      );
      assert.ok(Date.now() - started < 15_000);
      // The operator stayed responsive, and the credentials in Vault log in again.
      const health = await operator.get('/healthz');
      assert.equal(health.status, 200);
      assert.equal(await canConnect(await credentials('dbt-one')), true);
    });
  }
});

describe('operator limits on tenant credentials', () => {
  test('tenant Vault tokens live an hour and renew to at most four', async () => {
    const role = await new KubernetesAuth(root()).readKubernetesRole('tenant-dbt-one');
    assert.equal(role?.ttl, 3600);
    assert.equal(role?.maxTtl, 4 * 3600);
    assert.equal(role?.period, 0);
    assert.equal(role?.explicitMaxTtl, 0);
    const login = await tenantLogin('dbt-one');
    assert.ok(
      login.leaseDurationSeconds > 0 && login.leaseDurationSeconds <= 3600,
      `token TTL ${login.leaseDurationSeconds}s`,
    );
    const tenantClient = new KubernetesAuth(root()).clientFor(login);
    const renewed = await tenantClient.write('auth/token/renew-self', { increment: '100h' });
    const renewedTtl = renewed?.auth?.lease_duration ?? Number.NaN;
    assert.ok(renewedTtl > 0 && renewedTtl <= 4 * 3600, `renewed TTL ${renewedTtl}s`);
  });

  test('a rotation interval under the minimum is refused, naming the field, and nothing is made', async () => {
    // The operator's default minimum (60 s), not the tests' lowered one.
    await operator.stop();
    const strict = await OperatorProcess.start({ resyncSeconds: 3 });
    operators.push(strict);
    try {
      await strict.waitUntilLeader();
      await newTenant('dbt-hasty', {
        region: 'eu-west',
        database: { enabled: true, rotationInterval: '59s' },
      });
      const refused = await waitFor('InvalidSpec', async () => {
        const cond = databaseCondition(await getTenant(client, 'dbt-hasty'));
        return cond?.reason === 'InvalidSpec' ? cond : undefined;
      });
      assert.equal(refused.status, 'False');
      assert.match(refused.message, /spec\.database\.rotationInterval/);
      assert.match(refused.message, /60s/);
      const tenant = await getTenant(client, 'dbt-hasty');
      assert.equal(tenant?.status?.database, undefined, 'placed anyway');
      assert.equal(await kv().readMetadata('tenants/dbt-hasty/database'), undefined);
      const ids = databaseIdentifiersFor('dbt-hasty');
      const roles = await adminRows(servers[0]!, 'SELECT 1 FROM pg_roles WHERE rolname = $1', [
        ids.ownerRole,
      ]);
      assert.deepEqual(roles, []);
      // At the minimum it is accepted.
      await client.mergePatch(objectPath(RESOURCES.Tenant, 'dbt-hasty'), {
        spec: { database: { rotationInterval: '60s' } },
      });
      await waitForPhase(client, 'dbt-hasty', 'Ready', 60_000);
      // Rotating every minute, it would write to Vault in later tests.
      await client.mergePatch(objectPath(RESOURCES.Tenant, 'dbt-hasty'), {
        spec: { database: { rotationInterval: '30d' } },
      });
    } finally {
      await strict.stop();
      operator = await startOperator();
      await operator.waitUntilLeader();
    }
  });
});

describe('crash between the Vault write and the status write', () => {
  const name = 'dbt-failpoint';
  const INTERVAL_SECONDS = 30;

  test('the restarted operator keeps the rotation Vault holds: no second flip', async () => {
    const first = await credentials(name);
    assert.ok(first.rotatedAt, 'Vault records when the login role took over');
    const before = await getTenant(client, name);
    assert.equal(before?.status?.database?.lastRotated, first.rotatedAt);
    // Old enough that the shorter interval makes a rotation due at once.
    const wait = Date.parse(first.rotatedAt) + INTERVAL_SECONDS * 1000 + 500 - Date.now();
    if (wait > 0) await sleep(wait);

    await operator.stop();
    try {
      await client.mergePatch(objectPath(RESOURCES.Tenant, name), {
        spec: { database: { rotationInterval: `${INTERVAL_SECONDS}s` } },
      });
      // Test-only fault injection: this operator SIGKILLs itself right after
      // its first credentials write to Vault, before any status write.
      const doomed = await startOperator({
        env: { TENANT_OPERATOR_FAILPOINTS: 'after-credentials-write' },
      });
      await waitFor('the failpoint to kill the operator', () => !doomed.alive, {
        timeoutMs: 60_000,
      });
      assert.ok(
        doomed.output.some((line) => line.includes('failpoint after-credentials-write')),
        'the operator died of something else',
      );
      const rotated = await credentials(name);
      assert.notEqual(rotated.username, first.username, 'the rotation did not reach Vault');
      const rotatedVersion = (await kv().readMetadata(`tenants/${name}/database`))?.currentVersion;
      const crashed = await getTenant(client, name);
      assert.equal(crashed?.status?.database?.lastRotated, first.rotatedAt, 'status was written');
      // The application moved to the new role already.
      assert.equal(await canConnect(rotated), true);

      operator = await startOperator();
      await operator.waitUntilLeader();
      const consistent = await waitFor('status to agree with Vault, or a second flip', async () => {
        const t = await getTenant(client, name);
        if ((await credentials(name)).username !== rotated.username) return { flipped: true, t };
        return t?.status?.database?.lastRotated === rotated.rotatedAt
          ? { flipped: false, t }
          : undefined;
      });
      assert.equal(consistent.flipped, false, 'the restarted operator rotated again');
      // Only meaningful before the next legitimate rotation is due.
      assert.ok(
        Date.now() < Date.parse(rotated.rotatedAt) + INTERVAL_SECONDS * 1000,
        'the restart took longer than the rotation interval: the test proves nothing',
      );
      const after = await credentials(name);
      assert.deepEqual(
        { username: after.username, password: after.password, rotatedAt: after.rotatedAt },
        { username: rotated.username, password: rotated.password, rotatedAt: rotated.rotatedAt },
        'the restarted operator rotated again',
      );
      assert.equal(
        (await kv().readMetadata(`tenants/${name}/database`))?.currentVersion,
        rotatedVersion,
      );
      assert.equal(await canConnect(after), true);
      assert.equal(consistent.t?.status?.database?.lastRotated, after.rotatedAt);
      // Status never learnt of the rotation, so the previous role is retired after its grace period.
      await waitFor(
        'the previous role to be retired',
        async () => (await getTenant(client, name))?.status?.database?.standbyRetired === true,
        { timeoutMs: INTERVAL_SECONDS * 1000 },
      );
      assert.notEqual(await canConnect(first), true, 'the previous role still logs in');
      assert.equal((await credentials(name)).username, rotated.username);
      assert.equal(await canConnect(await credentials(name)), true);
    } finally {
      if (!operator.alive) {
        operator = await startOperator();
        await operator.waitUntilLeader();
      }
      await client.mergePatch(objectPath(RESOURCES.Tenant, name), {
        spec: { database: { rotationInterval: '30d' } },
      });
    }
  });
});

describe("ownership: never adopt what is not this tenant's", () => {
  const euServer = () => servers[0]!;

  async function conflictOf(name: string, reason: 'DatabaseConflict' | 'VaultConflict') {
    return waitFor(`${name} to report ${reason}`, async () => {
      const cond = databaseCondition(await getTenant(client, name));
      return cond?.reason === reason ? cond : undefined;
    });
  }

  /** The tenant's own objects that the operator would have made: none may exist. */
  async function assertNothingMadeFor(name: string, except: string[] = []): Promise<void> {
    const ids = databaseIdentifiersFor(name);
    const roles = await adminRows<{ rolname: string }>(
      euServer(),
      'SELECT rolname FROM pg_roles WHERE rolname = ANY($1::text[]) ORDER BY rolname',
      [[ids.ownerRole, ...ids.loginRoles]],
    );
    const databases = await adminRows<{ datname: string }>(
      euServer(),
      'SELECT datname FROM pg_database WHERE datname = $1',
      [ids.database],
    );
    const made = [
      ...roles.map((r) => `role ${r.rolname}`),
      ...databases.map((d) => `database ${d.datname}`),
    ];
    if (await kv().readMetadata(`tenants/${name}/database`)) made.push('secret');
    if (await new VaultPolicies(root()).readPolicy(`tenant-${name}`)) made.push('policy');
    if (await new KubernetesAuth(root()).readKubernetesRole(`tenant-${name}`))
      made.push('auth role');
    assert.deepEqual(
      made.filter((m) => !except.includes(m)),
      [],
    );
  }

  test("a role of the tenant's name made by someone else", async () => {
    await adminRows(euServer(), 'CREATE ROLE t_dbt_frole_a LOGIN');
    await newTenant('dbt-frole', { region: 'eu-west' });
    const cond = await conflictOf('dbt-frole', 'DatabaseConflict');
    assert.equal(cond.status, 'False');
    assert.match(cond.message, /on DatabaseServer pg-eu, role t_dbt_frole_a;/);
    assert.doesNotMatch(cond.message, /t_dbt_frole_b/);
    await assertNothingMadeFor('dbt-frole', ['role t_dbt_frole_a']);
    const [row] = await adminRows<{ marker: string | null; rolcanlogin: boolean }>(
      euServer(),
      "SELECT shobj_description(oid, 'pg_authid') AS marker, rolcanlogin FROM pg_roles WHERE rolname = 't_dbt_frole_a'",
    );
    assert.deepEqual({ ...row }, { marker: null, rolcanlogin: true });
  });

  test("a database of the tenant's name owned by someone else", async () => {
    await adminRows(euServer(), 'CREATE DATABASE t_dbt_fdb');
    await newTenant('dbt-fdb', { region: 'eu-west' });
    const cond = await conflictOf('dbt-fdb', 'DatabaseConflict');
    assert.match(cond.message, /database t_dbt_fdb \(owned by role /);
    await assertNothingMadeFor('dbt-fdb', ['database t_dbt_fdb']);
  });

  test("a Vault policy of the tenant's name made by someone else", async () => {
    const foreign = 'path "secret/data/shared/*" {\n  capabilities = ["read", "update"]\n}\n';
    await new VaultPolicies(root()).putPolicy('tenant-dbt-fpol', foreign);
    await newTenant('dbt-fpol', { region: 'eu-west' });
    const cond = await conflictOf('dbt-fpol', 'VaultConflict');
    assert.match(cond.message, /Vault policy tenant-dbt-fpol/);
    assert.equal(await new VaultPolicies(root()).readPolicy('tenant-dbt-fpol'), foreign);
    await assertNothingMadeFor('dbt-fpol', ['policy']);
  });

  test("a Vault secret at the tenant's path written by someone else", async () => {
    const theirs = { username: 'someone', password: 'not-the-tenants' };
    await kv().writeSecret('tenants/dbt-fkv/database', theirs);
    await newTenant('dbt-fkv', { region: 'eu-west' });
    const cond = await conflictOf('dbt-fkv', 'VaultConflict');
    assert.match(cond.message, /Vault secret secret\/data\/tenants\/dbt-fkv\/database/);
    const still = await kv().readSecret('tenants/dbt-fkv/database');
    assert.deepEqual({ version: still?.version, data: still?.data }, { version: 1, data: theirs });
    await assertNothingMadeFor('dbt-fkv', ['secret']);
  });

  test("a Vault Kubernetes auth role of the tenant's name made by someone else", async () => {
    await new KubernetesAuth(root()).putKubernetesRole('tenant-dbt-frv', {
      boundServiceAccountNames: ['*'],
      boundServiceAccountNamespaces: ['tenant-dbt-frv'],
      policies: ['default'],
      ttl: 60,
    });
    await newTenant('dbt-frv', { region: 'eu-west' });
    const cond = await conflictOf('dbt-frv', 'VaultConflict');
    assert.match(cond.message, /Vault Kubernetes auth role tenant-dbt-frv/);
    assert.deepEqual(
      (await new KubernetesAuth(root()).readKubernetesRole('tenant-dbt-frv'))?.policies,
      ['default'],
    );
    await assertNothingMadeFor('dbt-frv', ['auth role']);
  });

  test('a re-created Tenant meets the leftovers of the old one: a conflict, not the leftovers', async () => {
    await newTenant('dbt-again', { region: 'eu-west' });
    const first = await waitForPhase(client, 'dbt-again', 'Ready', 60_000);
    const leftover = await kv().readSecret<StoredCredentials>('tenants/dbt-again/database');
    assert.ok(leftover);
    const leftoverMetadata = await kv().readMetadata('tenants/dbt-again/database');
    assert.equal(leftoverMetadata?.customMetadata.uid, first.metadata.uid);
    // Leftovers, as a Tenant let go without its erasure leaves them (its
    // finalizer removed by hand): the new Tenant must not inherit them.
    await client.delete(objectPath(RESOURCES.Tenant, 'dbt-again'));
    await client.jsonPatch(objectPath(RESOURCES.Tenant, 'dbt-again'), [
      { op: 'remove', path: '/metadata/finalizers' },
    ]);
    await waitFor(
      'the old tenant and its namespace to be gone',
      async () =>
        !(await getTenant(client, 'dbt-again')) &&
        !(await client.get(objectPath(RESOURCES.Namespace, 'tenant-dbt-again'))),
      { timeoutMs: 60_000 },
    );

    await newTenant('dbt-again', { region: 'eu-west' });
    const cond = await conflictOf('dbt-again', 'DatabaseConflict');
    const second = await getTenant(client, 'dbt-again');
    assert.notEqual(second?.metadata.uid, first.metadata.uid);
    assert.match(cond.message, new RegExp(`uid ${second?.metadata.uid ?? 'missing'}`));
    assert.match(
      cond.message,
      /on DatabaseServer pg-eu, role t_dbt_again, role t_dbt_again_a, role t_dbt_again_b, database t_dbt_again/,
    );
    // Nothing of the old tenant was taken over or changed.
    const after = await kv().readSecret<StoredCredentials>('tenants/dbt-again/database');
    assert.deepEqual(
      { version: after?.version, data: after?.data },
      { version: leftover.version, data: leftover.data },
    );
    assert.equal(
      (await kv().readMetadata('tenants/dbt-again/database'))?.customMetadata.uid,
      first.metadata.uid,
    );
    assert.equal(second?.status?.vaultPath, undefined);
    const [owner] = await adminRows<{ marker: string }>(
      euServer(),
      "SELECT shobj_description(oid, 'pg_authid') AS marker FROM pg_roles WHERE rolname = 't_dbt_again'",
    );
    assert.equal(owner?.marker, ownershipMarker('dbt-again', first.metadata.uid ?? ''));
  });
});

describe('secrets never leak', () => {
  interface DumpedObject {
    where: string;
    /** The object as JSON, with every Secret value decoded. */
    text: string;
    /** The object as the API server returned it (Secret values in base64). */
    raw: string;
  }

  interface ApiResourceList {
    groupVersion: string;
    resources: { name: string; kind: string; verbs: string[] }[];
  }

  /** Every object of every kind the API server can list, in every namespace. */
  async function dumpCluster(): Promise<DumpedObject[]> {
    const groups = await client.request<{
      groups: { preferredVersion: { groupVersion: string } }[];
    }>('GET', '/apis');
    const lists = [
      '/api/v1',
      ...groups.groups.map((g) => `/apis/${g.preferredVersion.groupVersion}`),
    ];
    const objects: DumpedObject[] = [];
    const kinds = new Set<string>();
    for (const base of lists) {
      const discovery = await client.request<ApiResourceList>('GET', base);
      for (const resource of discovery.resources) {
        // Subresources (pods/log) and kinds that cannot be listed are not objects to read.
        if (resource.name.includes('/') || !resource.verbs.includes('list')) continue;
        kinds.add(resource.kind);
        const list = await client.request<{ items: KubeObject[] }>(
          'GET',
          `${base}/${resource.name}`,
        );
        for (const item of list.items) {
          const data = (item as { data?: Record<string, string> }).data;
          const decoded =
            resource.kind === 'Secret' && data
              ? {
                  ...item,
                  data: Object.fromEntries(
                    Object.entries(data).map(([k, v]) => [k, Buffer.from(v, 'base64').toString()]),
                  ),
                }
              : item;
          objects.push({
            where: `${resource.kind} ${item.metadata.namespace ?? ''}/${item.metadata.name}`,
            text: JSON.stringify(decoded),
            raw: JSON.stringify(item),
          });
        }
      }
    }
    for (const kind of ['Secret', 'Tenant', 'Event', 'ConfigMap', 'Namespace', 'DatabaseServer'])
      assert.ok(kinds.has(kind), `${kind} was not listed`);
    assert.ok(objects.length > 50, `only ${objects.length} objects listed`);
    return objects;
  }

  /** Every password any tenant of this file ever had in Vault (every version kept). */
  async function everyTenantPassword(): Promise<Map<string, string>> {
    const found = new Map<string, string>();
    for (const tenant of new Set(tenants)) {
      const path = `tenants/${tenant}/database`;
      const metadata = await kv().readMetadata(path);
      for (const version of Object.keys(metadata?.versions ?? {})) {
        const secret = await kv().readSecret(path, { version: Number(version) });
        const password = secret?.data.password;
        if (password) found.set(password, `${tenant} v${version}`);
      }
    }
    return found;
  }

  async function assertNoLeak(moment: string): Promise<void> {
    const needles = await everyTenantPassword();
    assert.ok(needles.size > 0, 'no tenant password to look for');
    needles.set(requireEnv('PG_EU_ADMIN_PASSWORD'), 'the pg-eu admin password');
    needles.set(requireEnv('PG_US_ADMIN_PASSWORD'), 'the pg-us admin password');
    needles.set(requireEnv('VAULT_TOKEN'), "the operator's Vault token");
    for (const token of issuedTokens) needles.set(token, 'a tenant Vault token');

    // A tenant that asked for a Secret gets its own credentials there, and nothing else.
    const allowed = new Map<string, string>();
    for (const name of new Set(tenants)) {
      const spec = (await getTenant(client, name))?.spec as
        { database?: { delivery?: string } } | undefined;
      if (spec?.database?.delivery !== 'VaultAndSecret') continue;
      const own = await kv().readSecret(`tenants/${name}/database`);
      if (own?.data.password)
        allowed.set(`Secret tenant-${name}/database-credentials`, own.data.password);
    }

    const leaks: string[] = [];
    for (const object of await dumpCluster()) {
      for (const [needle, what] of needles) {
        if (allowed.get(object.where) === needle) continue;
        const encoded = Buffer.from(needle).toString('base64');
        if (object.text.includes(needle) || object.raw.includes(encoded))
          leaks.push(`${what} in ${object.where}`);
      }
    }
    const logs = operators.flatMap((o) => o.output).join('\n');
    for (const [needle, what] of needles)
      if (logs.includes(needle)) leaks.push(`${what} in a log line`);
    assert.deepEqual(leaks, [], `${moment}: secrets found`);

    // With delivery: Vault there is no Secret at all in the tenant's namespace.
    for (const name of new Set(tenants)) {
      const tenant = await getTenant(client, name);
      const delivery = (tenant?.spec as { database?: { delivery?: string } } | undefined)?.database
        ?.delivery;
      if (!tenant || delivery === 'VaultAndSecret') continue;
      const secrets = await client.request<{ items: KubeObject[] }>(
        'GET',
        `/api/v1/namespaces/tenant-${name}/secrets`,
      );
      assert.deepEqual(
        secrets.items.map((s) => s.metadata.name),
        [],
        `${moment}: Secrets in tenant-${name}`,
      );
    }
  }

  test('no password or token in any Kubernetes object, status, event or log line, across rotations', async () => {
    await newTenant('dbt-leak', { region: 'eu-west' });
    await waitForPhase(client, 'dbt-leak', 'Ready', 60_000);
    await tenantLogin('dbt-leak');
    await assertNoLeak('after provisioning');

    const path = 'tenants/dbt-leak/database';
    let version = (await kv().readMetadata(path))?.currentVersion ?? 0;
    await client.mergePatch(objectPath(RESOURCES.Tenant, 'dbt-leak'), {
      spec: { database: { rotationInterval: '3s' } },
    });
    try {
      for (let rotation = 1; rotation <= 3; rotation += 1) {
        const previous = version;
        version = await waitFor(`rotation ${rotation}`, async () => {
          const current = (await kv().readMetadata(path))?.currentVersion ?? 0;
          return current > previous ? current : undefined;
        });
        // Let the status write and the rotation's event land before looking.
        await waitFor('status to record the rotation', async () => {
          const stored = await kv().readSecret<StoredCredentials>(path);
          const t = await getTenant(client, 'dbt-leak');
          return t?.status?.database?.lastRotated === stored?.data.rotatedAt;
        });
        await assertNoLeak(`after rotation ${rotation}`);
      }
    } finally {
      await client.mergePatch(objectPath(RESOURCES.Tenant, 'dbt-leak'), {
        spec: { database: { rotationInterval: '30d' } },
      });
    }
    const passwords = await everyTenantPassword();
    assert.ok(
      [...passwords.values()].filter((v) => v.startsWith('dbt-leak ')).length >= 4,
      'the rotations left fewer versions than expected',
    );
  });
});
