import { open, readFile } from 'node:fs/promises';
import pg from 'pg';
import type { LocalServer } from '../hack/database-servers.ts';
import { FIELD_MANAGER, MANAGED_SELECTOR } from '../src/api/constants.ts';
import type { KubeClient } from '../src/k8s/client.ts';
import { collectionPath, RESOURCES, type ResourceType } from '../src/k8s/resources.ts';
import { objectKey, type KubeList, type KubeObject } from '../src/k8s/types.ts';
import { credentialsPath } from '../src/tenant/database-vault.ts';
import type { KvV2 } from '../src/vault/kv.ts';
import type { VaultClient } from '../src/vault/client.ts';

// What the servers themselves say the operator did, for the steady-state and
// restart checks: objects' resourceVersions (any write changes one), Vault's
// KV versions and its audit log (every request, whoever counts it), and
// PostgreSQL's pg_stat_statements (every statement, by text).

/** An object as the server last wrote it: its resourceVersion, and who wrote what, when. */
export interface ObjectVersion {
  resourceVersion: string;
  /** Each field manager's entries (operation, subresource, time), as JSON. */
  writers: Map<string, string>;
}

/** Every Tenant and every object the operator manages, by kind/namespace/name. */
export async function resourceVersions(client: KubeClient): Promise<Map<string, ObjectVersion>> {
  const versions = new Map<string, ObjectVersion>();
  const kinds: [ResourceType, string | undefined][] = [
    [RESOURCES.Tenant, undefined],
    [RESOURCES.Namespace, MANAGED_SELECTOR],
    [RESOURCES.NetworkPolicy, MANAGED_SELECTOR],
    [RESOURCES.RoleBinding, MANAGED_SELECTOR],
    [RESOURCES.ResourceQuota, MANAGED_SELECTOR],
    [RESOURCES.LimitRange, MANAGED_SELECTOR],
    [RESOURCES.Secret, MANAGED_SELECTOR],
  ];
  for (const [type, labelSelector] of kinds) {
    let continueToken: string | undefined;
    do {
      const page = await client.request<KubeList<KubeObject>>('GET', collectionPath(type), {
        query: { labelSelector, limit: 500, continue: continueToken },
      });
      for (const item of page.items) {
        const writers = new Map<string, string>();
        for (const entry of item.metadata.managedFields ?? []) {
          const manager = entry.manager ?? '?';
          const seen = writers.get(manager) ?? '';
          writers.set(
            manager,
            seen + JSON.stringify([entry.operation, entry.subresource, entry.time]),
          );
        }
        versions.set(`${type.kind}/${objectKey(item)}`, {
          resourceVersion: item.metadata.resourceVersion ?? '',
          writers,
        });
      }
      continueToken = page.metadata.continue || undefined;
    } while (continueToken);
  }
  return versions;
}

export interface Changes {
  /** Objects the operator wrote (its field manager's entries changed), created or that vanished. */
  ours: string[];
  /** Objects only others wrote to (e.g. the quota controller updating a ResourceQuota's status), with who. */
  others: string[];
}

/** What changed between two listings, and who changed it, from the objects' own managedFields. */
export function changes(
  before: Map<string, ObjectVersion>,
  after: Map<string, ObjectVersion>,
): Changes {
  const ours: string[] = [];
  const others: string[] = [];
  for (const [key, now] of after) {
    const then = before.get(key);
    if (!then) {
      ours.push(key);
      continue;
    }
    if (then.resourceVersion === now.resourceVersion) continue;
    const writers = [...now.writers].filter(([m, entries]) => then.writers.get(m) !== entries);
    if (writers.some(([m]) => m === FIELD_MANAGER) || writers.length === 0) ours.push(key);
    else others.push(`${key} (${writers.map(([m]) => m).join(', ')})`);
  }
  for (const key of before.keys()) if (!after.has(key)) ours.push(key);
  return { ours, others };
}

