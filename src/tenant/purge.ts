import { isoSeconds } from '../iso-time.ts';
import type { Logger } from 'pino';
import { ANNOTATION_ERASE_NOW } from '../api/constants.ts';
import type { TenantStatus } from '../api/tenant.ts';
import { tenantPrefix } from '../backup/layout.ts';
import type { TenantBackupObject } from '../backup/records.ts';
import { backupCronJobName } from '../backup/cronjob.ts';
import {
  backupServiceAccountName,
  removeTenantBackupVault,
  transitKeyName,
} from '../backup/vault-access.ts';
import { tenantRecords } from '../backup/history.ts';
import { isNotFound } from '../errors.ts';
import { failpoint, type Failpoint } from '../failpoints.ts';
import type { KubeClient } from '../k8s/client.ts';
import { objectPath, RESOURCES } from '../k8s/resources.ts';
import type { KubeObject } from '../k8s/types.ts';
import type { EventRecorder } from '../controller/events.ts';
import {
  certificateDocument,
  certificateKey,
  signCertificate,
  type SignedCertificate,
} from '../erasure/certificate.ts';
import { OPERATOR_VERSION } from '../version.ts';
import type { Transit } from '../vault/transit.ts';
import type { TenantErasureFacts } from '../metrics/registry.ts';
import { databaseIdentifiersFor } from '../postgres/identifiers.ts';
import { ownershipMarker } from '../postgres/ownership.ts';
import { dropTenantDatabase } from '../postgres/tenant-database.ts';
import { cutTenantAccess } from './access-cut.ts';
import type { BackupDeps } from './backup.ts';
import type { DatabaseDeps } from './database.ts';
import { credentialsClaimed, credentialsPath, readTenantVault } from './database-vault.ts';
import { namespaceFor, type TenantObject, type ValidTenant } from './model.ts';
import { isTenantNamespace } from './namespace.ts';

// The purge of a closed tenant whose retention time has passed: every trace
// of it, in an order where each step is safe to repeat and a crash between
// any two is finished by the next leader. Each finished step is recorded in
// status (status.erasure.steps) before the next begins, with what it
// removed: that record is what the erasure certificate is made from.
//
//   access        the tenant's and its backup job's Vault policies and auth
//                 roles, database login revoked and sessions ended
//   database      the database and its roles, sessions terminated
//   backups       every object under the tenant's prefix in every store, and
//                 its TenantBackup records
//   secrets       the credentials in Vault KV: every version and the metadata
//   key           the tenant's Transit key: any copy of a backup left
//                 anywhere is unreadable from now on
//   namespace     deleted, and waited for until it is gone

export const PURGE_STEPS = [
  'access',
  'database',
  'backups',
  'secrets',
  'key',
  'namespace',
] as const;
export type PurgeStep = (typeof PURGE_STEPS)[number];

type Erasure = NonNullable<TenantStatus['erasure']>;

export interface PurgeDeps {
  client: KubeClient;
  database: DatabaseDeps;
  backup: BackupDeps;
  /** Signs the erasure certificate (the operator's own Vault identity). */
  transit: Transit;
  /** How long the certificate's copy in the store is to be kept (the legal period). */
  certificateRetentionMs: number;
  events: EventRecorder;
  log: Logger;
}

/** Five years, the default legal period for keeping the proof of an erasure. */
export const DEFAULT_CERTIFICATE_RETENTION_MS = 1826 * 86_400_000;

export interface PurgeProgress {
  erasure: Erasure;
  /** The namespace is still going away: look again after this long. */
  requeueAfterMs?: number;
  /** What the erasure waits for meanwhile, for status. */
  waiting?: string;
}

const NAMESPACE_POLL_MS = 2_000;

async function purgeAccess(deps: PurgeDeps, tenant: TenantObject, valid: ValidTenant) {
  const { cut } = await cutTenantAccess(deps.database, tenant);
  const backupAccess = await removeTenantBackupVault(deps.backup.vault, valid, { keepKey: true });
  // The backup job's CronJob and ServiceAccount in the operator's namespace.
  const jobObjects: string[] = [];
  const namespace = deps.backup.job.namespace;
  for (const [informer, kind, name] of [
    [deps.backup.cronJobs, 'CronJob', backupCronJobName(valid.name)],
    [deps.backup.serviceAccounts, 'ServiceAccount', backupServiceAccountName(valid.name)],
  ] as const) {
    const live = informer.get(name, namespace);
    if (!live) continue;
    await deps.client
      .request('DELETE', objectPath(RESOURCES[kind], name, namespace), {
        body: { preconditions: { uid: live.metadata.uid } },
      })
      .catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
    jobObjects.push(`${kind} ${namespace}/${name}`);
  }
  return [...cut, ...backupAccess, ...jobObjects];
}

