import { randomUUID } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import pg from 'pg';
import {
  localServers,
  registerLocalDatabaseServers,
  type LocalServer,
} from '../hack/database-servers.ts';
import { tenantSpecSchema } from '../src/api/tenant.ts';
import { kubeconfigFileAccess } from '../src/k8s/cluster-access.ts';
import { KubeClient } from '../src/k8s/client.ts';
import { collectionPath, objectPath, resourceOfPath, RESOURCES } from '../src/k8s/resources.ts';
import type { KubeList, KubeObject } from '../src/k8s/types.ts';
import {
  databaseIdentifiersFor,
  quoteIdentifier,
  quoteLiteral,
} from '../src/postgres/identifiers.ts';
import { ownershipMarker } from '../src/postgres/ownership.ts';
import { generatePassword } from '../src/postgres/password.ts';
import { scramSha256Verifier } from '../src/postgres/scram.ts';
import { desiredChildren } from '../src/tenant/children.ts';
import type { EgressTarget } from '../src/tenant/egress.ts';
import {
  credentialsClaim,
  credentialsPath,
  tenantAuthRole,
  vaultObjectName,
} from '../src/tenant/database-vault.ts';
import { metadataRanges } from '../src/tenant/egress-blocks.ts';
import {
  backupAuthRoleName,
  backupPolicyName,
  backupServiceAccountName,
  desiredBackupRole,
  removeTenantBackupVault,
  restorePolicyName,
  transitKeyName,
  type BackupVaultObjects,
} from '../src/backup/vault-access.ts';
import {
  backupCronJobName,
  buildBackupCronJob,
  buildBackupServiceAccount,
} from '../src/backup/cronjob.ts';
import { DEFAULT_BACKUP_IMAGE } from '../src/cli/options.ts';
import { VaultClient } from '../src/vault/client.ts';
import { Transit } from '../src/vault/transit.ts';
import { KubernetesAuth } from '../src/vault/kubernetes-auth.ts';
import { KvV2 } from '../src/vault/kv.ts';
import {
  tenantBackupPolicy,
  tenantReadPolicy,
  tenantRestorePolicy,
  VaultPolicies,
} from '../src/vault/policy.ts';
import { sumOf, type Sample } from './prometheus-text.ts';
import { env, settled, startOperator, until, type ScaleOptions } from './scale.ts';
import { createAndTimeToReady, kubeConfig, percentile, pool, printTable } from './support.ts';

// Provisioning N tenants created at once (M of them with a database), by the
// operator running as its own process, against the bare calls that make the
// same things, at the operator's concurrency, in the same run:
//   - every tenant: its namespace and the objects in it (network policies,
//     the egress to Vault and its database server among them, RoleBinding,
//     quota, limits), server-side applied with the operator's own identity;
//   - a tenant with a database: the owner role, two login roles (password,
//     claim, membership, session role), the database, its grants, a login
//     that proves the password, the claimed KV secret, the policy and the
//     Kubernetes auth role; and its backup key and roles (Transit key,
//     backup and restore policies, the backup job's auth role), which the
//     operator makes even with scheduled backups off, and the backup job's
//     ServiceAccount and CronJob.
// Scheduled backups are off for these tenants (the CronJob stays suspended).
// The two go in both orders, with every trace of one phase removed before
// the next.

const RESULTS_DIR = join(import.meta.dirname, 'results');
const OPERATOR_NAMESPACE = 'tenant-system';

/** API requests made to provision, by method (GET, POST, PATCH, ...) and for writes by resource. */
interface RequestCounts {
  byMethod: Record<string, number>;
  writesByResource: Record<string, number>;
}

interface PhaseResult {
  order: 'bare first' | 'operator first';
  bareMs: number;
  operatorMs: number;
  p50Ms: number;
  p99Ms: number;
  notReady: number;
  /** What each side asked of the API server, for the whole phase. */
  operatorRequests: RequestCounts;
  bareRequests: RequestCounts;
}

function countBy(samples: Sample[], name: string, label: string): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const sample of samples) {
    if (sample.name !== name) continue;
    const key = sample.labels[label];
    if (key === undefined) throw new Error(`${name} has a sample without ${label}`);
    counts[key] = (counts[key] ?? 0) + sample.value;
  }
  return counts;
}

