import { parseArgs } from 'node:util';
import type { ClusterAccess } from '../k8s/cluster-access.ts';
import { backupStoreSpecSchema, type BackupStoreSpec } from '../api/backupstore.ts';
import { describeIssues } from '../api/validate.ts';
import { listTenantBackups } from '../backup/catalog.ts';
import {
  cleanLeftovers,
  DEFAULT_LEFTOVER_GRACE_MS,
  ensureTenantLabel,
  hasLeftovers,
  type LeftoverReport,
} from '../backup/leftovers.ts';
import { newBackupId } from '../backup/layout.ts';
import {
  createScheduledRecord,
  readRecord,
  succeededStatus,
  writeRecordStatus,
  type TenantBackupObject,
} from '../backup/records.ts';
import { openBackup, restoreBackup } from '../backup/restore.ts';
import { runBackup } from '../backup/run.ts';
import { tenantLogin } from '../backup/tenant-login.ts';
import { openStore } from '../backup/store-factory.ts';
import { selectStore } from '../backup/store-selection.ts';
import type { BackupObjectStore } from '../backup/store.ts';
import { transitKeyName, restoreVault } from '../backup/vault-access.ts';
import { verifyBackup } from '../backup/verify.ts';
import { createRestoreDatabase } from '../backup/scratch-database.ts';
import { ERROR_CODES, OperatorError, toOperatorError } from '../errors.ts';
import { KubeClient } from '../k8s/client.ts';
import { collectionPath, objectPath, RESOURCES } from '../k8s/resources.ts';
import type { KubeList, KubeObject } from '../k8s/types.ts';
import { createLogger } from '../log.ts';
import { databaseIdentifiersFor } from '../postgres/identifiers.ts';
import type { TenantObject } from '../tenant/model.ts';
import { DatabaseServerConnections } from '../tenant/database-servers.ts';
import { KvV2 } from '../vault/kv.ts';
import { Transit } from '../vault/transit.ts';
import type { OperatorVault } from '../vault/identity.ts';
import { durationToMs } from '../api/duration.ts';
import { UsageError } from './options.ts';

// `tenant-operator backup run|list|restore|verify --tenant NAME`: what the
// backup CronJob runs (run), and what a person runs to look at and use
// backups. Every command reads the Tenant and its BackupStore from the API
// server and logs in to Vault with the identity in the environment (the
// backup job: its own tenant's backup role, which can make data keys but
// decrypt nothing; restore and verify: a short-lived token of the tenant's
// restore role, obtained through the token role).

export const BACKUP_USAGE = `backup commands (the Vault identity comes from the environment, as for the operator):
  backup run --tenant NAME [--record TENANTBACKUP] [--leftover-grace DURATION]
                 dump, encrypt and store one backup; records it as a TenantBackup
                 (--record: the on-demand TenantBackup to fill in). First removes what
                 interrupted runs of the tenant left: backups without a manifest, unfinished
                 uploads and temporary files, and marks their TenantBackups Failed, once older
                 than --leftover-grace (default 7h, past the backup Job's 6h deadline, so a
                 run still under way is never touched; 0s: everything, for tests and repairs
                 when no other run of the tenant is under way)
  backup list --tenant NAME
                 the tenant's backups in its store, newest last
  backup restore --tenant NAME [--backup ID] [--into DATABASE] [--clean]
                 restore the latest (or the given) backup into the tenant's own database
                 (--clean drops the dumped objects first) or into a new database DATABASE
  backup verify --tenant NAME [--backup ID]
                 restore into a scratch database, compare row counts with the backup, drop it
  options: --namespace NS   the operator's namespace, where store credentials live [POD_NAMESPACE] (tenant-system)`;

interface CommandContext {
  kube: KubeClient;
  vault: OperatorVault;
  namespace: string;
  kvMount: string;
  transitMount: string;
}

export interface BackupCommandEnv {
  loadClusterAccess(): Promise<ClusterAccess>;
  vaultFromEnv(): Promise<OperatorVault | undefined>;
}

function parse(args: string[]) {
  try {
    return parseArgs({
      args,
      options: {
        tenant: { type: 'string' },
        record: { type: 'string' },
        backup: { type: 'string' },
        into: { type: 'string' },
        clean: { type: 'boolean', default: false },
        namespace: { type: 'string' },
        json: { type: 'boolean', default: false },
        'leftover-grace': { type: 'string' },
      },
      strict: true,
    }).values;
  } catch (err: unknown) {
    throw new UsageError((err as Error).message);
  }
}

async function getTenant(kube: KubeClient, name: string): Promise<TenantObject> {
  const tenant = await kube.get<TenantObject>(objectPath(RESOURCES.Tenant, name));
  if (!tenant) throw new OperatorError(ERROR_CODES.API_NOT_FOUND, `Tenant ${name} does not exist`);
  return tenant;
}

