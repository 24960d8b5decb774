import { isDeepStrictEqual } from 'node:util';
import type { DatabaseServerStatus } from '../api/databaseserver.ts';
import type { Informer } from '../controller/informer.ts';
import type { ReconcileResult } from '../controller/queue.ts';
import { toOperatorError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { objectPath, RESOURCES } from '../k8s/resources.ts';
import type { DatabaseServerConnections, DatabaseServerObject } from './database-servers.ts';
import type { TenantObject } from './model.ts';

// Keeps each DatabaseServer's status true: can we reach it as admin, and how
// many tenant databases does it hold. Placement reads both. The status is
// written only when it changes, so a healthy server costs no writes.

export interface ServerStatusDeps {
  client: KubeClient;
  servers: Informer<DatabaseServerObject>;
  tenants: Informer<TenantObject>;
  connections: DatabaseServerConnections;
}

/** How often reachability is checked again. */
export const SERVER_CHECK_PERIOD_MS = 15_000;

export async function reconcileDatabaseServer(
  deps: ServerStatusDeps,
  name: string,
): Promise<ReconcileResult> {
  const server = deps.servers.get(name);
  if (!server) return;
  let reachable = false;
  let lastError: string | undefined;
  try {
    const handle = await deps.connections.get(server);
    await handle.admin.ping();
    reachable = true;
  } catch (err: unknown) {
    lastError = toOperatorError(err).message;
  }
  const databases = deps.tenants.list().filter((t) => t.status?.database?.server === name).length;
  const next: DatabaseServerStatus = {
    observedGeneration: server.metadata.generation,
    reachable,
    databases,
    ...(lastError ? { lastError } : {}),
  };
  const previous = server.status ?? {};
  if (
    !isDeepStrictEqual({ ...previous, conditions: undefined }, { ...next, conditions: undefined })
  ) {
    const updated = await deps.client.mergePatch<DatabaseServerObject>(
      `${objectPath(RESOURCES.DatabaseServer, name)}/status`,
      {
        metadata: { resourceVersion: server.metadata.resourceVersion },
        status: { ...next, ...(lastError ? {} : { lastError: null }) },
      },
    );
    deps.servers.upsert(updated);
  }
  return { requeueAfterMs: SERVER_CHECK_PERIOD_MS };
}
