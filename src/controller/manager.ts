import type { Server } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { KubeConfig } from '@kubernetes/client-node';
import type { ClusterAccess } from '../k8s/cluster-access.ts';
import type { Logger } from 'pino';
import { FIELD_MANAGER, LABEL_TENANT, MANAGED_SELECTOR } from '../api/constants.ts';
import { ERROR_CODES, OperatorError, toOperatorError } from '../errors.ts';
import { KubeClient, type RateLimit } from '../k8s/client.ts';
import { objectPath, RESOURCES, resourceFor, resourceOfPath } from '../k8s/resources.ts';
import {
  buildBackupJobClusterRole,
  buildBackupJobClusterRoleBinding,
  buildBackupJobSecretsRole,
  buildBackupJobSecretsRoleBinding,
} from '../backup/rbac.ts';
import type { TenantBackupObject } from '../backup/records.ts';
import { StoreAccess, type BackupStoreObject } from '../backup/store-access.ts';
import { BackupVerifier } from '../backup/verifier.ts';
import type { BackupDeps } from '../tenant/backup.ts';
import { backupFactsOf } from '../tenant/backup-status.ts';
import { erasureFactsOf } from '../tenant/purge.ts';
import { CREDENTIALS_SECRET, type DatabaseDeps } from '../tenant/database.ts';
import { Transit } from '../vault/transit.ts';
import { removeExpiredCertificates } from '../erasure/certificate-expiry.ts';
import { compactOwnedObject } from '../k8s/compact-object.ts';
import { withoutLastApplied } from '../k8s/last-applied.ts';
import { cachedSpecParts } from '../k8s/shared-records.ts';
import { ownedFieldsEqual, replacementFor } from '../k8s/owned-fields.ts';
import type { KubeObject } from '../k8s/types.ts';
import { createMetrics, type Metrics } from '../metrics/registry.ts';
import { scrapeSources } from '../metrics/tenant-facts.ts';
import type { TenantObject } from '../tenant/model.ts';
import { buildSharedClusterRoles } from '../tenant/rbac.ts';
import { waitsForDatabase } from '../tenant/placement.ts';
import {
  CHILD_KINDS,
  reconcileTenant,
  type ChildKind,
  type ReconcileDeps,
} from '../tenant/reconcile.ts';
import { EventRecorder } from './events.ts';
import {
  reconcileDatabaseServer,
  type ServerStatusDeps,
} from '../tenant/database-server-status.ts';
import {
  DatabaseServerConnections,
  type DatabaseServerObject,
} from '../tenant/database-servers.ts';
import { forbiddenRanges } from '../tenant/egress-blocks.ts';
import type { EgressConfig } from '../tenant/egress.ts';
import { HostResolver } from '../tenant/host-resolver.ts';
import type { VaultClient } from '../vault/client.ts';
import { VaultInventory, type VaultReads } from '../vault/inventory.ts';
import { KubernetesAuth } from '../vault/kubernetes-auth.ts';
import { KvV2 } from '../vault/kv.ts';
import { TENANTS_KV_FOLDER } from '../tenant/database-vault.ts';
import { VaultPolicies } from '../vault/policy.ts';
import { startHealthServer } from './health.ts';
import { Informer, type CacheOptions } from './informer.ts';
import { WorkQueue } from './queue.ts';
import { SpreadResync } from './resync.ts';
import { ShardSet } from './shard-set.ts';
import { shardOf } from './shards.ts';

// Wires the pieces into a running operator: caches that follow the API
// server, a queue of tenant names, the reconciler, leader election and the
// health/metrics endpoint. Every replica keeps its caches warm and reports
// readiness; only the leader reconciles, and its client refuses every write
// the moment its lease could have run out (fencing by our own clock).
// With --shards S > 1 there is a leader per shard (shard-set.ts): a replica
// reconciles the tenants of the shards it holds, and each write is fenced by
// the lease of the shard it is made for.