async function purgeDatabase(deps: PurgeDeps, tenant: TenantObject, valid: ValidTenant) {
  const serverName = tenant.status?.database?.server;
  if (!serverName) return [];
  const server = deps.database.servers.get(serverName);
  if (!server)
    throw new Error(
      `DatabaseServer ${serverName} is gone: the tenant's database on it cannot be dropped`,
    );
  const handle = await deps.database.connections.get(server);
  const ids = databaseIdentifiersFor(valid.name);
  const { dropped, notOurs } = await dropTenantDatabase(
    handle.admin,
    ids,
    ownershipMarker(valid.name, valid.uid),
  );
  return [
    ...(dropped.length > 0 ? [`${dropped.join(', ')} on ${serverName}`] : []),
    ...(notOurs.length > 0
      ? [`left on ${serverName}, not this tenant's (no claim of its uid): ${notOurs.join(', ')}`]
      : []),
  ];
}

async function purgeBackups(deps: PurgeDeps, tenant: TenantObject, valid: ValidTenant) {
  const prefix = tenantPrefix(valid.name, valid.uid);
  const removed: string[] = [];
  for (const storeName of deps.backup.stores.names()) {
    const store = await deps.backup.stores.get(storeName);
    await store.removeAbandonedWrites?.(prefix, new Date(Date.now() + 60_000));
    const keys: string[] = [];
    for await (const object of store.list(prefix)) keys.push(object.key);
    if (keys.length === 0) continue;
    await store.delete(keys);
    const ids = new Set(keys.map((key) => key.slice(prefix.length).split('/')[0]));
    removed.push(
      `${ids.size} backup(s) (${keys.length} objects) in BackupStore ${storeName}: ${[...ids].sort().join(', ')}`,
    );
  }
  const records: TenantBackupObject[] = tenantRecords(deps.backup.records.byIndex(valid.name), {
    name: valid.name,
    creationTimestamp: tenant.metadata.creationTimestamp,
  });
  for (const record of records) {
    await deps.client
      .request('DELETE', objectPath(RESOURCES.TenantBackup, record.metadata.name), {
        body: { preconditions: { uid: record.metadata.uid } },
      })
      .catch((err: unknown) => {
        if (!isNotFound(err)) throw err;
      });
  }
  if (records.length > 0) removed.push(`${records.length} TenantBackup record(s)`);
  return removed;
}

async function purgeSecrets(deps: PurgeDeps, valid: ValidTenant) {
  const state = await readTenantVault(deps.database, valid);
  if (!state.credentialsMetadata) return [];
  // Someone else's secret at this path is left alone (never ours to erase).
  if (!credentialsClaimed(state, valid)) return [];
  await deps.database.kv.deleteSecretAllVersions(credentialsPath(valid.name));
  return [`Vault secret ${deps.database.kv.dataPath(credentialsPath(valid.name))}, every version`];
}

async function purgeKey(deps: PurgeDeps, valid: ValidTenant) {
  const name = transitKeyName(valid.name);
  const key = await deps.backup.vault.transit.keyInfo(name);
  if (!key) return [];
  await deps.backup.vault.transit.deleteKey(name);
  return [`Transit key ${name} (${key.latestVersion} version(s))`];
}

interface NamespaceCondition {
  type: string;
  status: string;
  message?: string;
}

/**
 * Answers what was deleted, or what the namespace still waits for while it
 * is going away: the namespace controller's own conditions say which
 * content or finalizers remain, and status shows them (a namespace that
 * never goes would otherwise be a silent, overdue purge).
 */
async function purgeNamespace(
  deps: PurgeDeps,
  valid: ValidTenant,
): Promise<string[] | { waiting: string }> {
  const name = namespaceFor(valid.name);
  const path = objectPath(RESOURCES.Namespace, name);
  const namespace = await deps.client.get<KubeObject>(path);
  // Gone (now, or by a run this step did not get to record): it is not
  // there any more. Someone else's of the same name is never touched.
  if (!namespace) return [`namespace ${name}: gone`];
  if (!isTenantNamespace(namespace, valid.uid)) return [];
  if (!namespace.metadata.deletionTimestamp) {
    await deps.client.request('DELETE', path, {
      body: { propagationPolicy: 'Background', preconditions: { uid: namespace.metadata.uid } },
    });
    return { waiting: `namespace ${name} is being deleted` };
  }
  const conditions =
    (namespace.status as { conditions?: NamespaceCondition[] } | undefined)?.conditions ?? [];
  const remaining = conditions
    .filter((c) => c.status === 'True' && c.message)
    .map((c) => `${c.type}: ${c.message ?? ''}`);
  return {
    waiting: `namespace ${name} is being deleted${remaining.length > 0 ? `; ${remaining.join('; ')}` : ''}`,
  };
}

const FAILPOINT_AFTER: Record<PurgeStep, Failpoint> = {
  access: 'purge-after-access',
  database: 'purge-after-database',
  backups: 'purge-after-backups',
  secrets: 'purge-after-secrets',
  key: 'purge-after-key',
  namespace: 'purge-after-namespace',
};

/** An immediate erasure asked for, confirmed by the tenant's own name (see ANNOTATION_ERASE_NOW). */
export function erasureRequested(tenant: TenantObject): boolean {
  return tenant.metadata.annotations?.[ANNOTATION_ERASE_NOW] === tenant.metadata.name;
}

