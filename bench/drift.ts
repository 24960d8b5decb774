import { isDeepStrictEqual } from 'node:util';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../src/k8s/client.ts';
import { collectionPath, objectPath, RESOURCES } from '../src/k8s/resources.ts';
import type { KubeObject } from '../src/k8s/types.ts';
import {
  createAndTimeToReady,
  kubeConfig,
  percentile,
  printTable,
  startOperator,
} from './support.ts';

// Drift repair: for each of K settled tenants, the break-glass identity opens
// `default-deny` to everything both ways (the allow-all patch a careless
// admin or an attacker with write access would make), and the clock runs
// until the API server holds the original again. The baseline is the same
// repair made by hand in the same run: read the object and replace it with
// the original (GET + PUT), on a NetworkPolicy no operator watches.

const K = Number(process.env.BENCH_DRIFT_TENANTS ?? 30);
const ALLOW_ALL = { spec: { ingress: [{}], egress: [{}] } };
const POLL_MS = 5;

type Policy = KubeObject & { spec: unknown };

function breakGlassClient(): Promise<KubeClient> {
  const path = process.env.BREAK_GLASS_KUBECONFIG;
  if (!path) throw new Error('BREAK_GLASS_KUBECONFIG is not set: run it with `npm run bench`');
  const config = new KubeConfig();
  config.loadFromFile(path);
  return KubeClient.create(config);
}

/** The bare work of one repair: read the object, put the original back. */
async function bareRepairs(client: KubeClient, runId: string): Promise<number[]> {
  const namespace = `drift-bare-${runId}`;
  await client.create(collectionPath(RESOURCES.Namespace), {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: { name: namespace },
  });
  const original = {
    apiVersion: 'networking.k8s.io/v1',
    kind: 'NetworkPolicy',
    metadata: { name: 'default-deny', namespace },
    spec: { podSelector: {}, policyTypes: ['Ingress', 'Egress'] },
  };
  const path = objectPath(RESOURCES.NetworkPolicy, 'default-deny', namespace);
  await client.create(collectionPath(RESOURCES.NetworkPolicy, namespace), original);
  const durations: number[] = [];
  for (let i = 0; i < K; i++) {
    await client.mergePatch(path, ALLOW_ALL);
    const start = performance.now();
    const live = await client.get<Policy>(path);
    await client.request('PUT', path, {
      body: { ...original, metadata: { ...original.metadata, ...live?.metadata } },
    });
    durations.push(performance.now() - start);
  }
  await client.delete(objectPath(RESOURCES.Namespace, namespace));
  return durations.sort((a, b) => a - b);
}

export async function benchDrift(): Promise<boolean> {
  const client = await KubeClient.create(kubeConfig());
  const breakGlass = await breakGlassClient();
  const runId = Date.now().toString(36);
  const bare = await bareRepairs(breakGlass, runId);

  const operator = await startOperator(`bench-drift-${runId}`);
  const names = Array.from({ length: K }, (_, i) => `drift-${runId}-${i}`);
  const ready = await createAndTimeToReady(client, names, (name) => ({
    owners: [{ kind: 'Group', name: `${name}-admins` }],
    database: { enabled: false },
  }));
  await operator.queue.whenIdle();

  const repairs: number[] = [];
  let unrepaired = 0;
  for (const name of names) {
    const path = objectPath(RESOURCES.NetworkPolicy, 'default-deny', `tenant-${name}`);
    const original = (await client.get<Policy>(path))?.spec;
    await breakGlass.mergePatch(path, ALLOW_ALL);
    const start = performance.now();
    const deadline = start + 30_000;
    let repaired = false;
    while (performance.now() < deadline) {
      const live = await client.get<Policy>(path);
      if (live && isDeepStrictEqual(live.spec, original)) {
        repaired = true;
        break;
      }
      await new Promise((r) => setTimeout(r, POLL_MS));
    }
    if (repaired) repairs.push(performance.now() - start);
    else unrepaired++;
  }
  repairs.sort((a, b) => a - b);
  const p50 = percentile(repairs, 50);
  const bareP50 = percentile(bare, 50);

  printTable('drift repair benchmark (allow-all patch on default-deny; local control plane)', [
    ['tenants', String(K)],
    ['tenants Ready before the drift', String(K - ready.notReady)],
    ['patch to repaired p50', `${p50.toFixed(0)} ms`],
    ['patch to repaired p99', `${percentile(repairs, 99).toFixed(0)} ms`],
    ['bare repair (GET + PUT) p50', `${bareP50.toFixed(1)} ms`],
    ['bare repair (GET + PUT) p99', `${percentile(bare, 99).toFixed(1)} ms`],
    ['operator / bare repair (p50)', `${(p50 / bareP50).toFixed(2)}x`],
    ['not repaired within 30 s', String(unrepaired)],
  ]);
  await operator.stop();
  await breakGlass.close();
  await client.close();
  return unrepaired === 0 && ready.notReady === 0;
}
