import { spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { ANNOTATION_ERASE_NOW, EVENTS_NAMESPACE } from '../../src/api/constants.ts';
import { isNotFound } from '../../src/errors.ts';
import { KubeClient } from '../../src/k8s/client.ts';
import { kubeconfigFileAccess } from '../../src/k8s/cluster-access.ts';
import { collectionPath, objectPath, RESOURCES } from '../../src/k8s/resources.ts';
import type { KubeList, KubeObject } from '../../src/k8s/types.ts';
import type { TenantObject } from '../../src/tenant/model.ts';
import { waitFor } from './wait.ts';

// Access to the real control plane that hack/test.sh started for this run.
// A test that finds no cluster fails loudly instead of skipping.

export function requireEnv(name: string): string {
  const value = process.env[name];
  if (!value) {
    throw new Error(
      `${name} is not set: run the tests with \`npm test\`, which starts the local control plane`,
    );
  }
  return value;
}

/** A client for a kubeconfig file, read as the operator reads it (cluster-access.ts). */
function clientFor(file: string): Promise<KubeClient> {
  const access = kubeconfigFileAccess(file);
  if (!access) throw new Error(`${file}: the test stack's kubeconfigs use client certificates`);
  return KubeClient.create(access);
}

export async function adminClient(): Promise<KubeClient> {
  return clientFor(requireEnv('KUBECONFIG'));
}

/**
 * An on-call engineer in the break-glass group: cluster-admin, and exempt
 * from the admission guard, so tests use it to make drift the guard would
 * refuse anyone else.
 */
export async function breakGlassClient(): Promise<KubeClient> {
  return clientFor(requireEnv('BREAK_GLASS_KUBECONFIG'));
}

export interface CommandResult {
  status: number;
  stdout: string;
  stderr: string;
}

/** kubectl as the tests' admin; `as: 'break-glass'` runs it as the break-glass identity. */
export function kubectl(
  args: string[],
  input?: string,
  options: { as?: 'admin' | 'break-glass' } = {},
): CommandResult {
  const binary = join(requireEnv('KUBE_BIN_DIR'), 'kubectl');
  const kubeconfig = requireEnv(
    options.as === 'break-glass' ? 'BREAK_GLASS_KUBECONFIG' : 'KUBECONFIG',
  );
  const result = spawnSync(binary, ['--kubeconfig', kubeconfig, ...args], {
    input,
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

/**
 * A 10-minute TokenRequest token of a ServiceAccount (audience: the API
 * server's unless given, e.g. 'vault' for Vault's Kubernetes auth). Throws
 * when kubectl fails.
 */
export function serviceAccountToken(name: string, namespace: string, audience?: string): string {
  const created = kubectl([
    'create',
    'token',
    name,
    '-n',
    namespace,
    '--duration',
    '10m',
    ...(audience === undefined ? [] : ['--audience', audience]),
  ]);
  if (created.status !== 0) throw new Error(`kubectl create token ${name}: ${created.stderr}`);
  return created.stdout.trim();
}

export function tenantManifest(name: string, spec: Record<string, unknown> = {}): TenantObject {
  return {
    apiVersion: 'tenancy.io/v1alpha1',
    kind: 'Tenant',
    metadata: { name },
    // Tests of isolation and lifecycle need no database; those that do say so.
    spec: {
      owners: [{ kind: 'Group', name: `${name}-admins` }],
      database: { enabled: false },
      ...spec,
    },
  };
}

export async function createTenant(
  client: KubeClient,
  name: string,
  spec: Record<string, unknown> = {},
) {
  return client.create('/apis/tenancy.io/v1alpha1/tenants', tenantManifest(name, spec));
}

export async function getTenant(
  client: KubeClient,
  name: string,
): Promise<TenantObject | undefined> {
  return client.get<TenantObject>(objectPath(RESOURCES.Tenant, name));
}

export async function waitForPhase(
  client: KubeClient,
  name: string,
  phase: string,
  timeoutMs = 30_000,
) {
  return waitFor(
    `tenant ${name} to reach phase ${phase}`,
    async () => {
      const tenant = await getTenant(client, name);
      return tenant?.status?.phase === phase &&
        tenant.status.observedGeneration === tenant.metadata.generation
        ? tenant
        : undefined;
    },
    { timeoutMs },
  );
}

/**
 * Asks for the tenant's immediate erasure (the erase-now annotation,
 * confirmed by its name), deletes it, and waits until the Tenant and its
 * namespace are gone: how tests clean up, now that a deletion without it
 * is a closure that keeps the data for the retention period.
 */
export async function eraseTenantAndWait(
  client: KubeClient,
  name: string,
  timeoutMs = 90_000,
): Promise<void> {
  await requestErasure(client, name);
  await client.delete(objectPath(RESOURCES.Tenant, name));
  await waitFor(
    `tenant ${name} to be erased and its namespace gone`,
    async () =>
      !(await getTenant(client, name)) &&
      !(await client.get<KubeObject>(objectPath(RESOURCES.Namespace, `tenant-${name}`))),
    { timeoutMs },
  );
}

/**
 * Deletes a Tenant that no operator has reconciled, so nothing of it exists
 * outside the object, and lets it go by removing its finalizers: the API
 * server gave it ours at creation (the finalizer policy), and no operator
 * will ever erase it. What an administrator does for such a Tenant.
 */
export async function deleteUnreconciledTenant(client: KubeClient, name: string): Promise<void> {
  const path = objectPath(RESOURCES.Tenant, name);
  await client.delete(path);
  const held = await getTenant(client, name);
  if (!held) return;
  await client.jsonPatch(path, [
    { op: 'test', path: '/metadata/resourceVersion', value: held.metadata.resourceVersion },
    { op: 'replace', path: '/metadata/finalizers', value: [] },
  ]);
  await waitFor(`tenant ${name} to go`, async () => !(await getTenant(client, name)));
}

/** The erase-now annotation, with the tenant's own name as confirmation (nothing if it is gone). */
export async function requestErasure(client: KubeClient, name: string): Promise<void> {
  await client
    .mergePatch(objectPath(RESOURCES.Tenant, name), {
      metadata: { annotations: { [ANNOTATION_ERASE_NOW]: name } },
    })
    .catch((err: unknown) => {
      if (!isNotFound(err)) throw err;
    });
}

export async function getObject(
  client: KubeClient,
  kind: keyof typeof RESOURCES,
  name: string,
  namespace?: string,
) {
  return client.get<KubeObject>(objectPath(RESOURCES[kind], name, namespace));
}

export interface AccessReview {
  user: string;
  groups: string[];
  verb: string;
  resource: string;
  group?: string;
  namespace?: string;
  name?: string;
}

/** Whether the real API server's authorizer lets this user do this (a SubjectAccessReview). */
export async function accessAllowed(client: KubeClient, review: AccessReview): Promise<boolean> {
  const result = await client.request<{ status: { allowed: boolean } }>(
    'POST',
    '/apis/authorization.k8s.io/v1/subjectaccessreviews',
    {
      body: {
        apiVersion: 'authorization.k8s.io/v1',
        kind: 'SubjectAccessReview',
        spec: {
          user: review.user,
          groups: review.groups,
          resourceAttributes: {
            verb: review.verb,
            resource: review.resource,
            group: review.group ?? '',
            ...(review.namespace ? { namespace: review.namespace } : {}),
            ...(review.name ? { name: review.name } : {}),
          },
        },
      },
    },
  );
  return result.status.allowed;
}

/** The Events about any of these Tenants (by name). */
export async function tenantEvents(client: KubeClient, names: string[]): Promise<KubeObject[]> {
  const list = await client.request<KubeList<KubeObject>>(
    'GET',
    collectionPath(RESOURCES.Event, EVENTS_NAMESPACE),
  );
  return list.items.filter((event) => {
    const involved = event.involvedObject as { kind?: string; name?: string } | undefined;
    return involved?.kind === 'Tenant' && names.includes(involved.name ?? '');
  });
}
