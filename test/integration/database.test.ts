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
import type { KubeObject } from '../../src/k8s/types.ts';
import type { StoredCredentials } from '../../src/tenant/database.ts';
import { VaultClient } from '../../src/vault/client.ts';
import { KubernetesAuth } from '../../src/vault/kubernetes-auth.ts';
import { KvV2 } from '../../src/vault/kv.ts';
import {
  adminClient,
  createTenant,
  deleteTenantAndWait,
  getTenant,
  kubectl,
  requireEnv,
  waitForPhase,
} from '../support/cluster.ts';
import { OperatorProcess } from '../support/operator.ts';
import { waitFor } from '../support/wait.ts';

// The tenant database against two real PostgreSQL servers (TLS) and a real
// Vault whose Kubernetes auth talks to the real API server.

let client: KubeClient;
let operator: OperatorProcess;
let servers: LocalServer[];
let ca: string;
const kv = () => new KvV2(VaultClient.fromEnv());
const tenants: string[] = [];

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

async function adminQuery(server: LocalServer, sql: string): Promise<void> {
  const conn = new pg.Client({
    host: server.host,
    port: server.port,
    user: server.adminUser,
    password: server.adminPassword,
    database: 'postgres',
    ssl: { ca, rejectUnauthorized: true },
  });
  await conn.connect();
  try {
    await conn.query(sql);
  } finally {
    await conn.end();
  }
}

async function newTenant(name: string, spec: Record<string, unknown>): Promise<void> {
  tenants.push(name);
  await createTenant(client, name, { database: { enabled: true }, ...spec });
}

before(async () => {
  client = await adminClient();
  ca = await readFile(requireEnv('PG_CA_FILE'), 'utf8');
  servers = await registerLocalDatabaseServers(client);
  operator = await OperatorProcess.start({ resyncSeconds: 3 });
  await operator.waitUntilLeader();
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
  for (const name of ['dbt-one', 'dbt-two', 'dbt-us'])
    await waitForPhase(client, name, 'Ready', 60_000);
});

after(async () => {
  for (const name of tenants) await deleteTenantAndWait(client, name).catch(() => undefined);
  for (const name of ['pg-tiny', 'pg-flaky'])
    await client.delete(objectPath(RESOURCES.DatabaseServer, name));
  await operator.stop();
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

describe('secrets never leak', () => {
  test('the password is in no Kubernetes object, event, status or log line', async () => {
    const secrets = await Promise.all(['dbt-one', 'dbt-two', 'dbt-us'].map((t) => credentials(t)));
    const dump = kubectl([
      'get',
      'tenants,databaseservers,namespaces,secrets,configmaps,events,rolebindings,networkpolicies',
      '-A',
      '-o',
      'json',
    ]);
    assert.equal(dump.status, 0, dump.stderr);
    const logs = operator.output.join('\n');
    for (const { password } of secrets) {
      assert.equal(dump.stdout.includes(password), false, 'a password is in a Kubernetes object');
      assert.equal(logs.includes(password), false, 'a password is in the operator log');
    }
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
    await adminQuery(servers[0]!, `ALTER ROLE "${c.username}" PASSWORD 'someone-else'`);
    assert.notEqual(await canConnect(c), true);
    await waitFor('the role to be repaired', async () => (await canConnect(c)) === true, {
      timeoutMs: 20_000,
    });
  });

  test('a dropped login role is recreated with the password Vault holds', async () => {
    const c = await credentials('dbt-two');
    await adminQuery(servers[0]!, `DROP ROLE "${c.username}"`);
    assert.notEqual(await canConnect(c), true);
    await waitFor('the role to be recreated', async () => (await canConnect(c)) === true, {
      timeoutMs: 20_000,
    });
  });

  test('a dropped database is recreated empty, with a Warning event', async () => {
    await adminQuery(servers[0]!, 'DROP DATABASE t_dbt_one WITH (FORCE)');
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

describe('crash between role and secret', () => {
  test('a role created without a Vault secret ends in one working password', async () => {
    // The state a crash right after "role created" leaves, made by the same
    // code the operator runs: roles exist with a password nobody kept, and
    // Vault holds nothing.
    const server = servers[0]!;
    const admin = new PostgresAdmin({
      host: server.host,
      port: server.port,
      user: server.adminUser,
      password: server.adminPassword,
      caCertificate: ca,
    });
    const ids = databaseIdentifiersFor('dbt-crash');
    await admin.ensureOwnerRole(ids.ownerRole);
    await admin.ensureLoginRole(ids.loginRoles[0], ids.ownerRole, 'lost-in-the-crash');
    await admin.close();
    await newTenant('dbt-crash', { region: 'eu-west' });
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
