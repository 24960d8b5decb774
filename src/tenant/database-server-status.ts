import { isDeepStrictEqual } from 'node:util';
import type { Condition } from '../api/common.ts';
import type { DatabaseServerSpec, DatabaseServerStatus } from '../api/databaseserver.ts';
import {
  CONDITION,
  REASON,
  mergeConditions,
  type ConditionInput,
} from '../controller/conditions.ts';
import type { EventRecorder } from '../controller/events.ts';
import type { Informer } from '../controller/informer.ts';
import type { ReconcileResult } from '../controller/queue.ts';
import { toOperatorError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { objectPath, RESOURCES } from '../k8s/resources.ts';
import {
  serverSpecOf,
  type DatabaseServerConnections,
  type DatabaseServerObject,
} from './database-servers.ts';
import { egressBlocks, metadataRanges } from './egress-blocks.ts';
import type { HostResolver } from './host-resolver.ts';
import type { TenantObject } from './model.ts';

// Keeps each DatabaseServer's status true: can we reach it as admin, where
// do tenants' egress rules point, is the connection protected by TLS, and how
// many tenant databases does it hold. Placement reads reachability and the
// count. The status is written only when it changes, so a healthy server
// costs no writes.

export interface ServerStatusDeps {
  client: KubeClient;
  servers: Informer<DatabaseServerObject>;
  /** Indexed by `status.database.server`. */
  tenants: Informer<TenantObject>;
  connections: DatabaseServerConnections;
  resolver: HostResolver;
  events: EventRecorder;
  /** The server's addresses changed: its tenants' egress rules must follow. */
  onAddressesChanged?: (server: string) => void;
  now?: () => Date;
}

/** How often reachability and addresses are checked again. */
export const SERVER_CHECK_PERIOD_MS = 15_000;

export async function reconcileDatabaseServer(
  deps: ServerStatusDeps,
  name: string,
): Promise<ReconcileResult> {
  const server = deps.servers.get(name);
  if (!server) return;
  const spec = serverSpecOf(server);
  let reachable = false;
  let lastError: string | undefined;
  try {
    const handle = await deps.connections.get(server);
    await handle.admin.ping();
    reachable = true;
  } catch (err: unknown) {
    lastError = toOperatorError(err).message;
  }
  const addresses = spec ? await tenantAddresses(deps, spec) : undefined;
  const databases = deps.tenants.byIndex(name).length;
  const conditions: ConditionInput[] = [
    reachable
      ? {
          type: CONDITION.Reachable,
          status: 'True',
          reason: REASON.Reachable,
          message: 'the operator logs in as admin',
        }
      : {
          type: CONDITION.Reachable,
          status: 'False',
          reason: REASON.ServerUnreachable,
          message: lastError ?? 'unreachable',
        },
  ];
  const tls = spec ? tlsCondition(spec) : undefined;
  if (tls) conditions.push(tls);
  const generation = server.metadata.generation;
  const now = deps.now?.() ?? new Date();
  const next: DatabaseServerStatus = {
    observedGeneration: generation,
    reachable,
    databases,
    ...(lastError ? { lastError } : {}),
    ...(addresses?.list ? { addresses: addresses.list } : {}),
    conditions: mergeConditions(server.status?.conditions, conditions, generation, now),
  };
  if (!sameStatus(server.status, next)) {
    const updated = await deps.client.mergePatch<DatabaseServerObject>(
      `${objectPath(RESOURCES.DatabaseServer, name)}/status`,
      {
        metadata: { resourceVersion: server.metadata.resourceVersion },
        status: {
          ...next,
          ...(lastError ? {} : { lastError: null }),
          ...(next.addresses ? {} : { addresses: null }),
        },
      },
    );
    deps.servers.upsert(updated);
    if (tls?.status === 'False' && !hasCondition(server.status?.conditions, tls)) {
      await deps.events.record(server, 'Warning', tls.reason, tls.message);
    }
  }
  if (addresses?.changed) deps.onAddressesChanged?.(name);
  return { requeueAfterMs: SERVER_CHECK_PERIOD_MS };
}

/**
 * What tenants' egress rules open for this server. The host is looked up
 * again on every check (refreshing the cache tenants read from), so a changed
 * address is noticed within one check period.
 */
async function tenantAddresses(
  deps: ServerStatusDeps,
  spec: DatabaseServerSpec,
): Promise<{ list: string[] | undefined; changed: boolean }> {
  if (spec.egressCIDRs) {
    const { blocks } = egressBlocks(spec.egressCIDRs, metadataRanges(), 'spec.egressCIDRs');
    return { list: blocks.map((block) => block.cidr), changed: false };
  }
  const { resolution, changed } = await deps.resolver.refresh(spec.host);
  return { list: resolution.ok ? resolution.addresses : undefined, changed };
}

function tlsCondition(spec: DatabaseServerSpec): ConditionInput {
  if (spec.tls?.mode === 'Disable') {
    return {
      type: CONDITION.TLSVerified,
      status: 'False',
      reason: REASON.TLSDisabled,
      message:
        'spec.tls.mode is Disable: the operator and tenants connect without TLS; passwords and data cross the network in clear text',
    };
  }
  const ref = spec.tls?.caSecretRef;
  return {
    type: CONDITION.TLSVerified,
    status: 'True',
    reason: REASON.VerifyFull,
    message: `TLS with verify-full against the CA in Secret ${ref?.namespace ?? ''}/${ref?.name ?? ''}`,
  };
}

function hasCondition(conditions: Condition[] | undefined, wanted: ConditionInput): boolean {
  return (
    conditions?.some(
      (c) => c.type === wanted.type && c.status === wanted.status && c.reason === wanted.reason,
    ) ?? false
  );
}

/** Equal in content: the order of conditions does not matter. */
function sameStatus(a: DatabaseServerStatus | undefined, b: DatabaseServerStatus): boolean {
  const byType = (x: Condition, y: Condition) => x.type.localeCompare(y.type);
  const normalize = (status: DatabaseServerStatus) => ({
    ...status,
    conditions: [...(status.conditions ?? [])].sort(byType),
  });
  return isDeepStrictEqual(normalize(a ?? {}), normalize(b));
}