export interface OperatorOptions {
  /** The API server and credentials (cluster-access.ts), or a KubeConfig already loaded. */
  cluster: ClusterAccess | KubeConfig;
  log: Logger;
  /** Namespace of the leader-election Lease. */
  namespace: string;
  identity: string;
  concurrency: number;
  /** Client-side bound on the reconcile traffic to the API server (the lease has its own client). */
  apiRateLimit?: RateLimit;
  resyncPeriodMs: number;
  /**
   * How long a settled tenant's Vault objects are trusted without reading
   * them again (read-cache.ts); deletions are seen sooner, through the
   * inventory. Default 0: read every time.
   */
  vaultVerifyPeriodMs?: number;
  metricsHost: string;
  metricsPort: number;
  leaseDurationSeconds: number;
  renewDeadlineMs: number;
  retryPeriodMs: number;
  /** Shards of the tenants' name hash, each with its own Lease (default 1: one leader). */
  shards?: number;
  onLostLeadership: () => void;
  /** Vault with the operator's token; without it tenants get no database. */
  vault?: VaultClient;
  vaultKvMount?: string;
  /** Audience tenant service-account tokens must carry to log in to Vault. */
  vaultAudience?: string;
  /** The cluster's pod, service and node ranges: tenants' egress rules never open them. */
  clusterCidrs: string[];
  /** Shortest database rotation interval a Tenant may ask for. */
  minRotationIntervalMs?: number;
  /** Backups (they need Vault too): the image the backup jobs run, and more. */
  backup?: BackupOptions;
  /** How long an erasure certificate's copy in the store is kept. */
  certificateRetentionMs?: number;
  /** Delete a Tenant closed by spec.state once it is erased (else it stays as the record). */
  deletePurgedTenants?: boolean;
}

export interface BackupOptions {
  image: string;
  /** Vault's address as the backup pods reach it; default: the operator's. */
  vaultAddr?: string;
  transitMount?: string;
  verifyConcurrency?: number;
}

/**
 * How long stop() waits for reconciles under way before it fences them off
 * (their remaining writes are refused) and hands the lease over.
 */
const DRAIN_TIMEOUT_MS = 20_000;
/** How often expired erasure certificate copies are looked for. */
const CERTIFICATE_EXPIRY_INTERVAL_MS = 24 * 3_600_000;
/** How old the Vault inventory (names of policies, roles, keys) may be: deletions are seen this late. */
const INVENTORY_MAX_AGE_MS = 30_000;
/** How long a DatabaseServer's admin credentials read from Vault are reused. */
const ADMIN_CREDENTIALS_MAX_AGE_MS = 30_000;

/** A cache of one kind, started and stopped with the operator's others. */
type InformerFactory = <T extends KubeObject>(
  kind: keyof typeof RESOURCES,
  options?: CacheOptions<T>,
) => Informer<T>;

export class Operator {
  readonly metrics: Metrics;
  client!: KubeClient;
  /** The elector's own connection pool: renewals never wait behind reconcile traffic. */
  private leaseClient: KubeClient | undefined;
  queue!: WorkQueue;
  metricsPort = 0;
  private readonly options: OperatorOptions;
  private readonly abort = new AbortController();
  private informers: Informer<KubeObject>[] = [];
  private tenants!: Informer<TenantObject>;
  private deps: ReconcileDeps | undefined;
  private shards!: ShardSet;
  /** Per shard just acquired: its tenants not yet reconciled by this replica, and since when. */
  private readonly takeovers = new Map<number, { pending: Set<string>; since: number }>();
  private working = false;
  private expireCertificates: (() => void) | undefined;
  private server: Server | undefined;
  private running: Promise<unknown>[] = [];
  private resync: SpreadResync | undefined;
  private certificateExpiryTimer: NodeJS.Timeout | undefined;
  private serverQueue: WorkQueue | undefined;
  private connections: DatabaseServerConnections | undefined;
  private backupStores: Informer<BackupStoreObject> | undefined;
  private storeAccess: StoreAccess | undefined;
  private verifier: BackupVerifier | undefined;

