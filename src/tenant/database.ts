import type { Logger } from 'pino';
import type { TenantStatus } from '../api/tenant.ts';
import { durationToMs } from '../api/duration.ts';
import { CONDITION, REASON, type ConditionInput } from '../controller/conditions.ts';
import type { EventRecorder } from '../controller/events.ts';
import type { Informer } from '../controller/informer.ts';
import { toOperatorError } from '../errors.ts';
import { LABEL_TENANT } from '../api/constants.ts';
import type { KubeClient } from '../k8s/client.ts';
import { objectPath, RESOURCES } from '../k8s/resources.ts';
import { isSubset } from '../k8s/subset.ts';
import type { KubeObject } from '../k8s/types.ts';
import { databaseIdentifiersFor } from '../postgres/identifiers.ts';
import { generatePassword } from '../postgres/password.ts';
import { prepareRotation, retireStandbyRole } from '../postgres/rotation.ts';
import { ensureTenantDatabase } from '../postgres/tenant-database.ts';
import type { KubernetesAuth } from '../vault/kubernetes-auth.ts';
import type { KvV2 } from '../vault/kv.ts';
import { tenantReadPolicy, type VaultPolicies } from '../vault/policy.ts';
import {
  serverSpecOf,
  type DatabaseServerConnections,
  type DatabaseServerObject,
  type ServerHandle,
} from './database-servers.ts';
import { childMetadata, type TenantObject, type ValidTenant } from './model.ts';
import { choosePlacement } from './placement.ts';

// The tenant's PostgreSQL database and its credentials. The password is made
// here, set in PostgreSQL, and written to Vault KV; it is never put in a
// Kubernetes object, a log line, an event or a status field (unless the
// tenant asks for delivery as a Secret too).
//
// Two login roles take turns: rotation sets a fresh password on the idle one,
// checks that it connects, and only then points Vault at it, so Vault never
// holds credentials that do not work.

export interface DatabaseDeps {
  servers: Informer<DatabaseServerObject>;
  tenants: Informer<TenantObject>;
  connections: DatabaseServerConnections;
  kv: KvV2;
  policies: VaultPolicies;
  kubernetesAuth: KubernetesAuth;
  events: EventRecorder;
  log: Logger;
  /** Audience tenant service-account tokens must carry to log in to Vault. */
  vaultAudience: string | undefined;
  /** Kubernetes API, for the optional credentials Secret. */
  kube: KubeClient;
  /**
   * Placements chosen but not yet in any Tenant's status: reconciles of
   * different tenants run at once, and must not both take a server's last slot.
   */
  reservations: Map<string, string>;
}

export interface DatabaseOutcome {
  conditions: ConditionInput[];
  database?: TenantStatus['database'];
  vaultPath?: string;
  /** The step is not done: look again after this long. */
  requeueAfterMs?: number;
  /** Everything done and healthy. */
  ready: boolean;
}

/** Credentials as stored in Vault, for the tenant's applications. */
export interface StoredCredentials extends Record<string, string> {
  username: string;
  password: string;
  host: string;
  port: string;
  dbname: string;
  sslmode: string;
  ca: string;
}

const UNREACHABLE_RETRY_MS = 15_000;

/** How long the previous login role keeps working after a rotation, so apps can re-read Vault. */
function gracePeriod(rotationIntervalMs: number): number {
  return Math.min(rotationIntervalMs / 2, 15 * 60_000);
}

export function credentialsPath(tenant: string): string {
  return `tenants/${tenant}/database`;
}

export function vaultObjectName(tenant: string): string {
  return `tenant-${tenant}`;
}

function condition(type: string, ok: boolean, reason: string, message: string): ConditionInput {
  return { type, status: ok ? 'True' : 'False', reason, message };
}

function notReady(reason: string, message: string, requeueAfterMs?: number): DatabaseOutcome {
  return {
    ready: false,
    conditions: [condition(CONDITION.DatabaseReady, false, reason, message)],
    ...(requeueAfterMs === undefined ? {} : { requeueAfterMs }),
  };
}

export const CREDENTIALS_SECRET = 'database-credentials';