interface ChosenStore {
  name: string;
  spec: BackupStoreSpec;
  store: BackupObjectStore;
}

async function storeOf(
  ctx: CommandContext,
  tenant: TenantObject,
  requested?: string,
): Promise<ChosenStore> {
  const list = await ctx.kube.request<KubeList<KubeObject & { spec?: unknown }>>(
    'GET',
    collectionPath(RESOURCES.BackupStore),
  );
  const candidates = list.items.map((item) => {
    const parsed = backupStoreSpecSchema.safeParse(item.spec ?? {});
    return parsed.success
      ? {
          name: item.metadata.name,
          region: parsed.data.region,
          isDefault: parsed.data.default,
          spec: parsed.data,
        }
      : { name: item.metadata.name, problem: describeIssues(parsed.error, 'spec') };
  });
  const region = (tenant.spec as { region?: string } | undefined)?.region;
  // A store whose spec does not parse is never picked by region; named, it says why.
  const chosen = selectStore(
    candidates.filter((c) => 'spec' in c || c.name === requested),
    region,
    requested,
  );
  if (!('spec' in chosen))
    throw new OperatorError(
      ERROR_CODES.INVALID_SPEC,
      `BackupStore ${chosen.name}: ${chosen.problem}`,
    );
  const store = await openStore(chosen.spec, async (name) => {
    const secret = await ctx.kube.get<KubeObject & { data?: Record<string, string> }>(
      objectPath(RESOURCES.Secret, name, ctx.namespace),
    );
    if (!secret)
      throw new OperatorError(
        ERROR_CODES.INVALID_SPEC,
        `BackupStore ${chosen.name}: Secret ${ctx.namespace}/${name} does not exist`,
      );
    return Object.fromEntries(
      Object.entries(secret.data ?? {}).map(([k, v]) => [
        k,
        Buffer.from(v, 'base64').toString('utf8'),
      ]),
    );
  });
  return { name: chosen.name, spec: chosen.spec, store };
}

/** --leftover-grace: a duration such as 7h; 0s is allowed here (nothing is young enough to keep). */
function leftoverGraceMs(value: string | undefined): number {
  if (value === undefined) return DEFAULT_LEFTOVER_GRACE_MS;
  if (/^0+[smhd]$/.test(value)) return 0;
  try {
    return durationToMs(value);
  } catch (err: unknown) {
    throw new UsageError(`backup run: --leftover-grace: ${(err as Error).message}`);
  }
}

/** Never throws: a cleanup that fails must not cost the tenant its backup. */
async function cleanLeftoversOf(
  ctx: CommandContext,
  chosen: ChosenStore,
  tenant: TenantObject,
  graceMs: number,
  exceptRecord: string | undefined,
): Promise<LeftoverReport> {
  const log = createLogger(undefined, 'stderr');
  const tenantName = tenant.metadata.name;
  let report: LeftoverReport;
  try {
    report = await cleanLeftovers(ctx.kube, {
      store: chosen.store,
      storeName: chosen.name,
      tenant: tenantName,
      tenantUid: uidOf(tenant),
      graceMs,
      now: new Date(),
      ...(exceptRecord === undefined ? {} : { exceptRecord }),
    });
  } catch (err: unknown) {
    report = {
      removedBackups: [],
      abandonedWrites: [],
      failedRecords: [],
      problems: [`cleaning leftovers: ${toOperatorError(err).message}`],
    };
  }
  if (hasLeftovers(report))
    log.info(
      {
        tenant: tenantName,
        store: chosen.name,
        removedBackups: report.removedBackups,
        abandonedWrites: report.abandonedWrites.map((w) => w.key),
        failedRecords: report.failedRecords,
      },
      'leftovers of interrupted backup runs cleaned',
    );
  if (report.problems.length > 0)
    log.warn(
      { tenant: tenantName, store: chosen.name, problems: report.problems },
      'leftovers of interrupted backup runs not (all) cleaned; backing up anyway',
    );
  return report;
}

function uidOf(tenant: TenantObject): string {
  const uid = tenant.metadata.uid;
  if (!uid)
    throw new OperatorError(ERROR_CODES.INTERNAL, `Tenant ${tenant.metadata.name} has no uid`);
  return uid;
}