  constructor(options: OperatorOptions) {
    this.options = options;
    this.metrics = createMetrics(
      scrapeSources(() => this.tenants?.list() ?? [], {
        backup: backupFactsOf,
        erasure: erasureFactsOf,
      }),
    );
  }

  /**
   * Throws unless this replica surely holds the lease now: every write to
   * the API server, Vault and PostgreSQL passes through it.
   */
  assertLeading(): void {
    if (!this.shards) {
      throw new OperatorError(
        ERROR_CODES.NOT_LEADER,
        'not leading: leader election has not started',
      );
    }
    // The shard of the tenant being reconciled; shard 0 for shared work.
    this.shards.assertHolds();
  }

  /** Holds the lease of shard 0, which carries the work that belongs to no tenant. */
  private holdsShared(): boolean {
    return this.shards?.holds(0) ?? false;
  }

  private shardOf(tenant: string): number {
    return shardOf(tenant, this.shards.count);
  }

  get ready(): { ok: boolean; detail: string } {
    const stale = this.informers.filter((i) => !i.live).map((i) => i.type.plural);
    if (stale.length > 0) return { ok: false, detail: `watches not live: ${stale.join(', ')}` };
    if ((this.shards?.count ?? 1) === 1)
      return { ok: true, detail: `ok (${this.holdsShared() ? 'leader' : 'standby'})` };
    const held = this.shards.heldShards();
    return { ok: true, detail: `ok (${held.length > 0 ? `shards ${held.join(',')}` : 'standby'})` };
  }

