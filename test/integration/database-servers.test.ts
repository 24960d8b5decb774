import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, test } from 'node:test';
import pg from 'pg';
import {
  CA_SECRET,
  registerLocalDatabaseServers,
  type LocalServer,
} from '../../hack/database-servers.ts';
import { TLS_CONTRADICTION_MESSAGE, TLS_REQUIRED_MESSAGE } from '../../src/api/databaseserver.ts';
import type { Condition } from '../../src/api/common.ts';
import { toOperatorError } from '../../src/errors.ts';
import type { KubeClient } from '../../src/k8s/client.ts';
import { collectionPath, objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import type { KubeObject } from '../../src/k8s/types.ts';
import type { StoredCredentials } from '../../src/tenant/database.ts';
import {
  DatabaseServerConnections,
  type DatabaseServerObject,
} from '../../src/tenant/database-servers.ts';
import { VaultClient } from '../../src/vault/client.ts';
import { KvV2 } from '../../src/vault/kv.ts';
import {
  adminClient,
  createTenant,
  eraseTenantAndWait,
  getTenant,
  requireEnv,
  waitForPhase,
} from '../support/cluster.ts';
import { OperatorProcess } from '../support/operator.ts';
import { waitFor } from '../support/wait.ts';

// DatabaseServers against the real API server, PostgreSQL and Vault: TLS is
// required, a server known by host name gets a working egress rule (or the
// tenant is not Ready), and admin pools and placements are let go when their
// server or tenant goes.

let client: KubeClient;
let operator: OperatorProcess;
let eu: LocalServer;
let ca: string;
const kv = () => new KvV2(VaultClient.fromEnv());
const tenants: string[] = [];
const servers: string[] = [];
const roles: string[] = [];

type ServerObject = KubeObject & {
  status?: {
    reachable?: boolean;
    lastError?: string;
    addresses?: string[];
    conditions?: Condition[];
  };
};

async function adminQuery<T extends pg.QueryResultRow>(sql: string, values: unknown[] = []) {
  const conn = new pg.Client({
    host: eu.host,
    port: eu.port,
    user: eu.adminUser,
    password: eu.adminPassword,
    database: 'postgres',
    ssl: { ca, rejectUnauthorized: true },
  });
  await conn.connect();
  try {
    return (await conn.query<T>(sql, values)).rows;
  } finally {
    await conn.end();
  }
}

/** A login role of its own on pg-eu, so its sessions are told apart from everyone else's. */
async function dedicatedAdmin(role: string): Promise<string> {
  roles.push(role);
  const password = randomBytes(24).toString('hex');
  await adminQuery(`DROP ROLE IF EXISTS ${role}`);
  await adminQuery(`CREATE ROLE ${role} LOGIN CREATEROLE CREATEDB PASSWORD '${password}'`);
  await kv().writeSecret(`database-servers/${role}`, { username: role, password });
  return `database-servers/${role}`;
}

/** The operator's admin sessions of `role` as PostgreSQL itself lists them. */
async function operatorSessions(role: string): Promise<number> {
  const rows = await adminQuery<{ count: string }>(
    "SELECT count(*) FROM pg_stat_activity WHERE usename = $1 AND application_name = 'tenant-operator'",
    [role],
  );
  return Number(rows[0]?.count);
}

function serverManifest(name: string, spec: Record<string, unknown>): KubeObject {
  return {
    apiVersion: 'tenancy.io/v1alpha1',
    kind: 'DatabaseServer',
    metadata: { name },
    spec: {
      host: eu.host,
      port: eu.port,
      region: name,
      tls: { caSecretRef: CA_SECRET },
      adminCredentialsVaultPath: `database-servers/${eu.name}`,
      ...spec,
    },
  };
}

async function addServer(name: string, spec: Record<string, unknown>): Promise<void> {
  servers.push(name);
  await client.apply(serverManifest(name, spec));
}

async function getServer(name: string): Promise<ServerObject | undefined> {
  return client.get<ServerObject>(objectPath(RESOURCES.DatabaseServer, name));
}

async function newTenant(name: string, region: string): Promise<void> {
  tenants.push(name);
  await createTenant(client, name, { region, database: { enabled: true } });
}

/** Events about one object: by uid, so an earlier object of the same name does not count. */
async function eventsAbout(kind: string, name: string, uid: string) {
  const events = await client.request<{
    items: { reason: string; type: string; message: string }[];
  }>('GET', '/api/v1/namespaces/default/events', {
    query: {
      fieldSelector: `involvedObject.kind=${kind},involvedObject.name=${name},involvedObject.uid=${uid}`,
    },
  });
  return events.items;
}

before(async () => {
  client = await adminClient();
  ca = await readFile(requireEnv('PG_CA_FILE'), 'utf8');
  [eu] = (await registerLocalDatabaseServers(client)) as [LocalServer];
  operator = await OperatorProcess.start({ resyncSeconds: 3 });
  await operator.waitUntilLeader();
});

after(async () => {
  for (const name of tenants) await eraseTenantAndWait(client, name).catch(() => undefined);
  for (const name of servers) await client.delete(objectPath(RESOURCES.DatabaseServer, name));
  await operator.stop();
  for (const role of roles) {
    await adminQuery('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE usename = $1', [
      role,
    ]).catch(() => undefined);
    await adminQuery(`DROP ROLE IF EXISTS ${role}`).catch(() => undefined);
    await kv()
      .deleteSecretAllVersions(`database-servers/${role}`)
      .catch(() => undefined);
  }
  await client.close();
});

describe('TLS is required', () => {
  async function refusal(spec: Record<string, unknown>): Promise<string> {
    const manifest = serverManifest('dbs-refused', {});
    const body = { ...manifest, spec: { ...(manifest.spec as object), tls: undefined, ...spec } };
    try {
      await client.create(collectionPath(RESOURCES.DatabaseServer), body);
    } catch (err: unknown) {
      const error = toOperatorError(err);
      assert.equal(error.httpStatus, 422, error.message);
      return error.message;
    }
    servers.push('dbs-refused');
    assert.fail('the API server accepted it');
  }

  test('a server without a CA is refused with 422 naming spec.tls', async () => {
    const message = await refusal({});
    assert.ok(message.includes(`spec.tls: Required value: ${TLS_REQUIRED_MESSAGE}`), message);
    const empty = await refusal({ tls: { mode: 'VerifyFull' } });
    assert.ok(empty.includes(TLS_REQUIRED_MESSAGE), empty);
  });

  test('Disable next to a CA is refused too', async () => {
    const message = await refusal({ tls: { mode: 'Disable', caSecretRef: CA_SECRET } });
    assert.ok(message.includes(`spec.tls: Invalid value`), message);
    assert.ok(message.includes(TLS_CONTRADICTION_MESSAGE), message);
  });

  test('an explicit Disable is accepted, with a Warning condition and one Warning event', async () => {
    await addServer('dbs-plain', { tls: { mode: 'Disable' } });
    const server = await waitFor('the TLS condition', async () => {
      const live = await getServer('dbs-plain');
      return live?.status?.conditions?.some((c) => c.type === 'TLSVerified') ? live : undefined;
    });
    const tls = server.status?.conditions?.find((c) => c.type === 'TLSVerified');
    assert.equal(tls?.status, 'False');
    assert.equal(tls?.reason, 'TLSDisabled');
    assert.match(tls?.message ?? '', /clear text/);
    // The local servers accept TLS only: the operator tried without, as told.
    assert.equal(server.status?.reachable, false);
    assert.match(server.status?.lastError ?? '', /no encryption/);
    const uid = server.metadata.uid ?? '';
    await waitFor('the Warning event', async () =>
      (await eventsAbout('DatabaseServer', 'dbs-plain', uid)).some(
        (e) => e.type === 'Warning' && e.reason === 'TLSDisabled',
      ),
    );
    await sleep(7_000); // checks run every resync (3 s): the event is not repeated
    const warnings = (await eventsAbout('DatabaseServer', 'dbs-plain', uid)).filter(
      (e) => e.reason === 'TLSDisabled',
    );
    assert.equal(warnings.length, 1);
  });

  test('a verified server says so', async () => {
    const tls = await waitFor('pg-eu TLS condition', async () => {
      const live = await getServer(eu.name);
      return live?.status?.conditions?.find((c) => c.type === 'TLSVerified');
    });
    assert.equal(tls.status, 'True');
    assert.equal(tls.reason, 'VerifyFull');
  });
});

describe('a server known by host name', () => {
  let expectedBlocks: { ipBlock: { cidr: string } }[];

  before(async () => {
    const addresses = (await lookup('localhost', { all: true })).map((a) => a.address);
    const v4 = addresses.filter((a) => !a.includes(':')).sort();
    const v6 = addresses.filter((a) => a.includes(':')).sort();
    expectedBlocks = [
      ...v4.map((a) => ({ ipBlock: { cidr: `${a}/32` } })),
      ...v6.map((a) => ({ ipBlock: { cidr: `${a}/128` } })),
    ];
    assert.ok(
      expectedBlocks.some((b) => b.ipBlock.cidr === '127.0.0.1/32'),
      'localhost resolves to 127.0.0.1 here',
    );
    await addServer('dbs-byname', { host: 'localhost' });
    await newTenant('dbsn-one', 'dbs-byname');
    await waitForPhase(client, 'dbsn-one', 'Ready', 60_000);
  });

  test("the tenant's egress rule carries every address of the name", async () => {
    const policy = await client.get<KubeObject & { spec: { egress: unknown[] } }>(
      objectPath(RESOURCES.NetworkPolicy, 'allow-database-and-vault', 'tenant-dbsn-one'),
    );
    const vault = new URL(requireEnv('VAULT_ADDR'));
    assert.deepEqual(policy?.spec.egress, [
      { to: expectedBlocks, ports: [{ protocol: 'TCP', port: eu.port }] },
      {
        to: [{ ipBlock: { cidr: '127.0.0.1/32' } }],
        ports: [{ protocol: 'TCP', port: Number(vault.port) }],
      },
    ]);
    const server = await getServer('dbs-byname');
    assert.deepEqual(
      server?.status?.addresses,
      expectedBlocks.map((b) => b.ipBlock.cidr.replace(/\/\d+$/, '')).sort(),
    );
  });

  test('tenants get verify-full with the CA, and it connects under the name', async () => {
    const secret = await kv().readSecret<StoredCredentials>('tenants/dbsn-one/database');
    const c = secret?.data;
    assert.ok(c);
    assert.equal(c.host, 'localhost');
    assert.equal(c.sslmode, 'verify-full');
    assert.equal(c.ca, ca);
    const conn = new pg.Client({
      host: c.host,
      port: Number(c.port),
      user: c.username,
      password: c.password,
      database: c.dbname,
      ssl: { ca: c.ca, rejectUnauthorized: true, servername: c.host },
    });
    conn.on('error', () => undefined);
    await conn.connect();
    try {
      // The servers accept TLS only (hostssl), and this client checked the
      // certificate against the CA and the name localhost.
      const who = await conn.query<{ user: string }>('SELECT session_user AS user');
      assert.equal(who.rows[0]?.user, c.username);
    } finally {
      await conn.end();
    }
  });

  test('a name that does not resolve: no rule, DatabaseReady=False says why, no Ready', async () => {
    await client.mergePatch(objectPath(RESOURCES.DatabaseServer, 'dbs-byname'), {
      spec: { host: 'db.invalid' },
    });
    const tenant = await waitFor('the egress reason', async () => {
      const t = await getTenant(client, 'dbsn-one');
      const cond = t?.status?.conditions?.find((c) => c.type === 'DatabaseReady');
      return cond?.reason === 'EgressUnresolved' ? t : undefined;
    });
    const cond = tenant.status?.conditions?.find((c) => c.type === 'DatabaseReady');
    assert.equal(cond?.status, 'False');
    assert.match(
      cond?.message ?? '',
      /DatabaseServer dbs-byname host db\.invalid does not resolve/,
    );
    assert.notEqual(tenant.status?.phase, 'Ready');
    assert.equal(tenant.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'False');
    const policy = await client.get<
      KubeObject & { spec: { egress: { ports: { port: number }[] }[] } }
    >(objectPath(RESOURCES.NetworkPolicy, 'allow-database-and-vault', 'tenant-dbsn-one'));
    assert.equal(
      policy?.spec.egress.some((rule) => rule.ports.some((p) => p.port === eu.port)),
      false,
      'no rule to the old address is left behind',
    );

    await client.mergePatch(objectPath(RESOURCES.DatabaseServer, 'dbs-byname'), {
      spec: { host: 'localhost' },
    });
    await waitForPhase(client, 'dbsn-one', 'Ready', 60_000);
  });
});

describe('pools and reservations are let go', () => {
  test("a deleted DatabaseServer's admin sessions end at once", async () => {
    const credentialsPath = await dedicatedAdmin('dbs_gone_admin');
    await addServer('dbs-gone', { adminCredentialsVaultPath: credentialsPath });
    await waitFor(
      'dbs-gone reachable',
      async () => (await getServer('dbs-gone'))?.status?.reachable,
    );
    await waitFor('an admin session', async () => (await operatorSessions('dbs_gone_admin')) > 0);
    await client.delete(objectPath(RESOURCES.DatabaseServer, 'dbs-gone'));
    // An idle pool would let its connection go after 30 s, and the check runs
    // every few seconds: only closing the pool on delete ends it this fast.
    await waitFor(
      'no admin session left',
      async () => (await operatorSessions('dbs_gone_admin')) === 0,
      { timeoutMs: 8_000 },
    );
    assert.equal(await operatorSessions('dbs_gone_admin'), 0);
  });

  test('concurrent get() after a credential change closes the old pool once and opens one', async () => {
    const credentialsPath = await dedicatedAdmin('dbs_conc_admin');
    const connections = new DatabaseServerConnections(client, kv());
    // Never created in the API server: only this test's pools use this role.
    const server: DatabaseServerObject = {
      ...serverManifest('dbs-concurrent', { adminCredentialsVaultPath: credentialsPath }),
      metadata: { name: 'dbs-concurrent', uid: randomBytes(8).toString('hex'), generation: 1 },
    };
    const first = await connections.get(server);
    await first.admin.ping();
    const secret = await kv().readSecret(credentialsPath);
    assert.ok(secret);
    await kv().writeSecret(credentialsPath, secret.data); // a new version: the pool must be rebuilt

    const handles = await Promise.all(Array.from({ length: 4 }, () => connections.get(server)));
    for (const handle of handles) assert.equal(handle, handles[0], 'one new pool for all');
    assert.notEqual(handles[0], first);
    await handles[0]!.admin.ping();
    await assert.rejects(first.admin.ping(), 'the old pool is closed');
    await waitFor(
      'one session: the new pool',
      async () => (await operatorSessions('dbs_conc_admin')) === 1,
    );

    await connections.forget(server);
    await waitFor('no session', async () => (await operatorSessions('dbs_conc_admin')) === 0);
    await assert.rejects(connections.get(server), /was deleted/);
    assert.deepEqual(connections.openServers, []);
    await connections.closeAll();
  });

  test('the CA is read again once older than the credentials age, not at every get()', async () => {
    const credentialsPath = await dedicatedAdmin('dbs_ca_admin');
    const caPath = objectPath(RESOURCES.Secret, 'dbs-ca-copy', CA_SECRET.namespace);
    const shared = await client.get<KubeObject & { data: Record<string, string> }>(
      objectPath(RESOURCES.Secret, CA_SECRET.name, CA_SECRET.namespace),
    );
    const pem = Buffer.from(shared?.data[CA_SECRET.key] ?? '', 'base64').toString('utf8');
    assert.match(pem, /BEGIN CERTIFICATE/);
    const caData = (text: string) => ({ [CA_SECRET.key]: Buffer.from(text).toString('base64') });
    await client.create(collectionPath(RESOURCES.Secret, CA_SECRET.namespace), {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 'dbs-ca-copy', namespace: CA_SECRET.namespace },
      data: caData(pem),
    });
    const maxAgeMs = 1_500;
    const connections = new DatabaseServerConnections(client, kv(), () => undefined, maxAgeMs);
    const server: DatabaseServerObject = {
      ...serverManifest('dbs-ca-age', {
        adminCredentialsVaultPath: credentialsPath,
        tls: { caSecretRef: { ...CA_SECRET, name: 'dbs-ca-copy' } },
      }),
      metadata: { name: 'dbs-ca-age', uid: randomBytes(8).toString('hex'), generation: 1 },
    };
    try {
      const first = await connections.get(server);
      await first.admin.ping();
      // The same certificate, written differently: a changed CA once it is read.
      await client.mergePatch(caPath, { data: caData(`${pem}\n`) });
      assert.equal(await connections.get(server), first, 'within the age: the CA read before');
      await sleep(maxAgeMs + 100);
      const after = await connections.get(server);
      assert.notEqual(after, first, 'past the age: the CA is read again and the pool rebuilt');
      assert.equal(after.caCertificate, `${pem}\n`);
      await after.admin.ping();
    } finally {
      await connections.closeAll();
      await client.delete(caPath);
    }
  });

  test("a tenant deleted while its placement is reserved does not keep the server's slot", async () => {
    await addServer('dbs-res', { capacity: { maxDatabases: 1 } });
    await waitFor('dbs-res reachable', async () => (await getServer('dbs-res'))?.status?.reachable);
    for (let i = 0; i < 3; i++) {
      const name = `dbsr-gone-${i}`;
      tenants.push(name);
      await createTenant(client, name, { region: 'dbs-res', database: { enabled: true } });
      // Deleted as soon as the operator has taken it on: between its
      // placement and the reconcile that would have recorded it.
      await waitFor(
        'the finalizer',
        async () => (await getTenant(client, name))?.metadata.finalizers?.length,
        { intervalMs: 20 },
      );
      await eraseTenantAndWait(client, name);
    }
    await newTenant('dbsr-stays', 'dbs-res');
    const tenant = await waitForPhase(client, 'dbsr-stays', 'Ready', 60_000);
    assert.equal(tenant.status?.database?.server, 'dbs-res');
  });
});