/**
 * Runs the steps not yet recorded as done, recording each through `record`
 * (a status write) before the next starts. Throws on a failure (retried
 * with backoff by the queue; status keeps what was done).
 */
export async function purgeTenant(
  deps: PurgeDeps,
  tenant: TenantObject,
  valid: ValidTenant,
  now: () => Date,
  record: (erasure: Erasure) => Promise<void>,
): Promise<PurgeProgress> {
  let erasure: Erasure = tenant.status?.erasure?.startedAt
    ? { ...tenant.status.erasure }
    : {
        startedAt: isoSeconds(now()),
        // Why now: the retention time passed, or someone asked (and confirmed).
        trigger: erasureRequested(tenant) ? 'ErasureRequest' : 'RetentionExpired',
        steps: [],
      };
  if (!tenant.status?.erasure?.startedAt) await record(erasure);
  for (const step of PURGE_STEPS) {
    if (erasure.steps?.some((s) => s.name === step)) continue;
    let removed: string[] | undefined;
    switch (step) {
      case 'access':
        removed = await purgeAccess(deps, tenant, valid);
        break;
      case 'database':
        removed = await purgeDatabase(deps, tenant, valid);
        break;
      case 'backups':
        removed = await purgeBackups(deps, tenant, valid);
        break;
      case 'secrets':
        removed = await purgeSecrets(deps, valid);
        break;
      case 'key':
        removed = await purgeKey(deps, valid);
        break;
      case 'namespace': {
        const outcome = await purgeNamespace(deps, valid);
        if ('waiting' in outcome)
          return { erasure, requeueAfterMs: NAMESPACE_POLL_MS, waiting: outcome.waiting };
        removed = outcome;
        break;
      }
    }
    erasure = {
      ...erasure,
      steps: [...(erasure.steps ?? []), { name: step, completedAt: isoSeconds(now()), removed }],
    };
    await record(erasure);
    failpoint(FAILPOINT_AFTER[step]);
  }
  if (!erasure.completedAt) {
    erasure = { ...erasure, completedAt: isoSeconds(now()) };
    await record(erasure);
  }
  if (!erasure.certificate) {
    // Built from what status recorded, so a retry after a crash signs the same bytes.
    const completedAt = erasure.completedAt ?? isoSeconds(now());
    const document = certificateDocument({
      tenant: valid.name,
      uid: valid.uid,
      closedAt: tenant.status?.closedAt,
      purgeAfter: tenant.status?.purgeAfter,
      erasure,
      operatorVersion: OPERATOR_VERSION,
      keepUntil: isoSeconds(new Date(Date.parse(completedAt) + deps.certificateRetentionMs)),
    });
    const signed = await signCertificate(deps.transit, document);
    const copies = await storeCertificate(deps, valid, signed);
    erasure = {
      ...erasure,
      certificate: { ...signed, copies: copies.join(', ') },
    };
    await record(erasure);
    // Logged whole too (it holds no secret): a deleted Tenant is let go
    // after this, and without a store the log is where the proof lives on.
    deps.log.info(
      { tenant: valid.name, uid: valid.uid, certificate: signed, copies },
      'erasure certificate',
    );
    await deps.events.record(
      tenant,
      copies.length > 0 ? 'Normal' : 'Warning',
      'ErasureCertified',
      `erasure certificate signed (${signed.signature.slice(0, 12)}…)` +
        (copies.length > 0
          ? `; copies: ${copies.join(', ')}`
          : '; no BackupStore to keep a copy in: the certificate is only in status'),
    );
  }
  return { erasure };
}

/**
 * The certificate's copy, outside every tenant's prefix: in the store of
 * the tenant's region, else in every store (a tenant without a store of its
 * own still leaves its proof somewhere). Answers where it went.
 */
async function storeCertificate(
  deps: PurgeDeps,
  valid: ValidTenant,
  signed: SignedCertificate,
): Promise<string[]> {
  const chosen = deps.backup.stores.choose(valid.spec.region);
  const names = 'problem' in chosen ? deps.backup.stores.names() : [chosen.name];
  const key = certificateKey(valid.name, valid.uid);
  const body = Buffer.from(JSON.stringify(signed, null, 2));
  const copies: string[] = [];
  for (const name of names) {
    const store = await deps.backup.stores.get(name);
    await store.putBytes(key, body);
    copies.push(`${store.location.replace(/\/$/, '')}/${key}`);
  }
  return copies;
}

/** The metrics' view of a tenant on its way to erasure (undefined: not closed, not erased). */
export function erasureFactsOf(tenant: TenantObject): TenantErasureFacts | undefined {
  const status = tenant.status;
  const purged = status?.erasure?.completedAt !== undefined;
  if (!purged && status?.purgeAfter === undefined) return undefined;
  const due = status?.purgeAfter === undefined ? NaN : Date.parse(status.purgeAfter) / 1000;
  const spec = tenant.spec as { retention?: { legalHold?: boolean } } | undefined;
  return {
    tenant: tenant.metadata.name,
    ...(Number.isFinite(due) ? { purgeDue: due } : {}),
    legalHold: spec?.retention?.legalHold === true,
    purged,
  };
}