  async start(): Promise<void> {
    const { log, cluster } = this.options;
    this.client = await KubeClient.create(cluster, {
      ...(this.options.apiRateLimit ? { rateLimit: this.options.apiRateLimit } : {}),
    });
    this.leaseClient = await KubeClient.create(cluster);
    for (const client of [this.client, this.leaseClient]) {
      client.onRequest((method, path, status) => {
        this.metrics.apiRequests.inc({ method, code: String(status) });
        if (method !== 'GET') this.metrics.apiWrites.inc({ resource: resourceOfPath(path) });
      });
    }
    this.metrics.shards.set(this.options.shards ?? 1);
    this.shards = new ShardSet(this.leaseClient, {
      shards: this.options.shards ?? 1,
      namespace: this.options.namespace,
      identity: this.options.identity,
      leaseDurationSeconds: this.options.leaseDurationSeconds,
      renewDeadlineMs: this.options.renewDeadlineMs,
      retryPeriodMs: this.options.retryPeriodMs,
      drainTimeoutMs: DRAIN_TIMEOUT_MS,
      log,
      onAcquired: (shard) => void this.lead(shard).catch((err: unknown) => this.fatal(err)),
      onReleased: (shard) => this.release(shard),
      onLostAll: () => {
        this.showLeases();
        this.queue.stop();
        this.serverQueue?.stop();
        this.verifier?.stop();
        this.options.onLostLeadership();
      },
    });
    // Events too: a stale leader must not tell a story the new one contradicts.
    this.client.setWriteGuard(() => this.assertLeading());

    const informer: InformerFactory = <T extends KubeObject>(
      kind: keyof typeof RESOURCES,
      options: CacheOptions<T> = {},
    ) => {
      const type = RESOURCES[kind];
      const created = new Informer<T>(this.client, type, {
        log: log.child({ informer: type.plural }),
        ...options,
        onConnectionChange: (connected) =>
          this.metrics.watchConnected.set({ resource: type.plural }, connected ? 1 : 0),
      });
      this.informers.push(created as unknown as Informer<KubeObject>);
      return created;
    };
    // Indexed by the DatabaseServer a tenant's database is placed on:
    // placement and each server's status count a server's tenants, which
    // must not mean a walk over every tenant per server (500 servers and
    // 11,000 tenants made each placement six million steps).
    //
    // Kept without kubectl's copy of what was applied (last-applied.ts),
    // the spec's defaulted parts shared between Tenants (shared-records.ts).
    this.tenants = informer<TenantObject>('Tenant', {
      indexBy: (tenant) => tenant.status?.database?.server,
      transform: (tenant) => {
        const kept = withoutLastApplied(tenant);
        if (kept.spec) cachedSpecParts.shareFields(kept.spec);
        return kept;
      },
    });
    // Tenants' namespaces and what is in them, about eight objects a tenant:
    // cached compact (identity, labels, a digest of what we own). Every
    // namespace, not only ours: whether a new tenant's name is taken is
    // then known without a read.
    const namespaces = informer<KubeObject>('Namespace', { transform: compactOwnedObject });
    const children = Object.fromEntries(
      CHILD_KINDS.map((kind) => [
        kind,
        informer<KubeObject>(kind, {
          labelSelector: MANAGED_SELECTOR,
          transform: compactOwnedObject,
        }),
      ]),
    ) as Record<ChildKind, Informer<KubeObject>>;

    const events = new EventRecorder(this.client, log, this.options.identity);
    const resolver = new HostResolver();
    const egress: EgressConfig = {
      resolver,
      forbidden: forbiddenRanges(this.options.clusterCidrs),
    };
    const deps: ReconcileDeps = {
      egress,
      ...(this.options.certificateRetentionMs === undefined
        ? {}
        : { certificateRetentionMs: this.options.certificateRetentionMs }),
      deletePurgedTenants: this.options.deletePurgedTenants === true,
      client: this.client,
      tenants: this.tenants,
      namespaces,
      children,
      events,
      metrics: this.metrics,
      log,
    };
    if (this.options.vault) {
      const vaultUrl = new URL(this.options.vault.address);
      egress.vault = {
        host: vaultUrl.hostname.replace(/^\[|\]$/g, ''),
        port: Number(vaultUrl.port || (vaultUrl.protocol === 'https:' ? 443 : 80)),
      };
      const servers = informer<DatabaseServerObject>('DatabaseServer');
      const vault = this.options.vault;
      const kv = new KvV2(vault, this.options.vaultKvMount);
      const policies = new VaultPolicies(vault);
      const kubernetesAuth = new KubernetesAuth(vault);
      const verifyPeriodMs = this.options.vaultVerifyPeriodMs ?? 0;
      this.connections = new DatabaseServerConnections(
        this.client,
        kv,
        () => this.assertLeading(),
        Math.min(verifyPeriodMs, ADMIN_CREDENTIALS_MAX_AGE_MS),
      );
      const vaultReads: VaultReads = {
        maxAgeMs: verifyPeriodMs,
        inventory:
          verifyPeriodMs > 0
            ? new VaultInventory(
                {
                  policies,
                  kubernetesAuth,
                  kv,
                  kvFolder: TENANTS_KV_FOLDER,
                  ...(this.options.backup
                    ? { transit: new Transit(vault, this.options.backup.transitMount) }
                    : {}),
                },
                Math.min(verifyPeriodMs, INVENTORY_MAX_AGE_MS),
              )
            : undefined,
      };
      // Wherever a Secret of that name is, whoever made it: the one a tenant
      // is delivered is found (or known absent) without a read per
      // reconcile. Compact: a digest of what we own, never the password.
      const credentialsSecrets = informer<KubeObject>('Secret', {
        fieldSelector: `metadata.name=${CREDENTIALS_SECRET}`,
        transform: compactOwnedObject,
      });
      deps.database = {
        servers,
        credentialsSecrets,
        tenants: this.tenants,
        connections: this.connections,
        kv,
        policies,
        kubernetesAuth,
        vaultReads,
        events,
        log,
        vaultAudience: this.options.vaultAudience,
        kube: this.client,
        reservations: new Map(),
        ...(this.options.minRotationIntervalMs === undefined
          ? {}
          : { minRotationIntervalMs: this.options.minRotationIntervalMs }),
      };
      if (this.options.backup) {
        deps.backup = this.backupDeps(
          this.options.backup,
          this.options.vault,
          deps.database,
          informer,
        );
      }
      const connections = this.connections;
      const serverDeps: ServerStatusDeps = {
        client: this.client,
        servers,
        tenants: this.tenants,
        connections,
        resolver,
        events,
        // The tenants on a server whose address changed get their egress rules rewritten now.
        onAddressesChanged: (server) => {
          for (const tenant of this.tenants.byIndex(server)) this.queue.add(tenant.metadata.name);
        },
      };
      this.serverQueue = new WorkQueue((name) => reconcileDatabaseServer(serverDeps, name), {
        concurrency: 2,
        canStart: () => this.holdsShared(),
        onError: (name, err, retryInMs) =>
          log.warn(
            { databaseServer: name, err: toOperatorError(err).message, retryInMs },
            'server check failed',
          ),
      });
      servers.onChange((server, change) => {
        if (change === 'DELETED') {
          // Its admin sessions end now, not when the pool would idle out.
          connections
            .forget(server)
            .catch((err: unknown) =>
              log.warn(
                { databaseServer: server.metadata.name, err: toOperatorError(err).message },
                'closing the admin pool of a deleted server failed',
              ),
            );
        }
        this.serverQueue?.add(server.metadata.name);
        // A server that became reachable or got room may unblock tenants
        // waiting for a database; only those: every placement rewrites a
        // server's status, and requeueing every tenant without a database
        // then reconciled ten thousand tenants for nothing.
        for (const tenant of this.tenants.list()) {
          if (waitsForDatabase(tenant)) this.queue.add(tenant.metadata.name);
        }
      });
    }
    this.deps = deps;
    const sharded = this.shards.count > 1;
    this.queue = new WorkQueue((name) => this.reconcile(deps, name), {
      concurrency: this.options.concurrency,
      canStart: () => this.shards.holdsAny(),
      // Sharded: only the tenants of the shards this replica holds, and not
      // one of a shard being handed back.
      ...(sharded ? { admits: (name: string) => this.shards.accepting(this.shardOf(name)) } : {}),
      // Not yet provisioned: new, so a burst of new tenants (and the passes
      // each takes until Ready) takes turns with the resyncs of the others,
      // and a change to a settled tenant (a repair) goes before both.
      stageOf: (name) => {
        const phase = this.tenants.get(name)?.status?.phase;
        return phase === undefined || phase === 'Provisioning' ? 'new' : 'settled';
      },
      onDepthChange: (depth) => this.metrics.queueDepth.set(depth),
      onError: (name, err, retryInMs) =>
        log.warn(
          { tenant: name, err: toOperatorError(err).message, retryInMs },
          'reconcile failed; will retry',
        ),
    });

    this.tenants.onChange((tenant, change) => {
      // A placement reserved for a tenant that is gone must not hold a server slot.
      if (change === 'DELETED') deps.database?.reservations.delete(tenant.metadata.name);
      this.queue.add(tenant.metadata.name);
    });
    const enqueueOwner = (child: KubeObject) => {
      const tenant = child.metadata.labels?.[LABEL_TENANT];
      if (tenant) this.queue.add(tenant);
    };
    namespaces.onChange(enqueueOwner);
    for (const kind of CHILD_KINDS) children[kind].onChange(enqueueOwner);
    // A delivered Secret edited or deleted is put back now, not at the next resync.
    deps.database?.credentialsSecrets.onChange(enqueueOwner);
    if (deps.backup) {
      deps.backup.cronJobs.onChange(enqueueOwner);
      deps.backup.serviceAccounts.onChange(enqueueOwner);
      // A backup run that started, ended or was verified changes its tenant's status.
      deps.backup.records.onChange((record) => {
        if (record.spec?.tenant) this.queue.add(record.spec.tenant);
      });
      // Which store a tenant uses, and the job's Secrets Role, follow the stores.
      this.backupStores?.onChange(() => {
        if (this.holdsShared()) this.checkSharedObjects();
        for (const tenant of this.tenants.list()) this.queue.add(tenant.metadata.name);
      });
    }

    const signal = this.abort.signal;
    this.running = this.informers.map((i) => i.run(signal));
    const health = await startHealthServer({
      host: this.options.metricsHost,
      port: this.options.metricsPort,
      registry: this.metrics.registry,
      ready: () => this.ready,
    });
    this.server = health.server;
    this.metricsPort = health.port;
    log.info({ metricsPort: health.port }, 'health and metrics endpoint listening');

    await this.shards.start();
  }

