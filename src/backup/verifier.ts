import { isoSeconds } from '../iso-time.ts';
import type { Logger } from 'pino';
import type { Condition } from '../api/common.ts';
import { WorkQueue } from '../controller/queue.ts';
import { toOperatorError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { objectPath, RESOURCES } from '../k8s/resources.ts';
import { databaseIdentifiersFor } from '../postgres/identifiers.ts';
import type { VaultClient } from '../vault/client.ts';
import { Transit } from '../vault/transit.ts';
import type {
  DatabaseServerConnections,
  DatabaseServerObject,
} from '../tenant/database-servers.ts';
import { VERIFIED_CONDITION } from './history.ts';
import type { TenantBackupObject } from './records.ts';
import { openBackup } from './restore.ts';
import type { StoreAccess } from './store-access.ts';
import { tenantLogin } from './tenant-login.ts';
import { restoreVault, transitKeyName } from './vault-access.ts';
import { verifyBackup } from './verify.ts';

// Scheduled restore verification, run by the operator itself and off the
// reconcile path: a restore takes minutes, a reconcile milliseconds. The
// operator holds no decrypt of its own; each run mints a 15-minute token of
// the tenant's restore policy, which is revoked when the run ends. A Job per
// verification would instead need a standing identity that can decrypt
// every backup of its tenant.
//
// The outcome is written as a Verified condition on the record of the backup
// that was checked, so it survives a restart and a lost Tenant status; the
// tenant's reconcile derives BackupVerified and lastVerifiedBackup from it.

export interface VerificationRequest {
  tenant: string;
  tenantUid: string;
  server: DatabaseServerObject;
  record: TenantBackupObject;
}

export interface VerifierDeps {
  kube: KubeClient;
  vault: VaultClient;
  kvMount: string;
  transitMount: string;
  stores: StoreAccess;
  connections: DatabaseServerConnections;
  log: Logger;
  concurrency: number;
  canStart: () => boolean;
  /** Called with the tenant's name when a verification has been recorded (or failed to be). */
  onRecorded: (tenant: string) => void;
  onResult?: (tenant: string, ok: boolean, durationMs: number) => void;
}

export class BackupVerifier {
  private readonly deps: VerifierDeps;
  private readonly queue: WorkQueue;
  private readonly requests = new Map<string, VerificationRequest>();

  constructor(deps: VerifierDeps) {
    this.deps = deps;
    this.queue = new WorkQueue((tenant) => this.run(tenant), {
      concurrency: deps.concurrency,
      canStart: deps.canStart,
      // A verification that could not even record its outcome is retried.
      maxBackoffMs: 10 * 60_000,
      onError: (tenant, err, retryInMs) =>
        deps.log.warn(
          { tenant, err: toOperatorError(err).message, retryInMs },
          'could not record a backup verification; will retry',
        ),
    });
  }

  /** Whether a verification of this tenant is waiting or under way. */
  busy(tenant: string): boolean {
    return this.requests.has(tenant);
  }

  request(request: VerificationRequest): void {
    if (this.requests.has(request.tenant)) return;
    this.requests.set(request.tenant, request);
    this.queue.add(request.tenant);
  }

  start(): void {
    this.queue.start();
  }

  stop(): void {
    this.queue.stop();
  }

  whenDrained(): Promise<void> {
    return this.queue.whenDrained();
  }

  get activeCount(): number {
    return this.queue.activeCount;
  }

  private async run(tenant: string): Promise<void> {
    const request = this.requests.get(tenant);
    if (!request) return;
    const started = performance.now();
    let condition: Omit<Condition, 'lastTransitionTime'>;
    try {
      const result = await this.verify(request);
      condition = {
        type: VERIFIED_CONDITION,
        status: 'True',
        reason: 'Verified',
        message: `restored into a scratch database: ${result.tables} tables, ${result.rows} rows match the backup`,
      };
    } catch (err: unknown) {
      condition = {
        type: VERIFIED_CONDITION,
        status: 'False',
        reason: 'VerificationFailed',
        message: toOperatorError(err).message,
      };
    }
    const durationMs = performance.now() - started;
    this.deps.onResult?.(tenant, condition.status === 'True', durationMs);
    this.deps.log.info(
      {
        tenant,
        backupId: request.record.status?.backupId,
        verified: condition.status === 'True',
        durationMs: Math.round(durationMs),
      },
      'backup verification finished',
    );
    try {
      await this.record(request.record, condition);
    } finally {
      this.requests.delete(tenant);
      this.deps.onRecorded(tenant);
    }
  }

  private async verify(request: VerificationRequest) {
    const { record } = request;
    const backupId = record.status?.backupId;
    const storeName = record.status?.store;
    if (!backupId || !storeName)
      throw new Error(`TenantBackup ${record.metadata.name} names no backup id or store`);
    const store = await this.deps.stores.get(storeName);
    const transitKey = transitKeyName(request.tenant);
    await using access = await restoreVault(this.deps.vault, request.tenant);
    const transit = new Transit(access.client, this.deps.transitMount);
    const opened = await openBackup(
      { store, transitKey, unwrapDataKey: (w) => transit.decryptDataKey(transitKey, w) },
      request.tenant,
      request.tenantUid,
      backupId,
    );
    try {
      const login = await tenantLogin(access.client, this.deps.kvMount, request.tenant);
      const handle = await this.deps.connections.get(request.server);
      return await verifyBackup(store, opened, {
        admin: handle.connection,
        tenantUid: request.tenantUid,
        ownerRole: databaseIdentifiersFor(request.tenant).ownerRole,
        login,
      });
    } finally {
      opened.dispose();
    }
  }

  /** The Verified condition on the record, with the time of this run. */
  private async record(
    record: TenantBackupObject,
    condition: Omit<Condition, 'lastTransitionTime'>,
  ): Promise<void> {
    const path = objectPath(RESOURCES.TenantBackup, record.metadata.name);
    const live = await this.deps.kube.get<TenantBackupObject>(path);
    if (!live) return; // expired meanwhile: nothing to record on
    const conditions = [
      ...(live.status?.conditions ?? []).filter((c) => c.type !== VERIFIED_CONDITION),
      { ...condition, lastTransitionTime: isoSeconds(new Date()) },
    ];
    await this.deps.kube.mergePatch(`${path}/status`, {
      metadata: { resourceVersion: live.metadata.resourceVersion },
      status: { conditions },
    });
  }
}