function difference(after: Record<string, number>, before: Record<string, number>) {
  return Object.fromEntries(
    Object.entries(after)
      .map(([key, value]) => [key, value - (before[key] ?? 0)] as const)
      .filter(([, value]) => value > 0),
  );
}

/** The operator's own count of its API requests (its /metrics), leases included. */
function operatorRequestCounts(samples: Sample[]): RequestCounts {
  // Throws if the metrics are missing: a renamed metric must fail the run.
  sumOf(samples, 'tenant_operator_api_requests_total');
  return {
    byMethod: countBy(samples, 'tenant_operator_api_requests_total', 'method'),
    writesByResource: countBy(samples, 'tenant_operator_api_writes_total', 'resource'),
  };
}

const total = (counts: Record<string, number>) =>
  Object.values(counts).reduce((sum, n) => sum + n, 0);

function spec(name: string, database: boolean, server: LocalServer | undefined) {
  return {
    owners: [{ kind: 'Group', name: `${name}-admins` }],
    ...(database && server
      ? { region: server.region, database: { enabled: true }, backup: { enabled: false } }
      : { database: { enabled: false } }),
  };
}

/** No owner: the bare calls have no Tenant to point at (the garbage collector would delete them). */
function withoutOwner(object: KubeObject): KubeObject {
  return { ...object, metadata: { ...object.metadata, ownerReferences: [] } };
}

class BareWork {
  private readonly kube: KubeClient;
  private readonly pools: Map<string, pg.Pool>;
  private readonly vault: VaultClient;
  private readonly ca: string;
  /** The made-up Tenant uid each bare tenant's claims carry. */
  private readonly uids = new Map<string, string>();

  constructor(
    kube: KubeClient,
    servers: LocalServer[],
    ca: string,
    vault: VaultClient,
    size: number,
  ) {
    this.kube = kube;
    this.vault = vault;
    this.ca = ca;
    this.pools = new Map(
      servers.map((s) => [
        s.region,
        new pg.Pool({
          host: s.host,
          port: s.port,
          user: s.adminUser,
          password: s.adminPassword,
          database: 'postgres',
          ssl: { ca, rejectUnauthorized: true },
          max: size,
        }),
      ]),
    );
  }

  private pool(server: LocalServer): pg.Pool {
    const pool = this.pools.get(server.region);
    if (!pool) throw new Error(`no pool for ${server.region}`);
    return pool;
  }