  private async reconcile(deps: ReconcileDeps, name: string) {
    const end = this.metrics.reconcileDuration.startTimer();
    const shard = this.shardOf(name);
    try {
      // Every write of this reconcile is fenced by the lease of the tenant's shard.
      const result = await this.shards.runInShard(shard, () => reconcileTenant(deps, name));
      this.metrics.reconcileTotal.inc({
        result: result?.requeueAfterMs === undefined ? 'success' : 'requeue',
      });
      this.reconciledAfterTakeover(shard, name);
      return result;
    } catch (err: unknown) {
      this.metrics.reconcileTotal.inc({ result: 'error' });
      throw err;
    } finally {
      end();
    }
  }

  /**
   * A shard's lease was acquired (with one shard: leadership). Its tenants
   * are reconciled once now, whatever their state: the previous holder may
   * have stopped anywhere, and a new holder trusts nothing it read before.
   */
  private async lead(shard: number): Promise<void> {
    this.showLeases();
    // Another replica may have led in between: what this one read before is stale.
    this.options.vault?.readCache.clear();
    await Promise.all(this.informers.map((i) => i.waitForSync()));
    if (shard === 0) await this.applySharedObjects();
    if (!this.working) this.startWork();
    else if (shard === 0) this.expireCertificates?.();
    const names = this.tenants
      .list()
      .map((t) => t.metadata.name)
      .filter((name) => this.shardOf(name) === shard);
    if (this.shards.count > 1) {
      this.takeovers.set(shard, { pending: new Set(names), since: performance.now() });
      this.options.log.info({ shard, tenants: names.length }, 'shard acquired');
      if (names.length === 0) this.reconciledAfterTakeover(shard, '');
    }
    if (shard === 0) this.resyncShared();
    for (const name of names) this.queue.add(name, 'resync');
  }

