import { readFile } from 'node:fs/promises';
import pg from 'pg';
import { localServers, registerLocalDatabaseServers } from '../hack/database-servers.ts';
import { KubeClient } from '../src/k8s/client.ts';
import { quoteIdentifier } from '../src/postgres/identifiers.ts';
import { generatePassword } from '../src/postgres/password.ts';
import { scramSha256Verifier } from '../src/postgres/scram.ts';
import { VaultClient } from '../src/vault/client.ts';
import { KvV2 } from '../src/vault/kv.ts';
import {
  CONCURRENCY,
  createAndTimeToReady,
  kubeConfig,
  percentile,
  pool,
  printTable,
  startOperator,
} from './support.ts';

// N tenants with a database, created at once: time to Ready (which includes
// DatabaseReady), against the bare work the operator cannot avoid, done
// directly at the same concurrency: CREATE ROLE, CREATE DATABASE and one
// Vault KV write per tenant.

const N = Number(process.env.BENCH_DB_TENANTS ?? 50);

async function bareCalls(names: string[]): Promise<number> {
  const server = localServers()[0]!;
  const admin = new pg.Pool({
    host: server.host,
    port: server.port,
    user: server.adminUser,
    password: server.adminPassword,
    database: 'postgres',
    ssl: { ca: await readFile(process.env.PG_CA_FILE ?? '', 'utf8'), rejectUnauthorized: true },
    max: CONCURRENCY,
  });
  const kv = new KvV2(VaultClient.fromEnv());
  const start = performance.now();
  await pool(names, CONCURRENCY, async (name) => {
    const role = quoteIdentifier(name);
    const password = generatePassword();
    const verifier = await scramSha256Verifier(password);
    await admin.query(`CREATE ROLE ${role} LOGIN PASSWORD '${verifier}'`);
    await admin.query(`CREATE DATABASE ${role} OWNER ${role}`);
    await kv.writeSecret(`bench/${name}`, { username: name, password });
  });
  const elapsed = performance.now() - start;
  await admin.end();
  return elapsed;
}

export async function benchDatabases(): Promise<boolean> {
  const client = await KubeClient.create(kubeConfig());
  await registerLocalDatabaseServers(client);
  const runId = Date.now().toString(36);
  const bareMs = await bareCalls(Array.from({ length: N }, (_, i) => `raw_${runId}_${i}`));

  const operator = await startOperator(`bench-db-${runId}`, VaultClient.fromEnv());
  // Placement needs the servers' reachability checked once.
  await new Promise((r) => setTimeout(r, 1_000));
  const names = Array.from({ length: N }, (_, i) => `benchdb-${runId}-${i}`);
  const timings = await createAndTimeToReady(client, names, (name) => ({
    owners: [{ kind: 'Group', name: `${name}-admins` }],
    region: 'eu-west',
    database: { enabled: true },
  }));
  printTable(
    'database benchmark (placement, roles, database, Vault credentials, policy, auth role)',
    [
      ['tenants with a database', String(N)],
      ['operator concurrency', String(CONCURRENCY)],
      ['time to Ready (DatabaseReady) p50', `${percentile(timings.durations, 50).toFixed(0)} ms`],
      ['time to Ready (DatabaseReady) p99', `${percentile(timings.durations, 99).toFixed(0)} ms`],
      ['throughput', `${((N / timings.totalMs) * 1000).toFixed(1)} tenants/s`],
      [
        'bare CREATE ROLE + CREATE DATABASE + Vault write',
        `${bareMs.toFixed(0)} ms (${(bareMs / N).toFixed(0)} ms/tenant at ${CONCURRENCY} at once)`,
      ],
      ['operator / bare calls', `${(timings.totalMs / bareMs).toFixed(2)}x`],
      ['not Ready after 10 min', String(timings.notReady)],
    ],
  );
  await operator.stop();
  await client.close();
  return timings.notReady === 0;
}
