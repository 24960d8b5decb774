import { setTimeout as sleep } from 'node:timers/promises';
import { buildAdmissionGuard } from '../admission/policies.ts';
import { KUBE_CONTROLLER_USERS, type GuardIdentities } from '../admission/identities.ts';
import { POLICY_NAME_PREFIX } from '../admission/policy.ts';
import { tenantFinalizerPolicy } from '../admission/tenant-finalizer.ts';
import {
  API_VERSION,
  FINALIZER,
  LABEL_MANAGED_BY,
  MANAGED_BY_VALUE,
  NAMESPACE_PREFIX,
} from '../api/constants.ts';
import { ERROR_CODES, OperatorError } from '../errors.ts';
import { ALL_KINDS, customResourceDefinition } from '../api/crd.ts';
import type { KubeClient } from '../k8s/client.ts';
import { collectionPath, objectPath, RESOURCES } from '../k8s/resources.ts';
import type { KubeObject } from '../k8s/types.ts';

// `tenant-operator install-crds`: the CRDs and the admission guard, applied
// with server-side apply so running it again changes nothing (or exactly what
// a new version or new flags change).

interface WithStatus extends KubeObject {
  status?: { conditions?: { type: string; status: string }[] };
}

/** Asks `done` every 200 ms until it says yes; throws "<notYet> after <timeoutMs> ms" past the deadline. */
async function pollUntil(
  done: () => Promise<boolean>,
  notYet: string,
  timeoutMs: number,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await done())) {
    if (Date.now() > deadline) throw new Error(`${notYet} after ${timeoutMs} ms`);
    await sleep(200);
  }
}

/** Applies the CRDs and waits until the API server serves them. */
export async function installCrds(client: KubeClient, timeoutMs = 60_000): Promise<void> {
  for (const kind of ALL_KINDS) {
    const crd = customResourceDefinition(kind) as unknown as KubeObject;
    await client.apply(crd);
    const path = objectPath(RESOURCES.CustomResourceDefinition, crd.metadata.name);
    await pollUntil(
      async () =>
        (await client.get<WithStatus>(path))?.status?.conditions?.some(
          (c) => c.type === 'Established' && c.status === 'True',
        ) ?? false,
      `${crd.kind} ${crd.metadata.name} not established`,
      timeoutMs,
    );
  }
}

/**
 * Applies the admission policies and their bindings, then waits until the API
 * server enforces them: the API server loads policies in the background, and
 * a guard that is not in force yet would let the first edits through.
 */
export async function installAdmissionGuard(
  client: KubeClient,
  identities: GuardIdentities,
  timeoutMs = 60_000,
): Promise<'enforced' | 'installer-exempt'> {
  for (const object of buildAdmissionGuard(identities)) await client.apply(object);
  const me = await whoAmI(client);
  // The guard lets exempt identities through, so their probe can prove nothing.
  if (isExempt(me, identities)) return 'installer-exempt';
  await pollUntil(() => probeRefused(client), 'the admission guard is not enforced', timeoutMs);
  return 'enforced';
}

interface UserInfo {
  username: string;
  groups: string[];
}

async function whoAmI(client: KubeClient): Promise<UserInfo> {
  const review = await client.request<{ status: { userInfo: Partial<UserInfo> } }>(
    'POST',
    '/apis/authentication.k8s.io/v1/selfsubjectreviews',
    { body: { apiVersion: 'authentication.k8s.io/v1', kind: 'SelfSubjectReview' } },
  );
  return {
    username: review.status.userInfo.username ?? '',
    groups: review.status.userInfo.groups ?? [],
  };
}

function isExempt(user: UserInfo, identities: GuardIdentities): boolean {
  return (
    identities.operatorUsers.includes(user.username) ||
    KUBE_CONTROLLER_USERS.includes(user.username) ||
    user.groups.some((group) => identities.breakGlassGroups.includes(group))
  );
}

/**
 * A server-side dry run the guard must refuse: creating a namespace that
 * passes itself off as a tenant's. Nothing is stored either way.
 */
async function probeRefused(client: KubeClient): Promise<boolean> {
  const probe = buildNamespaceProbe();
  try {
    await client.request('POST', collectionPath(RESOURCES.Namespace), {
      query: { dryRun: 'All' },
      body: probe,
    });
    return false;
  } catch (err: unknown) {
    if (
      err instanceof OperatorError &&
      err.code === ERROR_CODES.API_FORBIDDEN &&
      err.message.includes(`${POLICY_NAME_PREFIX}managed-namespaces`)
    )
      return true;
    throw err;
  }
}

function buildNamespaceProbe(): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name: `${NAMESPACE_PREFIX}admission-guard-probe`,
      labels: { [LABEL_MANAGED_BY]: MANAGED_BY_VALUE },
    },
  };
}

/** The API server serves MutatingAdmissionPolicy as v1 (Kubernetes 1.36 and later). */
async function servesMutatingPolicies(client: KubeClient): Promise<boolean> {
  const list = await client.get<KubeObject & { resources: { name: string }[] }>(
    '/apis/admissionregistration.k8s.io/v1',
  );
  return list?.resources.some((r) => r.name === 'mutatingadmissionpolicies') ?? false;
}

/**
 * Applies the policy that gives every new Tenant its finalizer, where the API
 * server has MutatingAdmissionPolicy, and waits until a dry-run Tenant comes
 * back with it. Elsewhere the operator adds the finalizer itself.
 */
export async function installTenantFinalizerPolicy(
  client: KubeClient,
  timeoutMs = 60_000,
): Promise<'enforced' | 'not-served'> {
  if (!(await servesMutatingPolicies(client))) return 'not-served';
  for (const object of tenantFinalizerPolicy()) await client.apply(object);
  await pollUntil(
    () => probeGetsFinalizer(client),
    'the Tenant finalizer policy is not in force',
    timeoutMs,
  );
  return 'enforced';
}

/** A dry-run Tenant, which the policy must hand back with its finalizer. Nothing is stored. */
export async function probeGetsFinalizer(client: KubeClient): Promise<boolean> {
  const created = await client.request<KubeObject>('POST', collectionPath(RESOURCES.Tenant), {
    query: { dryRun: 'All' },
    body: {
      apiVersion: API_VERSION,
      kind: 'Tenant',
      metadata: { name: 'admission-policy-probe' },
      spec: { owners: [{ kind: 'Group', name: 'admission-policy-probe' }] },
    },
  });
  return created.metadata.finalizers?.includes(FINALIZER) ?? false;
}