  /** Logs once every tenant of a shard just acquired has been reconciled here. */
  private reconciledAfterTakeover(shard: number, name: string): void {
    const takeover = this.takeovers.get(shard);
    if (!takeover) return;
    takeover.pending.delete(name);
    if (takeover.pending.size > 0) return;
    this.takeovers.delete(shard);
    this.options.log.info(
      { shard, ms: Math.round(performance.now() - takeover.since) },
      'shard taken over: each of its tenants reconciled',
    );
  }

  /** A shard's lease is gone (lost or handed back): its queued tenants are dropped as they come up. */
  private release(shard: number): void {
    this.takeovers.delete(shard);
    this.showLeases();
    this.options.log.info({ shard }, 'shard released');
  }

  /** The lease gauges, as the shard set now has them. */
  private showLeases(): void {
    const held = this.shards.heldShards().length;
    this.metrics.leader.set(held > 0 ? 1 : 0);
    this.metrics.shardsHeld.set(held);
  }

  /** The queues and timers, started when the first shard (or the leader lease) is held. */
  private startWork(): void {
    this.working = true;
    this.queue.start();
    this.serverQueue?.start();
    this.verifier?.start();
    this.resync = new SpreadResync({
      periodMs: this.options.resyncPeriodMs,
      names: () => this.tenants.list().map((t) => t.metadata.name),
      enqueue: (name) => this.queue.add(name, 'resync'),
      onPeriod: () => this.resyncShared(),
    });
    this.resync.start();
    if (this.storeAccess) {
      // Erasure certificates' copies past their legal period: looked for
      // when leadership begins and daily after (the periods are years long).
      const stores = this.storeAccess;
      const expire = () => {
        if (!this.holdsShared()) return;
        void removeExpiredCertificates(stores, new Date(), this.options.log);
      };
      this.expireCertificates = expire;
      expire();
      this.certificateExpiryTimer = setInterval(expire, CERTIFICATE_EXPIRY_INTERVAL_MS);
      this.certificateExpiryTimer.unref();
    }
  }