/** Applies (or, when `credentials` is undefined, removes) the tenant's credentials Secret. */
async function deliverSecret(
  deps: DatabaseDeps,
  tenant: ValidTenant,
  credentials: StoredCredentials | undefined,
): Promise<void> {
  const path = objectPath(RESOURCES.Secret, CREDENTIALS_SECRET, tenant.namespace);
  const live = await deps.kube.get<KubeObject>(path);
  if (!credentials) {
    if (live?.metadata.labels?.[LABEL_TENANT] === tenant.name) await deps.kube.delete(path);
    return;
  }
  const desired: KubeObject = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: childMetadata(tenant, CREDENTIALS_SECRET, tenant.namespace),
    type: 'Opaque',
    data: Object.fromEntries(
      Object.entries(credentials).map(([key, value]) => [
        key,
        Buffer.from(value).toString('base64'),
      ]),
    ),
  };
  if (!live || !isSubset(desired, live)) await deps.kube.apply(desired);
}

export function databaseDisabled(): DatabaseOutcome {
  return {
    ready: true,
    conditions: [
      condition(CONDITION.DatabaseReady, true, REASON.Disabled, 'no database requested'),
    ],
  };
}

/** Databases placed on a server, counted from the tenants themselves plus open reservations. */
function placedOn(deps: DatabaseDeps, server: string): number {
  const placed = new Set(
    deps.tenants
      .list()
      .filter((t) => t.status?.database?.server === server)
      .map((t) => t.metadata.name),
  );
  for (const [tenant, reserved] of deps.reservations) if (reserved === server) placed.add(tenant);
  return placed.size;
}