/** Each database tenant's credentials secret, and its current KV version. */
export async function kvVersions(kv: KvV2, tenants: string[]): Promise<Map<string, number>> {
  const versions = new Map<string, number>();
  for (const tenant of tenants) {
    const metadata = await kv.readMetadata(credentialsPath(tenant));
    if (!metadata) throw new Error(`tenant ${tenant} has no credentials in Vault`);
    versions.set(tenant, metadata.currentVersion);
  }
  return versions;
}

/**
 * Vault's file audit device, turned on for the run: one JSON line per request
 * and per response. Counting requests between two offsets counts what the
 * operator asked, by Vault's own record.
 */
export class VaultAudit {
  private readonly path: string;
  private offset = 0;

  private constructor(path: string) {
    this.path = path;
  }

  static async enable(vault: VaultClient, name: string, path: string): Promise<VaultAudit> {
    await vault.request('PUT', `sys/audit/bench-${name}`, {
      type: 'file',
      options: { file_path: path, log_raw: 'false' },
    });
    return new VaultAudit(path);
  }

  /** Starts a window: requests before now are not counted. */
  async mark(): Promise<void> {
    const handle = await open(this.path);
    this.offset = (await handle.stat()).size;
    await handle.close();
  }

  /** Requests since mark(), by path prefix. */
  async requestsSinceMark(): Promise<{ total: number; byPath: Map<string, number> }> {
    const text = (await readFile(this.path)).subarray(this.offset).toString('utf8');
    const byPath = new Map<string, number>();
    let total = 0;
    for (const line of text.split('\n')) {
      if (line === '') continue;
      const entry = JSON.parse(line) as { type?: string; request?: { path?: string } };
      if (entry.type !== 'request') continue;
      total++;
      // Group tenants' paths: "secret/metadata/tenants/<name>/database" →
      // "secret/metadata/tenants", "transit/keys/<key>" → "transit/keys/*"
      // ("transit/keys/" alone is the listing).
      const segments = (entry.request?.path ?? '?').split('/');
      const path =
        segments[0] === 'transit' && segments[1] === 'keys' && (segments[2] ?? '') !== ''
          ? 'transit/keys/*'
          : segments.slice(0, 3).join('/');
      byPath.set(path, (byPath.get(path) ?? 0) + 1);
    }
    return { total, byPath };
  }
}

/** pg_stat_statements on each local server, read as its admin over TLS. */
export class StatementCounts {
  private readonly pools: pg.Pool[];

  private constructor(pools: pg.Pool[]) {
    this.pools = pools;
  }

  static async connect(servers: LocalServer[], caFile: string): Promise<StatementCounts> {
    const ca = await readFile(caFile, 'utf8');
    const pools = servers.map(
      (server) =>
        new pg.Pool({
          host: server.host,
          port: server.port,
          user: server.adminUser,
          password: server.adminPassword,
          database: 'postgres',
          ssl: { ca, rejectUnauthorized: true },
          max: 1,
        }),
    );
    for (const pool of pools) await pool.query('CREATE EXTENSION IF NOT EXISTS pg_stat_statements');
    return new StatementCounts(pools);
  }

  async reset(): Promise<void> {
    for (const pool of this.pools) await pool.query('SELECT pg_stat_statements_reset()');
  }

  /** Statements executed since reset() on all servers: all of them, and ALTER ROLE. */
  async sinceReset(): Promise<{ statements: number; alterRole: number }> {
    let statements = 0;
    let alterRole = 0;
    for (const pool of this.pools) {
      const { rows } = await pool.query<{ statements: string | null; alter_role: string | null }>(
        `SELECT sum(calls) AS statements,
                sum(calls) FILTER (WHERE query ~* '^\\s*ALTER\\s+(ROLE|USER)') AS alter_role
           FROM pg_stat_statements
          WHERE query NOT LIKE '%pg_stat_statements%'`,
      );
      statements += Number(rows[0]?.statements ?? 0);
      alterRole += Number(rows[0]?.alter_role ?? 0);
    }
    return { statements, alterRole };
  }

  async close(): Promise<void> {
    await Promise.all(this.pools.map((pool) => pool.end()));
  }
}
