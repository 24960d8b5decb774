import type { Logger } from 'pino';
import type { TenantStatus } from '../api/tenant.ts';
import { durationToMs } from '../api/duration.ts';
import { CONDITION, REASON, type ConditionInput } from '../controller/conditions.ts';
import type { EventRecorder } from '../controller/events.ts';
import type { Informer } from '../controller/informer.ts';
import { ERROR_CODES, OperatorError, toOperatorError } from '../errors.ts';
import { failpoint } from '../failpoints.ts';
import { FIELD_MANAGER, LABEL_TENANT } from '../api/constants.ts';
import type { KubeClient } from '../k8s/client.ts';
import { collectionPath, objectPath, RESOURCES } from '../k8s/resources.ts';
import { digestOf } from '../k8s/compact-object.ts';
import { ownedFieldsDigest, ownedFieldsEqual, replacementFor } from '../k8s/owned-fields.ts';
import type { KubeObject } from '../k8s/types.ts';
import { StringPool } from '../k8s/shared-strings.ts';
import type { PostgresAdmin } from '../postgres/admin.ts';
import { databaseIdentifiersFor, type DatabaseIdentifiers } from '../postgres/identifiers.ts';
import { ownershipMarker } from '../postgres/ownership.ts';
import { generatePassword } from '../postgres/password.ts';
import { prepareRotation, retireStandbyRole } from '../postgres/rotation.ts';
import {
  ensureTenantDatabase,
  footprintSettled,
  foreignInFootprint,
} from '../postgres/tenant-database.ts';
import type { TenantFootprint } from '../postgres/admin.ts';
import type { VaultReads } from '../vault/inventory.ts';
import type { KubernetesAuth } from '../vault/kubernetes-auth.ts';
import type { KvV2, SecretVersion } from '../vault/kv.ts';
import type { VaultPolicies } from '../vault/policy.ts';
import {
  serverSpecOf,
  type DatabaseServerConnections,
  type DatabaseServerObject,
  type ServerHandle,
} from './database-servers.ts';
import {
  claimCredentialsPath,
  credentialsPath,
  cutTenantVaultAccess,
  ensureTenantVaultAccess,
  foreignVaultObjects,
  readTenantVault,
  type TenantVaultState,
} from './database-vault.ts';
import { childMetadata, type TenantObject, type ValidTenant } from './model.ts';
import { choosePlacement } from './placement.ts';

export { credentialsPath, vaultObjectName } from './database-vault.ts';

// The tenant's PostgreSQL database and its credentials. The password is made
// here, set in PostgreSQL, and written to Vault KV; it is never put in a
// Kubernetes object, a log line, an event or a status field (unless the
// tenant asks for delivery as a Secret too).
//
// Two login roles take turns: rotation sets a fresh password on the idle one,
// checks that it connects, and only then points Vault at it, so Vault never
// holds credentials that do not work. Which role is current and when it
// became so are written to Vault in the same write as the password
// (`rotatedAt`): status only mirrors them, so a crash or a lost status write
// between the two can never make the next reconcile rotate again.
//
// Nothing is created or changed before every object of the tenant's name, in
// PostgreSQL and in Vault, is known to be this Tenant's (or absent).

export interface DatabaseDeps {
  servers: Informer<DatabaseServerObject>;
  /** Indexed by `status.database.server`. */
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
   * Every Secret named database-credentials, in every namespace and whoever
   * made it (a field selector, not our labels), cached compact: absent here
   * is absent, so a reconcile reads the API server only to write.
   */
  credentialsSecrets: Informer<KubeObject>;
  /**
   * Placements chosen but not yet in any Tenant's status: reconciles of
   * different tenants run at once, and must not both take a server's last slot.
   */
  reservations: Map<string, string>;
  /** Shortest spec.database.rotationInterval accepted (operator flag; tests lower it). */
  minRotationIntervalMs?: number;
  /** How a settled tenant's Vault objects are read (cached, checked by the inventory). */
  vaultReads?: VaultReads;
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
  /** When `username` became the current login role (ISO 8601): the rotation clock. */
  rotatedAt: string;
}

export const DEFAULT_MIN_ROTATION_INTERVAL_MS = 60_000;
const UNREACHABLE_RETRY_MS = 15_000;
/** How long a cached KV version is kept while the metadata still names it (its data never changes). */
const KV_VERSION_MAX_AGE_MS = 24 * 3_600_000;

