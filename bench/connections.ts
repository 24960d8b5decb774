import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { readFileSync } from 'node:fs';
import { CoreV1Api } from '@kubernetes/client-node';
import { KubeClient } from '../src/k8s/client.ts';
import { kubeConfig, printTable } from './support.ts';

// Why the operator sends its API requests with its own undici pool and not
// with @kubernetes/client-node's generated clients: the same N reads, made
// one after the other by each, and the TCP connections each opened, counted
// by Node itself (the `net.client.socket` diagnostics channel fires once per
// outgoing socket). Timed too, each as a ratio of ours.

const N = Number(process.env.BENCH_CONNECTION_CALLS ?? 50);

async function counted(work: () => Promise<void>): Promise<{ sockets: number; ms: number }> {
  let sockets = 0;
  const count = () => {
    sockets++;
  };
  subscribe('net.client.socket', count);
  const start = performance.now();
  try {
    await work();
  } finally {
    unsubscribe('net.client.socket', count);
  }
  return { sockets, ms: performance.now() - start };
}

export async function benchConnections(): Promise<boolean> {
  const config = kubeConfig();
  const version = (
    JSON.parse(
      readFileSync(
        new URL('../node_modules/@kubernetes/client-node/package.json', import.meta.url),
        'utf8',
      ),
    ) as { version: string }
  ).version;
  const theirs = config.makeApiClient(CoreV1Api);
  const ours = await KubeClient.create(config);
  try {
    // One warm-up each: credentials loaded, first connection made.
    await theirs.listNamespace({ limit: 1 });
    await ours.request('GET', '/api/v1/namespaces', { query: { limit: '1' } });
    const clientNode = await counted(async () => {
      for (let i = 0; i < N; i++) await theirs.listNamespace({ limit: 1 });
    });
    const undici = await counted(async () => {
      for (let i = 0; i < N; i++)
        await ours.request('GET', '/api/v1/namespaces', { query: { limit: '1' } });
    });
    printTable(`API requests: ${N} sequential reads of one page of namespaces`, [
      [
        `@kubernetes/client-node ${version}`,
        `${clientNode.sockets} new connections, ${(clientNode.ms / undici.ms).toFixed(2)}× our time`,
      ],
      [
        'ours (one undici pool)',
        `${undici.sockets} new connections, ${(undici.ms / N).toFixed(2)} ms per read`,
      ],
    ]);
    return undici.sockets <= 1;
  } finally {
    await ours.close();
  }
}

if (import.meta.main) await benchConnections();
