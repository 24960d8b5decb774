import { setTimeout as sleep } from 'node:timers/promises';
import { ALL_KINDS, customResourceDefinition } from '../api/crd.ts';
import type { KubeClient } from '../k8s/client.ts';
import { objectPath, RESOURCES } from '../k8s/resources.ts';
import type { KubeObject } from '../k8s/types.ts';

/** Applies the CRDs and waits until the API server serves them. */
export async function installCrds(client: KubeClient, timeoutMs = 60_000): Promise<void> {
  for (const kind of ALL_KINDS) {
    const crd = customResourceDefinition(kind) as unknown as KubeObject;
    await client.apply(crd);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const live = await client.get<
        KubeObject & { status?: { conditions?: { type: string; status: string }[] } }
      >(objectPath(RESOURCES.CustomResourceDefinition, crd.metadata.name));
      if (live?.status?.conditions?.some((c) => c.type === 'Established' && c.status === 'True'))
        break;
      if (Date.now() > deadline)
        throw new Error(`CRD ${crd.metadata.name} not established after ${timeoutMs} ms`);
      await sleep(200);
    }
  }
}