export async function reconcileDatabase(
  deps: DatabaseDeps,
  tenant: TenantObject,
  valid: ValidTenant,
  now: Date,
): Promise<DatabaseOutcome> {
  if (!valid.spec.database.enabled) return databaseDisabled();

  // 1. Placement. Recorded in status before anything is created, so a crash
  //    never leaves a database on one server and the tenant pointing at another.
  const placedServer = tenant.status?.database?.server;
  // Placed, or placing again (the status write of an earlier choice failed):
  // either way this tenant's own reservation must not count against it.
  deps.reservations.delete(valid.name);
  if (!placedServer) {
    // A DatabaseServer whose spec does not parse is no candidate; it must not
    // stop every other tenant from being placed.
    const servers = deps.servers.list().flatMap((s) => {
      const spec = serverSpecOf(s);
      return spec
        ? [
            {
              name: s.metadata.name,
              spec,
              status: s.status,
              placed: placedOn(deps, s.metadata.name),
            },
          ]
        : [];
    });
    const placement = choosePlacement(servers, valid.spec.region);
    if (!placement.server)
      return notReady(placement.reason, placement.message, UNREACHABLE_RETRY_MS);
    deps.reservations.set(valid.name, placement.server.name);
    return {
      ready: false,
      database: { server: placement.server.name },
      conditions: [
        condition(
          CONDITION.DatabaseReady,
          false,
          REASON.Provisioning,
          `placed on DatabaseServer ${placement.server.name}`,
        ),
      ],
      requeueAfterMs: 0,
    };
  }
  const serverObject = deps.servers.get(placedServer);
  if (!serverObject) {
    return notReady(
      REASON.ServerMissing,
      `DatabaseServer ${placedServer} no longer exists`,
      UNREACHABLE_RETRY_MS,
    );
  }

  let handle: ServerHandle;
  try {
    handle = await deps.connections.get(serverObject);
    await handle.admin.ping();
  } catch (err: unknown) {
    // The admin credentials come from Vault: Vault being down is not the server's fault.
    if (toOperatorError(err).origin === 'vault') throw err;
    return notReady(
      REASON.ServerUnreachable,
      `DatabaseServer ${placedServer} unreachable: ${toOperatorError(err).message}`,
      UNREACHABLE_RETRY_MS,
    );
  }

  // 2. Roles and database, each idempotent. Vault is the record of which
  //    login role is current and of its password; PostgreSQL is made to agree
  //    (a password changed behind our back is put back from Vault).
  const ids = databaseIdentifiersFor(valid.name);
  const { admin } = handle;
  const path = credentialsPath(valid.name);
  const stored = (await deps.kv.readSecret<StoredCredentials>(path))?.data;
  const current = stored && ids.loginRoles.includes(stored.username) ? stored : undefined;
  const loginAllowed = valid.spec.state === 'Active';
  const existedBefore = await admin.databaseExists(ids.database);
  await ensureTenantDatabase(admin, ids, {
    ...(current ? { active: { role: current.username, password: current.password } } : {}),
    canLogin: loginAllowed,
  });
  if (!existedBefore && tenant.status?.database?.name) {
    // It was there once and is gone: recreated empty, which is data loss.
    await deps.events.record(
      tenant,
      'Warning',
      REASON.DatabaseRecreated,
      `database ${ids.database} had vanished from ${placedServer} and was recreated EMPTY`,
    );
  }

  // 3. Credentials. New ones are proven by a real login before Vault gets
  //    them; the previous role keeps working for a grace period, then gets a
  //    password nobody knows.
  const connectionFields = {
    host: handle.spec.host,
    port: String(handle.spec.port),
    dbname: ids.database,
    sslmode: handle.caCertificate ? 'verify-full' : 'disable',
    ca: handle.caCertificate ?? '',
  };
  const interval = durationToMs(valid.spec.database.rotationInterval);
  let lastRotated = tenant.status?.database?.lastRotated;
  let standbyRetired = tenant.status?.database?.standbyRetired ?? true;
  const due =
    !current || lastRotated === undefined || Date.parse(lastRotated) + interval <= now.getTime();
  // What Vault holds once this step is done.
  let latest: StoredCredentials | undefined = current;
  const store = async (credentials: StoredCredentials) => {
    await deps.kv.writeSecret(path, credentials);
    latest = credentials;
  };
  if (due && loginAllowed) {
    const fresh = await prepareRotation(admin, ids, current?.username);
    await store({ username: fresh.role, password: fresh.password, ...connectionFields });
    if (current) {
      await deps.events.record(
        tenant,
        'Normal',
        REASON.CredentialsRotated,
        `database credentials rotated to role ${fresh.role}`,
      );
    }
    lastRotated = now.toISOString();
    standbyRetired = !current;
  } else if (!current) {
    // Suspended before its first credentials: stored, but nobody may log in yet.
    const role = ids.loginRoles[0];
    const password = generatePassword();
    await admin.ensureLoginRole(role, ids.ownerRole, password, { canLogin: false });
    await store({ username: role, password, ...connectionFields });
    lastRotated = now.toISOString();
  } else {
    if (
      !standbyRetired &&
      lastRotated !== undefined &&
      Date.parse(lastRotated) + gracePeriod(interval) <= now.getTime()
    ) {
      await retireStandbyRole(admin, ids, current.username);
      standbyRetired = true;
    }
    if (Object.entries(connectionFields).some(([key, value]) => current[key] !== value)) {
      await store({ ...current, ...connectionFields });
    }
  }
  if (!loginAllowed) await admin.terminateSessions([...ids.loginRoles]);

  // 4. Delivery as a Secret too, only when the tenant asks for it.
  await deliverSecret(
    deps,
    valid,
    valid.spec.database.delivery === 'VaultAndSecret' ? latest : undefined,
  );

  // 5. Vault access for the tenant's workloads: their service accounts read
  //    their own path, nothing else.
  const vaultName = vaultObjectName(valid.name);
  const policy = tenantReadPolicy(deps.kv.mount, valid.name);
  if ((await deps.policies.readPolicy(vaultName)) !== policy)
    await deps.policies.putPolicy(vaultName, policy);
  const role = {
    boundServiceAccountNames: ['*'],
    boundServiceAccountNamespaces: [valid.namespace],
    policies: [vaultName],
    ttl: 3600,
    ...(deps.vaultAudience ? { audience: deps.vaultAudience } : {}),
  };
  const liveRole = await deps.kubernetesAuth.readKubernetesRole(vaultName);
  if (!liveRole || !isSubset(role, liveRole))
    await deps.kubernetesAuth.putKubernetesRole(vaultName, role);

  const conditions = [
    condition(
      CONDITION.DatabaseReady,
      true,
      loginAllowed ? REASON.DatabaseReady : REASON.LoginRevoked,
      loginAllowed
        ? `database ${ids.database} on ${placedServer}`
        : `database ${ids.database} kept; login revoked and sessions ended (tenant ${valid.spec.state})`,
    ),
    condition(
      CONDITION.CredentialsStored,
      true,
      REASON.CredentialsStored,
      `credentials in Vault at ${deps.kv.dataPath(path)}`,
    ),
  ];
  const rotatedAt = Date.parse(lastRotated ?? now.toISOString());
  const nextStep = standbyRetired ? rotatedAt + interval : rotatedAt + gracePeriod(interval);
  return {
    ready: true,
    conditions,
    database: {
      server: placedServer,
      name: ids.database,
      role: ids.ownerRole,
      ...(lastRotated ? { lastRotated } : {}),
      standbyRetired,
    },
    vaultPath: deps.kv.dataPath(path),
    requeueAfterMs: Math.max(1_000, nextStep - now.getTime()),
  };
}