async function commandRun(
  ctx: CommandContext,
  tenantName: string,
  recordArg: string | undefined,
  leftoverGrace: number,
): Promise<void> {
  const log = createLogger(undefined, 'stderr');
  const tenant = await getTenant(ctx.kube, tenantName);
  let record: TenantBackupObject | undefined;
  if (recordArg !== undefined) {
    record = await readRecord(ctx.kube, recordArg);
    if (!record)
      throw new OperatorError(
        ERROR_CODES.API_NOT_FOUND,
        `TenantBackup ${recordArg} does not exist`,
      );
    if (record.spec.tenant !== tenantName)
      throw new OperatorError(
        ERROR_CODES.INVALID_SPEC,
        `TenantBackup ${recordArg} is for tenant ${record.spec.tenant}`,
      );
    if (record.status?.phase === 'Succeeded' || record.status?.phase === 'Failed')
      throw new OperatorError(
        ERROR_CODES.API_CONFLICT,
        `TenantBackup ${recordArg} has already run (${record.status.phase})`,
      );
  }
  let chosen: ChosenStore;
  try {
    chosen = await storeOf(ctx, tenant, record?.spec.store);
  } catch (err: unknown) {
    // An on-demand record says why it never ran, rather than staying Pending.
    const error = toOperatorError(err);
    if (record)
      await writeRecordStatus(ctx.kube, record, {
        phase: 'Failed',
        completedAt: new Date().toISOString(),
        message: error.message,
      }).catch(() => undefined);
    throw error;
  }
  // Before this run's own backup id exists, so it can never be taken for a leftover.
  const leftovers = await cleanLeftoversOf(ctx, chosen, tenant, leftoverGrace, recordArg);
  const backupId = newBackupId();
  if (record) record = await ensureTenantLabel(ctx.kube, record);
  record ??= await createScheduledRecord(ctx.kube, tenantName, backupId, chosen.name);
  const startedAt = new Date().toISOString();
  record = await writeRecordStatus(ctx.kube, record, {
    phase: 'Running',
    backupId,
    store: chosen.name,
    location: chosen.store.location,
    startedAt,
  });
  const uid = uidOf(tenant);
  const serverName =
    (tenant.status as { database?: { server?: string } } | undefined)?.database?.server ?? '';
  const transitKey = transitKeyName(tenantName);
  const transit = new Transit(ctx.vault.client, ctx.transitMount);
  try {
    const manifest = await runBackup(
      { store: chosen.store, transitKey, newDataKey: () => transit.generateDataKey(transitKey) },
      {
        tenant: tenantName,
        tenantUid: uid,
        server: serverName,
        target: await tenantLogin(ctx.vault.client, ctx.kvMount, tenantName),
      },
      backupId,
    );
    const succeeded = succeededStatus(manifest, chosen.name, chosen.store.location);
    await writeRecordStatus(ctx.kube, record, {
      ...succeeded,
      startedAt,
      // Reported where people look; the details (no credentials) are in the job's log.
      ...(leftovers.problems.length === 0
        ? {}
        : {
            message: `${succeeded.message ?? ''}; leftovers of interrupted runs not cleaned (${leftovers.problems.length} problem(s), see the job's log)`,
          }),
    });
    log.info({ tenant: tenantName, backupId, bytes: manifest.data.bytes }, 'backup stored');
  } catch (err: unknown) {
    const error = toOperatorError(err);
    await writeRecordStatus(ctx.kube, record, {
      phase: 'Failed',
      backupId,
      store: chosen.name,
      location: chosen.store.location,
      startedAt,
      completedAt: new Date().toISOString(),
      message: error.message,
    }).catch(() => undefined);
    throw error;
  }
}

async function latestComplete(
  store: BackupObjectStore,
  tenant: string,
  uid: string,
): Promise<string> {
  const complete = (await listTenantBackups(store, tenant, uid)).filter((b) => b.complete);
  const latest = complete.at(-1);
  if (!latest) throw new OperatorError(ERROR_CODES.API_NOT_FOUND, `tenant ${tenant} has no backup`);
  return latest.backupId;
}

async function commandList(ctx: CommandContext, tenantName: string, json: boolean): Promise<void> {
  const tenant = await getTenant(ctx.kube, tenantName);
  const chosen = await storeOf(ctx, tenant);
  const backups = await listTenantBackups(chosen.store, tenantName, uidOf(tenant));
  if (json) {
    process.stdout.write(
      `${JSON.stringify(backups.map((b) => ({ backupId: b.backupId, complete: b.complete, bytes: b.bytes, lastModified: b.lastModified })))}\n`,
    );
    return;
  }
  process.stdout.write(`BACKUP ID                     COMPLETE  BYTES\n`);
  for (const b of backups)
    process.stdout.write(`${b.backupId.padEnd(30)}${String(b.complete).padEnd(10)}${b.bytes}\n`);
}