  /** Enqueues every tenant: the backstop that catches anything a watch missed. */
  resyncAll(): void {
    this.resyncShared();
    for (const tenant of this.tenants.list()) this.queue.add(tenant.metadata.name, 'resync');
  }

  /** What the resync checks once a period besides the tenants. */
  private resyncShared(): void {
    // No watch follows the shared roles (they change about never): the resync checks them.
    if (this.holdsShared()) this.checkSharedObjects();
    for (const server of this.deps?.database?.servers.list() ?? [])
      this.serverQueue?.add(server.metadata.name);
  }

  private checkSharedObjects(): void {
    this.applySharedObjects().catch((err: unknown) =>
      this.options.log.warn(
        { err: toOperatorError(err).message },
        'could not check the shared roles',
      ),
    );
  }

  /** The backup step's dependencies, and the caches it reads. */
  private backupDeps(
    options: BackupOptions,
    vault: VaultClient,
    database: DatabaseDeps,
    informer: InformerFactory,
  ): BackupDeps {
    const namespace = this.options.namespace;
    const stores = informer<BackupStoreObject>('BackupStore');
    this.backupStores = stores;
    this.storeAccess = new StoreAccess(this.client, namespace, stores);
    const transitMount = options.transitMount ?? 'transit';
    this.verifier = new BackupVerifier({
      kube: this.client,
      vault,
      kvMount: this.options.vaultKvMount ?? 'secret',
      transitMount,
      stores: this.storeAccess,
      connections: database.connections,
      log: this.options.log,
      concurrency: options.verifyConcurrency ?? 1,
      canStart: () => this.holdsShared(),
      onRecorded: (tenant) => this.queue.add(tenant),
      onResult: (_tenant, ok, durationMs) => {
        this.metrics.backupVerifications.inc({ result: ok ? 'passed' : 'failed' });
        this.metrics.backupVerificationDuration.observe(durationMs / 1000);
      },
    });
    return {
      vault: {
        transit: new Transit(vault, transitMount),
        policies: database.policies,
        kubernetesAuth: database.kubernetesAuth,
        kv: database.kv,
        operatorNamespace: namespace,
        ...(this.options.vaultAudience ? { audience: this.options.vaultAudience } : {}),
      },
      job: {
        namespace,
        image: options.image,
        vaultAddr: options.vaultAddr ?? vault.address,
        ...(this.options.vaultAudience ? { vaultAudience: this.options.vaultAudience } : {}),
        ...(process.env.VAULT_AUTH_MOUNT ? { vaultAuthMount: process.env.VAULT_AUTH_MOUNT } : {}),
      },
      // One of each per tenant with backups, wholly ours: cached compact like
      // a tenant's children (a CronJob's pod template is most of its size).
      cronJobs: informer<KubeObject>('CronJob', {
        labelSelector: MANAGED_SELECTOR,
        namespace,
        transform: compactOwnedObject,
      }),
      serviceAccounts: informer<KubeObject>('ServiceAccount', {
        labelSelector: MANAGED_SELECTOR,
        namespace,
        transform: compactOwnedObject,
      }),
      // Every record of every tenant (a month of daily ones is 300,000 at
      // 10,000 tenants): each reconcile takes its own tenant's by the index.
      records: informer<TenantBackupObject>('TenantBackup', {
        indexBy: (record) => record.spec?.tenant,
      }),
      servers: database.servers,
      stores: this.storeAccess,
      verifier: this.verifier,
      events: database.events,
      log: this.options.log,
      ...(database.vaultReads ? { vaultReads: database.vaultReads } : {}),
    };
  }

