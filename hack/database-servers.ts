// Registers the local PostgreSQL servers (hack/postgres.sh) with a cluster the
// way a platform team would: admin credentials into Vault KV, the CA into a
// Secret, and one DatabaseServer per server. Used by `npm start` and the tests.
//
//   node hack/database-servers.ts          (reads KUBECONFIG, VAULT_*, PG_* from the environment)

import { readFile } from 'node:fs/promises';
import { pathToFileURL } from 'node:url';
import { KubeConfig } from '@kubernetes/client-node';
import { KubeClient } from '../src/k8s/client.ts';
import { VaultClient } from '../src/vault/client.ts';
import { KvV2 } from '../src/vault/kv.ts';

export const CA_SECRET = { name: 'database-ca', namespace: 'tenant-system', key: 'ca.crt' };

export interface LocalServer {
  name: string;
  region: string;
  host: string;
  port: number;
  adminUser: string;
  adminPassword: string;
}

function env(name: string): string {
  const value = process.env[name];
  if (!value) throw new Error(`${name} is not set: start the local stack with hack/cluster.sh up`);
  return value;
}

export function localServers(): LocalServer[] {
  return ['EU', 'US'].map((p) => ({
    name: env(`PG_${p}_NAME`),
    region: env(`PG_${p}_REGION`),
    host: env(`PG_${p}_HOST`),
    port: Number(env(`PG_${p}_PORT`)),
    adminUser: env(`PG_${p}_ADMIN_USER`),
    adminPassword: env(`PG_${p}_ADMIN_PASSWORD`),
  }));
}

export function databaseServerManifest(server: LocalServer, maxDatabases = 100) {
  return {
    apiVersion: 'tenancy.io/v1alpha1',
    kind: 'DatabaseServer',
    metadata: { name: server.name },
    spec: {
      host: server.host,
      port: server.port,
      region: server.region,
      // TLS with verify-full: the servers' certificates name 127.0.0.1 and localhost.
      tls: { mode: 'VerifyFull', caSecretRef: CA_SECRET },
      adminCredentialsVaultPath: `database-servers/${server.name}`,
      capacity: { maxDatabases },
    },
  };
}

export async function registerLocalDatabaseServers(
  client: KubeClient,
  maxDatabases?: number,
): Promise<LocalServer[]> {
  const ca = await readFile(env('PG_CA_FILE'));
  await client.apply({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: CA_SECRET.name, namespace: CA_SECRET.namespace },
    data: { [CA_SECRET.key]: ca.toString('base64') },
  });
  const kv = new KvV2(VaultClient.fromEnv());
  const servers = localServers();
  for (const server of servers) {
    await kv.writeSecret(`database-servers/${server.name}`, {
      username: server.adminUser,
      password: server.adminPassword,
    });
    await client.apply(databaseServerManifest(server, maxDatabases));
  }
  return servers;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromDefault();
  const client = await KubeClient.create(kubeConfig);
  const servers = await registerLocalDatabaseServers(client);
  await client.close();
  console.log(
    `registered DatabaseServers: ${servers.map((s) => `${s.name} (${s.region})`).join(', ')}`,
  );
}