/**
 * The database servers' CA certificates, one copy each: every cached
 * credentials secret holds its server's (1.1 KiB; 1 MiB over a thousand
 * database tenants). Only certificates: a password is never pooled, and
 * goes when its cached answer does.
 */
const certificates = new StringPool(1_000, 64 * 1024);

/** A credentials secret as read, with its CA certificate replaced in place by the pooled copy. */
function withSharedCertificate(
  secret: SecretVersion<StoredCredentials>,
): SecretVersion<StoredCredentials> {
  if (typeof secret.data.ca === 'string') secret.data.ca = certificates.share(secret.data.ca);
  return secret;
}

const CONFLICT_RETRY_MS = 30_000;

/** How long the previous login role keeps working after a rotation, so apps can re-read Vault. */
function gracePeriod(rotationIntervalMs: number): number {
  return Math.min(rotationIntervalMs / 2, 15 * 60_000);
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
  const cached = deps.credentialsSecrets.get(CREDENTIALS_SECRET, tenant.namespace);
  if (!credentials) {
    if (cached?.metadata.labels?.[LABEL_TENANT] === tenant.name) await deps.kube.delete(path);
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
  if (cached && digestOf(cached) === ownedFieldsDigest(desired)) return;
  // Compared exactly, like every child: a key added by someone else is drift.
  // The cache holds a digest: the comparison and the replace start from the
  // whole Secret as it is now. Created with POST, never applied: see child-sync.ts.
  const live = cached ? await deps.kube.get<KubeObject>(path) : undefined;
  if (!live) {
    const created = await deps.kube.create(
      collectionPath(RESOURCES.Secret, tenant.namespace),
      desired,
    );
    deps.credentialsSecrets.upsert(created);
  } else if (!ownedFieldsEqual(desired, live)) {
    const replaced = await deps.kube.request<KubeObject>('PUT', path, {
      body: replacementFor(desired, live),
      query: { fieldManager: FIELD_MANAGER },
    });
    deps.credentialsSecrets.upsert(replaced);
  }
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
  const placed = new Set(deps.tenants.byIndex(server).map((t) => t.metadata.name));
  for (const [tenant, reserved] of deps.reservations) if (reserved === server) placed.add(tenant);
  return placed.size;
}

/** A rotation interval the operator will not run: too short to be anything but a mistake (or a flood). */
function invalidRotationInterval(deps: DatabaseDeps, valid: ValidTenant): string | undefined {
  const interval = valid.spec.database.rotationInterval;
  const minimumMs = deps.minRotationIntervalMs ?? DEFAULT_MIN_ROTATION_INTERVAL_MS;
  if (durationToMs(interval) >= minimumMs) return undefined;
  return `spec.database.rotationInterval ${interval} is shorter than the minimum of ${minimumMs / 1000}s`;
}

/** Step 1: a server for the tenant, recorded in status before anything is created on it. */
function place(deps: DatabaseDeps, valid: ValidTenant): DatabaseOutcome {
  // A DatabaseServer whose spec does not parse is no candidate; it must not
  // stop every other tenant from being placed.
  const servers = deps.servers.list().flatMap((s) => {
    const spec = serverSpecOf(s);
    return spec
      ? [{ name: s.metadata.name, spec, status: s.status, placed: placedOn(deps, s.metadata.name) }]
      : [];
  });
  const placement = choosePlacement(servers, valid.spec.region);
  if (!placement.server) return notReady(placement.reason, placement.message, UNREACHABLE_RETRY_MS);
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

/** Everything one reconcile of a placed tenant works with. */
interface Context {
  deps: DatabaseDeps;
  tenant: TenantObject;
  valid: ValidTenant;
  now: Date;
  server: string;
  handle: ServerHandle;
  admin: PostgresAdmin;
  ids: DatabaseIdentifiers;
  /** The marker the tenant's roles carry. */
  claim: string;
  /** The tenant's roles and database as this reconcile found them. */
  footprint: TenantFootprint;
  vault: TenantVaultState;
  /** Vault's credentials secret, when it holds a login role of this tenant. */
  stored: SecretVersion<StoredCredentials> | undefined;
}

export async function reconcileDatabase(
  deps: DatabaseDeps,
  tenant: TenantObject,
  valid: ValidTenant,
  now: Date,
): Promise<DatabaseOutcome> {
  if (!valid.spec.database.enabled) return databaseDisabled();
  const invalid = invalidRotationInterval(deps, valid);
  if (invalid) return notReady(REASON.InvalidSpec, invalid);

  const placedServer = tenant.status?.database?.server;
  // Placed, or placing again (the status write of an earlier choice failed):
  // either way this tenant's own reservation must not count against it.
  deps.reservations.delete(valid.name);
  if (!placedServer) return place(deps, valid);
  const serverObject = deps.servers.get(placedServer);
  if (!serverObject) {
    return notReady(
      REASON.ServerMissing,
      `DatabaseServer ${placedServer} no longer exists`,
      UNREACHABLE_RETRY_MS,
    );
  }
  const ids = databaseIdentifiersFor(valid.name);
  const claim = ownershipMarker(valid.name, valid.uid);
  let handle: ServerHandle;
  let footprint: TenantFootprint;
  try {
    handle = await deps.connections.get(serverObject);
    // One query: the server answers, and all of the tenant's objects on it.
    footprint = await handle.admin.inspectTenant([ids.ownerRole, ...ids.loginRoles], ids.database);
  } catch (err: unknown) {
    // The admin credentials come from Vault: Vault being down is not the server's fault.
    if (toOperatorError(err).origin === 'vault') throw err;
    return notReady(
      REASON.ServerUnreachable,
      `DatabaseServer ${placedServer} unreachable: ${toOperatorError(err).message}`,
      UNREACHABLE_RETRY_MS,
    );
  }

  // Step 2: nothing is written unless every object of the tenant's name is its own.
  const foreignInDatabase = foreignInFootprint(footprint, ids, claim);
  if (foreignInDatabase.length > 0) {
    return conflict(
      REASON.DatabaseConflict,
      valid,
      `on DatabaseServer ${placedServer}, ${foreignInDatabase.join(', ')}`,
    );
  }
  const reads = settledReads(deps, tenant);
  const vault = await readTenantVault(deps, valid, reads);
  const foreignInVault = foreignVaultObjects(deps, vault, valid);
  if (foreignInVault.length > 0) {
    return conflict(REASON.VaultConflict, valid, foreignInVault.join(', '));
  }
  // A version's data never changes: the cached secret stands as long as the
  // metadata names it as current and neither deleted nor destroyed.
  const metadata = vault.credentialsMetadata;
  const currentVersion = metadata?.currentVersion;
  const current = metadata?.versions[String(currentVersion)];
  const secret = metadata
    ? await deps.kv.readSecret<StoredCredentials>(credentialsPath(valid.name), {
        cached:
          reads && reads.maxAgeMs > 0
            ? {
                maxAgeMs: KV_VERSION_MAX_AGE_MS,
                fresh: (cached) =>
                  cached?.version === currentVersion &&
                  !current?.deletionTime &&
                  !current?.destroyed,
                keep: withSharedCertificate,
              }
            : undefined,
      })
    : undefined;
  const context: Context = {
    deps,
    tenant,
    valid,
    now,
    server: placedServer,
    handle,
    admin: handle.admin,
    ids,
    claim,
    footprint,
    vault,
    stored: secret && ids.loginRoles.includes(secret.data.username) ? secret : undefined,
  };
  try {
    return await provision(context);
  } catch (err: unknown) {
    // Created by someone else between the check and our write.
    if (err instanceof OperatorError && err.code === ERROR_CODES.FOREIGN_OBJECT) {
      return notReady(REASON.DatabaseConflict, err.message, CONFLICT_RETRY_MS);
    }
    throw err;
  }
}

/**
 * Cached Vault answers serve a tenant whose step was done at its last
 * reconcile, of the spec it has now: settled. Its `condition` is True, or False for one of
 * `doneReasons` (reasons that come only after the step's Vault work). One
 * being provisioned, in conflict or failing reads Vault every time, so that
 * what someone fixes by hand is seen at once.
 */
export function settledReads(
  deps: { vaultReads?: VaultReads | undefined },
  tenant: TenantObject,
  condition: string = CONDITION.DatabaseReady,
  doneReasons: readonly string[] = [],
): VaultReads | undefined {
  // A changed spec is a moment to look at everything afresh.
  if (tenant.status?.observedGeneration !== tenant.metadata.generation) return undefined;
  const done = tenant.status?.conditions?.find((c) => c.type === condition);
  if (!done) return undefined;
  return done.status === 'True' || doneReasons.includes(done.reason) ? deps.vaultReads : undefined;
}

function conflict(reason: string, valid: ValidTenant, objects: string): DatabaseOutcome {
  return notReady(
    reason,
    `refusing to touch what is not tenant ${valid.name}'s (uid ${valid.uid}): ${objects}; ` +
      'nothing was written. Remove or rename it, or delete the Tenant.',
    CONFLICT_RETRY_MS,
  );
}

/** Steps 3 to 6, once the tenant's objects are known to be its own. */
async function provision(context: Context): Promise<DatabaseOutcome> {
  const { deps, tenant, valid, ids, admin, claim, stored } = context;
  const loginAllowed = valid.spec.state === 'Active';

  // 3. Roles and database, each idempotent. Vault is the record of which
  //    login role is current and of its password; PostgreSQL is made to agree
  //    (a password changed behind our back is put back from Vault).
  //    The other login role may log in only during a rotation's grace period.
  const existedBefore = context.footprint.database !== undefined;
  const current = stored?.data;
  const retirement = standbyRetirement(context);
  const wanted = {
    ...(current ? { active: { role: current.username, password: current.password } } : {}),
    canLogin: loginAllowed,
    standbyCanLogin: current !== undefined && !retirement.recorded && !retirement.due,
  };
  // A settled tenant's footprint already says all is as wanted: no more queries.
  if (!(await footprintSettled(context.footprint, ids, claim, wanted)))
    await ensureTenantDatabase(admin, ids, claim, wanted);
  if (!existedBefore && tenant.status?.database?.name) {
    // It was there once and is gone: recreated empty, which is data loss.
    await deps.events.record(
      tenant,
      'Warning',
      REASON.DatabaseRecreated,
      `database ${ids.database} had vanished from ${context.server} and was recreated EMPTY`,
    );
  }

  // 4. Credentials: rotated when due, the previous role retired after its grace period.
  const credentials = await reconcileCredentials(context, loginAllowed);
  if (!loginAllowed) await admin.terminateSessions([...ids.loginRoles]);

  // 5. Delivery as a Secret too, only when the tenant asks for it.
  await deliverSecret(
    deps,
    valid,
    valid.spec.database.delivery === 'VaultAndSecret' ? credentials.latest : undefined,
  );

  // 6. Vault access for the tenant's workloads: their service accounts read
  //    their own path, nothing else, with tokens of bounded life. A closed
  //    tenant has none: its policy goes first (tokens already issued stop
  //    reading), then its auth role.
  if (valid.spec.state === 'Closed') {
    const cut = await cutTenantVaultAccess(deps, context.vault, valid);
    if (cut.length > 0)
      await deps.events.record(
        tenant,
        'Normal',
        REASON.AccessCut,
        `tenant closed: ${cut.join('; ')} removed`,
      );
  } else {
    await ensureTenantVaultAccess(deps, context.vault, valid);
  }

  // Come back for the next rotation, or sooner to retire the previous role.
  // A tenant that may not log in is not rotated: only the retirement counts.
  const interval = durationToMs(valid.spec.database.rotationInterval);
  const rotatedAt = Date.parse(credentials.latest.rotatedAt);
  const nextStep = !credentials.standbyRetired
    ? rotatedAt + gracePeriod(interval)
    : loginAllowed
      ? rotatedAt + interval
      : undefined;
  return {
    ready: true,
    conditions: [
      condition(
        CONDITION.DatabaseReady,
        true,
        loginAllowed ? REASON.DatabaseReady : REASON.LoginRevoked,
        loginAllowed
          ? `database ${ids.database} on ${context.server}`
          : `database ${ids.database} kept; login revoked and sessions ended (tenant ${valid.spec.state})`,
      ),
      condition(
        CONDITION.CredentialsStored,
        true,
        REASON.CredentialsStored,
        `credentials in Vault at ${deps.kv.dataPath(credentialsPath(valid.name))}`,
      ),
    ],
    database: {
      server: context.server,
      name: ids.database,
      role: ids.ownerRole,
      lastRotated: credentials.latest.rotatedAt,
      standbyRetired: credentials.standbyRetired,
    },
    vaultPath: deps.kv.dataPath(credentialsPath(valid.name)),
    ...(nextStep === undefined
      ? {}
      : { requeueAfterMs: Math.max(1_000, nextStep - context.now.getTime()) }),
  };
}

/**
 * When the current login role took over, as Vault says: its `rotatedAt`, or
 * for a secret without one the time its version was written.
 */
function rotationTime(stored: SecretVersion<StoredCredentials>): number | undefined {
  for (const candidate of [stored.data.rotatedAt, stored.createdTime]) {
    const time = candidate === undefined ? Number.NaN : Date.parse(candidate);
    if (Number.isFinite(time)) return time;
  }
  return undefined;
}

/**
 * Whether the login role used before the current one is retired: status
 * says so about the very rotation Vault holds, or its grace period is over
 * (then it is retired now, if it was not: idempotent).
 */
function standbyRetirement(context: Context): { recorded: boolean; due: boolean } {
  const { stored, valid, now } = context;
  const recorded = context.tenant.status?.database;
  const rotatedAt = stored ? rotationTime(stored) : undefined;
  const interval = durationToMs(valid.spec.database.rotationInterval);
  return {
    recorded:
      stored !== undefined &&
      recorded?.lastRotated === stored.data.rotatedAt &&
      recorded.standbyRetired === true,
    due: rotatedAt !== undefined && rotatedAt + gracePeriod(interval) <= now.getTime(),
  };
}

interface CredentialsOutcome {
  /** What Vault holds once the step is done. */
  latest: StoredCredentials;
  /** The role used before `latest` took over can no longer log in. */
  standbyRetired: boolean;
}

async function reconcileCredentials(
  context: Context,
  loginAllowed: boolean,
): Promise<CredentialsOutcome> {
  const { deps, valid, ids, admin, claim, stored, now, handle } = context;
  const path = credentialsPath(valid.name);
  const connectionFields = {
    host: handle.spec.host,
    port: String(handle.spec.port),
    dbname: ids.database,
    sslmode: handle.caCertificate ? 'verify-full' : 'disable',
    ca: handle.caCertificate ?? '',
  };
  const interval = durationToMs(valid.spec.database.rotationInterval);
  // Check-and-set against the version read: a second writer (another
  // replica, a person) makes this write fail instead of silently losing.
  const cas = context.vault.credentialsMetadata?.currentVersion ?? 0;
  const store = async (credentials: StoredCredentials): Promise<StoredCredentials> => {
    if (cas === 0) await claimCredentialsPath(deps, context.vault, valid);
    await deps.kv.writeSecret(path, credentials, { cas });
    failpoint('after-credentials-write');
    return credentials;
  };

  const current = stored?.data;
  const rotatedAt = stored ? rotationTime(stored) : undefined;
  const due = !current || rotatedAt === undefined || rotatedAt + interval <= now.getTime();
  const stamp = now.toISOString();
  if (due && loginAllowed) {
    const fresh = await prepareRotation(admin, ids, claim, current?.username);
    const latest = await store({
      username: fresh.role,
      password: fresh.password,
      ...connectionFields,
      rotatedAt: stamp,
    });
    if (current) {
      await deps.events.record(
        context.tenant,
        'Normal',
        REASON.CredentialsRotated,
        `database credentials rotated to role ${fresh.role}`,
      );
    }
    // On a first rotation the other role has only ever had a password nobody knows.
    return { latest, standbyRetired: !current };
  }
  if (!current) {
    // Suspended before its first credentials: stored, but nobody may log in yet.
    const role = ids.loginRoles[0];
    const password = generatePassword();
    await admin.ensureLoginRole(role, ids.ownerRole, claim, password, { canLogin: false });
    const latest = await store({ username: role, password, ...connectionFields, rotatedAt: stamp });
    return { latest, standbyRetired: true };
  }

  // Not due. Status is trusted about the retirement only when it describes
  // the rotation Vault holds; otherwise retire again (it is idempotent).
  const latestRotatedAt = new Date(rotatedAt ?? now.getTime()).toISOString();
  const retirement = standbyRetirement(context);
  let standbyRetired = retirement.recorded;
  if (!standbyRetired && retirement.due) {
    await retireStandbyRole(admin, ids, claim, current.username);
    standbyRetired = true;
  }
  let latest: StoredCredentials = { ...current, rotatedAt: current.rotatedAt ?? latestRotatedAt };
  if (
    Object.entries(connectionFields).some(([key, value]) => current[key] !== value) ||
    current.rotatedAt !== latest.rotatedAt
  ) {
    latest = await store({ ...latest, ...connectionFields });
  }
  return { latest, standbyRetired };
}