  /** The backup jobs' shared RBAC: what every job may read, and the stores' Secrets. */
  private backupRbac(): KubeObject[] {
    if (!this.storeAccess) return [];
    const namespace = this.options.namespace;
    return [
      buildBackupJobClusterRole(),
      buildBackupJobClusterRoleBinding(namespace),
      buildBackupJobSecretsRole(namespace, this.storeAccess.validSpecs()),
      buildBackupJobSecretsRoleBinding(namespace),
    ];
  }

  /**
   * The shared tenant-admin ClusterRoles, compared exactly like every child:
   * a rule someone adds to the base role would widen the owners of every
   * tenant at once. The aggregate's `rules` belong to the cluster-role
   * aggregation controller, which fills them from the labelled roles. Read
   * first, so a restart or a resync writes nothing.
   */
  private async applySharedObjects(): Promise<void> {
    for (const role of [...buildSharedClusterRoles(), ...this.backupRbac()]) {
      const path = objectPath(
        resourceFor(role.apiVersion, role.kind),
        role.metadata.name,
        role.metadata.namespace,
      );
      const live = await this.client.get<KubeObject>(path);
      if (!live) {
        await this.client.apply(role);
        continue;
      }
      const aggregated = role.aggregationRule !== undefined;
      const comparable: KubeObject = aggregated
        ? (Object.fromEntries(
            Object.entries(live).filter(([key]) => key !== 'rules'),
          ) as KubeObject)
        : live;
      if (ownedFieldsEqual(role, comparable)) continue;
      const body = replacementFor(role, live);
      if (aggregated && live.rules !== undefined) body.rules = live.rules;
      await this.client.request('PUT', path, { body, query: { fieldManager: FIELD_MANAGER } });
      this.metrics.driftRepairs.inc({ kind: role.kind });
      this.options.log.warn(
        { kind: role.kind, name: role.metadata.name },
        'shared role was changed: put back',
      );
    }
  }

  private fatal(err: unknown): void {
    this.options.log.fatal(
      { err: toOperatorError(err).message },
      'operator failed to start leading',
    );
    this.options.onLostLeadership();
  }

  /**
   * Graceful stop, in the order that keeps two replicas from ever writing at
   * once: start no new reconcile, let the ones under way finish (bounded),
   * stop writing and wait for the last writes to be answered, and only then
   * hand the lease over.
   */
  async stop(): Promise<void> {
    const { log } = this.options;
    this.resync?.stop();
    if (this.certificateExpiryTimer) clearInterval(this.certificateExpiryTimer);
    this.queue?.stop();
    this.serverQueue?.stop();
    // A verification under way is not waited for: it is minutes long, and
    // its scratch database is dropped by the next one (dropLeftoverScratch).
    this.verifier?.stop();
    const active = (this.queue?.activeCount ?? 0) + (this.serverQueue?.activeCount ?? 0);
    if (active > 0) {
      log.info({ active }, 'waiting for reconciles under way to finish');
      const drained = await Promise.race([
        Promise.all([this.queue.whenDrained(), this.serverQueue?.whenDrained()]).then(() => true),
        new Promise<false>((resolve) => setTimeout(resolve, DRAIN_TIMEOUT_MS, false).unref()),
      ]);
      if (!drained)
        log.warn('reconciles still running at the drain deadline; refusing their writes');
    }
    await this.shards?.stop(() => this.client.writesSettled());
    this.metrics.leader.set(0);
    this.metrics.shardsHeld.set(0);
    this.abort.abort();
    await Promise.allSettled(this.running);
    await new Promise<void>((resolve) =>
      this.server ? this.server.close(() => resolve()) : resolve(),
    );
    this.storeAccess?.close();
    await this.connections?.closeAll();
    await this.client?.close();
    await this.leaseClient?.close();
  }
}