async function commandRestoreOrVerify(
  ctx: CommandContext,
  tenantName: string,
  values: ReturnType<typeof parse>,
  mode: 'restore' | 'verify',
): Promise<void> {
  const tenant = await getTenant(ctx.kube, tenantName);
  const uid = uidOf(tenant);
  const chosen = await storeOf(ctx, tenant);
  const backupId = values.backup ?? (await latestComplete(chosen.store, tenantName, uid));
  const transitKey = transitKeyName(tenantName);
  const restoreAccess = await restoreVault(ctx.vault.client, tenantName);
  try {
    const transit = new Transit(restoreAccess.client, ctx.transitMount);
    const opened = await openBackup(
      {
        store: chosen.store,
        transitKey,
        unwrapDataKey: (w) => transit.decryptDataKey(transitKey, w),
      },
      tenantName,
      uid,
      backupId,
    );
    try {
      const login = await tenantLogin(restoreAccess.client, ctx.kvMount, tenantName);
      if (mode === 'restore' && values.into === undefined) {
        await restoreBackup(chosen.store, opened, login, { clean: values.clean ?? false });
        process.stdout.write(`restored backup ${backupId} into ${login.database}\n`);
        return;
      }
      const serverName = (tenant.status as { database?: { server?: string } } | undefined)?.database
        ?.server;
      if (!serverName)
        throw new OperatorError(
          ERROR_CODES.INVALID_SPEC,
          `Tenant ${tenantName} has no database server in status`,
        );
      const server = await ctx.kube.get<KubeObject>(
        objectPath(RESOURCES.DatabaseServer, serverName),
      );
      if (!server)
        throw new OperatorError(
          ERROR_CODES.API_NOT_FOUND,
          `DatabaseServer ${serverName} does not exist`,
        );
      const servers = new DatabaseServerConnections(
        ctx.kube,
        new KvV2(ctx.vault.client, ctx.kvMount),
      );
      try {
        const handle = await servers.get(server);
        const { ownerRole } = databaseIdentifiersFor(tenantName);
        if (mode === 'verify') {
          const result = await verifyBackup(chosen.store, opened, {
            admin: handle.connection,
            tenantUid: uid,
            ownerRole,
            login,
          });
          process.stdout.write(`${JSON.stringify({ verified: true, ...result })}\n`);
        } else {
          const into = values.into as string;
          await createRestoreDatabase(handle.connection, into, uid, ownerRole);
          await restoreBackup(chosen.store, opened, { ...login, database: into }, { clean: false });
          process.stdout.write(`restored backup ${backupId} into new database ${into}\n`);
        }
      } finally {
        await servers.closeAll();
      }
    } finally {
      opened.dispose();
    }
  } finally {
    await restoreAccess.dispose();
  }
}

export async function runBackupCommand(args: string[], env: BackupCommandEnv): Promise<void> {
  const [sub, ...rest] = args;
  if (sub === undefined || sub === '--help' || sub === '-h') {
    process.stdout.write(`${BACKUP_USAGE}\n`);
    return;
  }
  const values = parse(rest);
  const tenant = values.tenant;
  if (!tenant) throw new UsageError(`backup ${sub}: --tenant NAME is required`);
  if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(tenant) || tenant.length > 56)
    throw new UsageError(`backup ${sub}: --tenant must be a tenant name (a DNS label)`);
  if (values.into !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(values.into))
    throw new UsageError(
      'backup restore: --into must be a plain database name ([a-z_][a-z0-9_]*, at most 63)',
    );
  if (sub !== 'run' && values['leftover-grace'] !== undefined)
    throw new UsageError(`backup ${sub}: --leftover-grace is an option of backup run`);
  const leftoverGrace = leftoverGraceMs(values['leftover-grace']);
  const vault = await env.vaultFromEnv();
  if (!vault) throw new UsageError('backup commands need Vault: set VAULT_ADDR');
  const kube = await KubeClient.create(await env.loadClusterAccess());
  const ctx: CommandContext = {
    kube,
    vault,
    namespace: values.namespace ?? process.env.POD_NAMESPACE ?? 'tenant-system',
    kvMount: process.env.VAULT_KV_MOUNT ?? 'secret',
    transitMount: process.env.VAULT_TRANSIT_MOUNT ?? 'transit',
  };
  try {
    switch (sub) {
      case 'run':
        return await commandRun(ctx, tenant, values.record, leftoverGrace);
      case 'list':
        return await commandList(ctx, tenant, values.json ?? false);
      case 'restore':
        return await commandRestoreOrVerify(ctx, tenant, values, 'restore');
      case 'verify':
        return await commandRestoreOrVerify(ctx, tenant, values, 'verify');
      default:
        throw new UsageError(`unknown backup command ${sub}`);
    }
  } finally {
    await kube.close();
    await vault.close();
  }
}
