import { setTimeout as sleep } from 'node:timers/promises';
import { buildAdmissionGuard } from '../admission/policies.ts';
import type { GuardIdentities } from '../admission/identities.ts';
import { ALL_KINDS, customResourceDefinition } from '../api/crd.ts';
import type { KubeClient } from '../k8s/client.ts';
import { objectPath, RESOURCES } from '../k8s/resources.ts';
import type { KubeObject } from '../k8s/types.ts';

// `tenant-operator install-crds`: the CRDs and the admission guard, applied
// with server-side apply so running it again changes nothing (or exactly what
// a new version or new flags change).

interface WithStatus extends KubeObject {
  status?: { conditions?: { type: string; status: string }[]; observedGeneration?: number };
}

async function waitUntil(
  client: KubeClient,
  object: KubeObject,
  ready: (live: WithStatus) => boolean,
  what: string,
  timeoutMs: number,
): Promise<void> {
  const type = RESOURCES[object.kind as 'CustomResourceDefinition' | 'ValidatingAdmissionPolicy'];
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const live = await client.get<WithStatus>(objectPath(type, object.metadata.name));
    if (live && ready(live)) return;
    if (Date.now() > deadline)
      throw new Error(`${object.kind} ${object.metadata.name} not ${what} after ${timeoutMs} ms`);
    await sleep(200);
  }
}

/** Applies the CRDs and waits until the API server serves them. */
export async function installCrds(client: KubeClient, timeoutMs = 60_000): Promise<void> {
  for (const kind of ALL_KINDS) {
    const crd = customResourceDefinition(kind) as unknown as KubeObject;
    await client.apply(crd);
    await waitUntil(
      client,
      crd,
      (live) =>
        live.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True') ??
        false,
      'established',
      timeoutMs,
    );
  }
}

/**
 * Applies the admission policies and their bindings, and waits until the API
 * server has checked each policy (status.observedGeneration), which it does
 * as it loads them.
 */
export async function installAdmissionGuard(
  client: KubeClient,
  identities: GuardIdentities,
  timeoutMs = 60_000,
): Promise<void> {
  const objects = buildAdmissionGuard(identities);
  for (const object of objects) await client.apply(object);
  for (const policy of objects.filter((o) => o.kind === 'ValidatingAdmissionPolicy')) {
    await waitUntil(
      client,
      policy,
      (live) => live.status?.observedGeneration === live.metadata.generation,
      'checked by the API server',
      timeoutMs,
    );
  }
}