  async provision(name: string, server: LocalServer | undefined): Promise<void> {
    const valid = {
      name,
      uid: randomUUID(),
      spec: tenantSpecSchema.parse(spec(name, server !== undefined, server)),
      namespace: `tenant-${name}`,
    };
    // The same egress to the platform the operator opens: Vault for every
    // tenant, and its database server for one with a database (both local:
    // 127.0.0.1, as the operator resolves them).
    const vault = new URL(env('VAULT_ADDR'));
    const platform: EgressTarget[] = [
      ...(server ? [{ blocks: [{ cidr: '127.0.0.1/32' }], port: server.port }] : []),
      { blocks: [{ cidr: '127.0.0.1/32' }], port: Number(vault.port) },
    ];
    const children = desiredChildren(valid, { platform, forbidden: metadataRanges() });
    for (const object of [children.namespace, ...children.namespaced])
      await this.kube.apply(withoutOwner(object));
    if (!server) return;
    const ids = databaseIdentifiersFor(name);
    const claim = quoteLiteral(ownershipMarker(name, valid.uid));
    const owner = quoteIdentifier(ids.ownerRole);
    const database = quoteIdentifier(ids.database);
    const admin = this.pool(server);
    await admin.query(
      `BEGIN; CREATE ROLE ${owner} NOLOGIN; COMMENT ON ROLE ${owner} IS ${claim}; COMMIT`,
    );
    await admin.query(`CREATE DATABASE ${database} OWNER ${owner}`);
    await admin.query(`REVOKE ALL ON DATABASE ${database} FROM PUBLIC`);
    await admin.query(`GRANT CONNECT ON DATABASE ${database} TO ${owner}`);
    const passwords: string[] = [];
    for (const login of ids.loginRoles) {
      const password = generatePassword();
      passwords.push(password);
      const role = quoteIdentifier(login);
      await admin.query(
        `BEGIN; CREATE ROLE ${role} LOGIN PASSWORD ${quoteLiteral(await scramSha256Verifier(password))};
         COMMENT ON ROLE ${role} IS ${claim}; GRANT ${owner} TO ${role};
         ALTER ROLE ${role} SET role = ${quoteLiteral(ids.ownerRole)}; COMMIT`,
      );
    }
    // The operator proves a new password by logging in with it.
    const probe = new pg.Client({
      host: server.host,
      port: server.port,
      user: ids.loginRoles[0],
      password: passwords[0],
      database: ids.database,
      ssl: { ca: this.ca, rejectUnauthorized: true },
    });
    await probe.connect();
    await probe.query('SELECT 1');
    await probe.end();
    const kv = new KvV2(this.vault);
    const path = credentialsPath(name);
    await kv.writeCustomMetadata(path, credentialsClaim(valid));
    await kv.writeSecret(
      path,
      {
        username: ids.loginRoles[0],
        password: passwords[0]!,
        host: server.host,
        port: String(server.port),
        dbname: ids.database,
        sslmode: 'verify-full',
        ca: this.ca,
        rotatedAt: new Date().toISOString(),
      },
      { cas: 0 },
    );
    const object = vaultObjectName(name);
    await new VaultPolicies(this.vault).putPolicy(
      object,
      tenantReadPolicy(kv.mount, name, valid.uid),
    );
    await new KubernetesAuth(this.vault).putKubernetesRole(object, tenantAuthRole(valid, 'vault'));
    // Its backup keys and roles, which the operator makes even with
    // scheduled backups off (on-demand backups need them).
    const backup = this.backupObjects();
    const paths = {
      transitMount: backup.transit.mount,
      transitKey: transitKeyName(name),
      credentialsDataPath: kv.dataPath(path),
    };
    await backup.transit.ensureKey(transitKeyName(name));
    await backup.policies.putPolicy(
      restorePolicyName(name),
      tenantRestorePolicy(name, valid.uid, paths),
    );
    await backup.policies.putPolicy(
      backupPolicyName(name),
      tenantBackupPolicy(name, valid.uid, paths),
    );
    await backup.kubernetesAuth.putKubernetesRole(
      backupAuthRoleName(name),
      desiredBackupRole(backup, name),
    );
    // The backup job's ServiceAccount and its CronJob (suspended while
    // backups are off; on-demand backups are made from it).
    const job = {
      namespace: OPERATOR_NAMESPACE,
      image: DEFAULT_BACKUP_IMAGE,
      vaultAddr: env('VAULT_ADDR'),
      vaultAudience: 'vault',
    };
    for (const object of [buildBackupServiceAccount(valid, job), buildBackupCronJob(valid, job)])
      await this.kube.apply(withoutOwner(object));
    this.uids.set(name, valid.uid);
  }

  private backupObjects(): BackupVaultObjects {
    return {
      transit: new Transit(this.vault),
      policies: new VaultPolicies(this.vault),
      kubernetesAuth: new KubernetesAuth(this.vault),
      kv: new KvV2(this.vault),
      operatorNamespace: 'tenant-system',
    };
  }

  /** Everything provision() made, gone. */
  async remove(name: string, server: LocalServer | undefined): Promise<void> {
    await this.kube.delete(objectPath(RESOURCES.Namespace, `tenant-${name}`));
    if (!server) return;
    const ids = databaseIdentifiersFor(name);
    const admin = this.pool(server);
    await admin.query(`DROP DATABASE IF EXISTS ${quoteIdentifier(ids.database)} WITH (FORCE)`);
    for (const role of [...ids.loginRoles, ids.ownerRole])
      await admin.query(`DROP ROLE IF EXISTS ${quoteIdentifier(role)}`);
    await new KvV2(this.vault).deleteSecretAllVersions(credentialsPath(name));
    await new VaultPolicies(this.vault).deletePolicy(vaultObjectName(name));
    await new KubernetesAuth(this.vault).deleteKubernetesRole(vaultObjectName(name));
    await removeTenantBackupVault(this.backupObjects(), { name, uid: this.uids.get(name) ?? '' });
    await this.kube.delete(
      objectPath(RESOURCES.CronJob, backupCronJobName(name), OPERATOR_NAMESPACE),
    );
    await this.kube.delete(
      objectPath(RESOURCES.ServiceAccount, backupServiceAccountName(name), OPERATOR_NAMESPACE),
    );
  }

  async close(): Promise<void> {
    for (const pool of this.pools.values()) await pool.end();
  }
}

async function namespacesGone(client: KubeClient, prefix: string): Promise<boolean> {
  const list = await client.request<KubeList<KubeObject>>(
    'GET',
    collectionPath(RESOURCES.Namespace),
  );
  return !list.items.some((n) => n.metadata.name.startsWith(prefix));
}

export interface RatioOptions {
  tenants: number;
  databases: number;
  scale: ScaleOptions;
}

/** "14.2 (GET 3.1, PATCH 6.0, ...; writes: tenants 2.0, events 3.0, ...)", per tenant. */
function describeRequests(counts: RequestCounts, tenants: number): string {
  const per = (n: number) => (n / tenants).toFixed(1);
  const list = (byKey: Record<string, number>) =>
    Object.entries(byKey)
      .sort(([, a], [, b]) => b - a)
      .map(([key, n]) => `${key} ${per(n)}`)
      .join(', ');
  return `${per(total(counts.byMethod))} (${list(counts.byMethod)}; writes: ${list(counts.writesByResource)})`;
}

export async function benchProvisioningRatio(options: RatioOptions): Promise<boolean> {
  const runId = Date.now().toString(36);
  mkdirSync(RESULTS_DIR, { recursive: true });
  const logFile = join(RESULTS_DIR, `operator-ratio-${runId}.log`);
  const admin = await KubeClient.create(kubeConfig());
  const operatorAccess = kubeconfigFileAccess(env('BENCH_OPERATOR_KUBECONFIG'));
  if (!operatorAccess) throw new Error('the operator kubeconfig uses a client certificate');
  const asOperator = await KubeClient.create(operatorAccess);
  // Every request the bare calls make, counted as the operator counts its own.
  const bareCounts: RequestCounts = { byMethod: {}, writesByResource: {} };
  asOperator.onRequest((method, path) => {
    bareCounts.byMethod[method] = (bareCounts.byMethod[method] ?? 0) + 1;
    if (method === 'GET') return;
    const resource = resourceOfPath(path);
    bareCounts.writesByResource[resource] = (bareCounts.writesByResource[resource] ?? 0) + 1;
  });
  const bareCountsNow = (): RequestCounts => structuredClone(bareCounts);
  const servers =
    options.databases > 0 ? await registerLocalDatabaseServers(admin, options.databases + 10) : [];
  const all = localServers();
  const bare = new BareWork(
    asOperator,
    servers.length > 0 ? servers : all,
    readFileSync(env('PG_CA_FILE'), 'utf8'),
    VaultClient.fromEnv(),
    options.scale.concurrency,
  );
  const serverOf = (i: number) =>
    i < options.databases && servers.length > 0 ? servers[i % servers.length] : undefined;

  const bareRun = async (tag: string): Promise<{ ms: number; requests: RequestCounts }> => {
    const names = Array.from({ length: options.tenants }, (_, i) => `${tag}-${i}`);
    const before = bareCountsNow();
    const start = performance.now();
    await pool(names, options.scale.concurrency, (name) =>
      bare.provision(name, serverOf(Number(name.split('-').at(-1)))),
    );
    const elapsed = performance.now() - start;
    const after = bareCountsNow();
    const requests = {
      byMethod: difference(after.byMethod, before.byMethod),
      writesByResource: difference(after.writesByResource, before.writesByResource),
    };
    await pool(names, 16, (name) => bare.remove(name, serverOf(Number(name.split('-').at(-1)))));
    await until('the bare namespaces to go', 1_800_000, () =>
      namespacesGone(admin, `tenant-${tag}-`),
    );
    return { ms: elapsed, requests };
  };

  const operatorRun = async (tag: string) => {
    const operator = await startOperator(options.scale, logFile);
    const before = operatorRequestCounts(await operator.metrics());
    const names = Array.from({ length: options.tenants }, (_, i) => `${tag}-${i}`);
    const timings = await createAndTimeToReady(
      admin,
      names,
      (name) => {
        const i = Number(name.split('-').at(-1));
        return spec(name, serverOf(i) !== undefined, serverOf(i));
      },
      3_600_000,
    );
    await settled(operator, 2_000);
    const after = operatorRequestCounts(await operator.metrics());
    const requests = {
      byMethod: difference(after.byMethod, before.byMethod),
      writesByResource: difference(after.writesByResource, before.writesByResource),
    };
    // Cleanup: each tenant erased now (its name as confirmation), then released.
    await pool(names, 16, async (name) => {
      const path = objectPath(RESOURCES.Tenant, name);
      await admin.mergePatch(path, {
        metadata: { annotations: { 'tenancy.io/erase-now': name } },
      });
      await admin.delete(path);
    });
    await until('the operator tenants erased', 1_800_000, async () => {
      const list = await admin.request<KubeList<KubeObject>>(
        'GET',
        collectionPath(RESOURCES.Tenant),
      );
      return !list.items.some((t) => t.metadata.name.startsWith(`${tag}-`));
    });
    await until('their namespaces to go', 1_800_000, () => namespacesGone(admin, `tenant-${tag}-`));
    await operator.stop();
    return { timings, requests };
  };

  const phases: PhaseResult[] = [];
  for (const order of ['bare first', 'operator first'] as const) {
    const n = phases.length;
    let bareSide: Awaited<ReturnType<typeof bareRun>>;
    let operatorSide: Awaited<ReturnType<typeof operatorRun>>;
    if (order === 'bare first') {
      bareSide = await bareRun(`rb${n}${runId}`);
      operatorSide = await operatorRun(`ro${n}${runId}`);
    } else {
      operatorSide = await operatorRun(`ro${n}${runId}`);
      bareSide = await bareRun(`rb${n}${runId}`);
    }
    const { timings } = operatorSide;
    phases.push({
      order,
      bareMs: bareSide.ms,
      operatorMs: timings.totalMs,
      p50Ms: percentile(timings.durations, 50),
      p99Ms: percentile(timings.durations, 99),
      notReady: timings.notReady,
      operatorRequests: operatorSide.requests,
      bareRequests: bareSide.requests,
    });
  }
  await bare.close();
  await asOperator.close();
  await admin.close();

  // The order moves the figures (on shared cores, what ran before weighs
  // on what runs next, one way or the other): the geometric mean of the
  // two ratios counts both orders alike, and a handicap that falls on each
  // side once cancels out of it.
  const bothOrders =
    phases.reduce((product, p) => product * (p.operatorMs / p.bareMs), 1) ** (1 / phases.length);
  const result = { runId, date: new Date().toISOString(), options, phases, bothOrders };
  const file = join(RESULTS_DIR, `ratio-${result.date.replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, `${JSON.stringify(result, null, 2)}\n`);
  printTable(
    `provisioning against the bare calls: ${options.tenants} tenants, ${options.databases} with a database, created at once (${file})`,
    phases
      .flatMap((p): [string, string][] => [
        [
          `${p.order}: operator, first created to last Ready`,
          `${(p.operatorMs / 1000).toFixed(1)} s (${((options.tenants / p.operatorMs) * 1000).toFixed(1)} tenants/s; p50 ${(p.p50Ms / 1000).toFixed(1)} s, p99 ${(p.p99Ms / 1000).toFixed(1)} s)`,
        ],
        [`${p.order}: bare calls`, `${(p.bareMs / 1000).toFixed(1)} s`],
        [`${p.order}: operator / bare`, `${(p.operatorMs / p.bareMs).toFixed(2)}x`],
        [
          `${p.order}: API requests per tenant, operator`,
          describeRequests(p.operatorRequests, options.tenants),
        ],
        [
          `${p.order}: API requests per tenant, bare`,
          describeRequests(p.bareRequests, options.tenants),
        ],
      ])
      .concat([['operator / bare, both orders (geometric mean)', `${bothOrders.toFixed(2)}x`]]),
  );
  return phases.every((p) => p.notReady === 0);
}
