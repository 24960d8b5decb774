import { createHash } from 'node:crypto';
import {
  databaseServerSpecSchema,
  type DatabaseServerSpec,
  type DatabaseServerStatus,
} from '../api/databaseserver.ts';
import { describeIssues } from '../api/validate.ts';
import { ERROR_CODES, OperatorError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { objectPath, RESOURCES } from '../k8s/resources.ts';
import type { KubeObject } from '../k8s/types.ts';
import { PostgresAdmin } from '../postgres/admin.ts';
import type { ServerConnection } from '../postgres/connection.ts';
import type { KvV2 } from '../vault/kv.ts';

// Admin connections to DatabaseServers, one pool per server, rebuilt when the
// server's spec, its admin credentials in Vault or its CA change, closed when
// the server is deleted. Credentials
// come from Vault and the CA from a Secret; neither is ever logged. Both are
// read again at most every `credentialsMaxAgeMs`: every reconcile of every
// database tenant asks for its server's pool, and calls for one server run one
// at a time, so a read per call made each server a queue of round trips.

export interface DatabaseServerObject extends KubeObject {
  spec?: unknown;
  status?: DatabaseServerStatus;
}

export interface ServerHandle {
  name: string;
  spec: DatabaseServerSpec;
  admin: PostgresAdmin;
  /** The admin connection settings, for work outside the pool (backup verification's scratch databases). */
  connection: ServerConnection;
  /** What tenants' clients use: the same host, port and CA as the admin connection. */
  caCertificate: string | undefined;
}

/** The server's spec, or undefined when it does not parse (such a server is no candidate for anything). */
export function serverSpecOf(server: DatabaseServerObject): DatabaseServerSpec | undefined {
  const parsed = databaseServerSpecSchema.safeParse(server.spec ?? {});
  return parsed.success ? parsed.data : undefined;
}

export function parseServerSpec(server: DatabaseServerObject): DatabaseServerSpec {
  const parsed = databaseServerSpecSchema.safeParse(server.spec ?? {});
  if (!parsed.success) {
    throw new OperatorError(
      ERROR_CODES.INVALID_SPEC,
      `DatabaseServer ${server.metadata.name}: invalid spec: ${describeIssues(parsed.error, 'spec')}`,
    );
  }
  return parsed.data;
}

interface CachedHandle {
  fingerprint: string;
  handle: ServerHandle;
  uid: string | undefined;
}

/**
 * Admin pools by DatabaseServer name. Calls for one server run one at a
 * time: two reconciles that both notice new credentials must not both close
 * the old pool (the second close throws) nor both open a new one (one would
 * leak). A deleted server's pool is closed and forgotten, and never reopened
 * by a reconcile that still holds the deleted object.
 */
export class DatabaseServerConnections {
  private readonly kube: KubeClient;
  private readonly kv: KvV2;
  private readonly beforeWrite: () => void;
  private readonly handles = new Map<string, CachedHandle>();
  /** The tail of each server's queue of calls. */
  private readonly locks = new Map<string, Promise<unknown>>();
  /** UIDs of deleted servers: a late get() for one of them must not open a pool again. */
  private readonly deleted = new Set<string>();
  private readonly credentialsMaxAgeMs: number;
  /** The CA last read for each server, by the Secret key it came from. */
  private readonly caReads = new Map<
    string,
    { source: string; readAt: number; ca: string | undefined }
  >();

  /**
   * `beforeWrite` runs before every statement that changes a server (the
   * leader's fence: a replica that may have lost its lease writes nothing).
   * `credentialsMaxAgeMs`: how long the admin credentials read from Vault
   * are reused (every tenant of a server asks for its pool on each
   * reconcile); a new version is picked up at most that late. 0: read each time.
   */
  constructor(
    kube: KubeClient,
    kv: KvV2,
    beforeWrite: () => void = () => undefined,
    credentialsMaxAgeMs = 0,
  ) {
    this.kube = kube;
    this.kv = kv;
    this.beforeWrite = beforeWrite;
    this.credentialsMaxAgeMs = credentialsMaxAgeMs;
  }

  get(server: DatabaseServerObject): Promise<ServerHandle> {
    return this.serialized(server.metadata.name, () => this.getNow(server));
  }

  /** Closes and forgets the pool of a DatabaseServer that is gone. */
  forget(server: DatabaseServerObject): Promise<void> {
    const uid = server.metadata.uid;
    if (uid) this.deleted.add(uid);
    return this.serialized(server.metadata.name, async () => {
      const cached = this.handles.get(server.metadata.name);
      // A server deleted and created again under the same name: only the old one goes.
      if (!cached || (uid && cached.uid && cached.uid !== uid)) return;
      this.handles.delete(server.metadata.name);
      this.caReads.delete(server.metadata.name);
      await cached.handle.admin.close();
    });
  }

  /** Servers with an open pool, for tests and diagnostics. */
  get openServers(): string[] {
    return [...this.handles.keys()];
  }

  private async serialized<T>(name: string, work: () => Promise<T>): Promise<T> {
    const previous = this.locks.get(name) ?? Promise.resolve();
    const run = previous.then(work, work);
    const tail = run.catch(() => undefined);
    this.locks.set(name, tail);
    try {
      return await run;
    } finally {
      // The last in line leaves no entry behind.
      if (this.locks.get(name) === tail) this.locks.delete(name);
    }
  }

  private async getNow(server: DatabaseServerObject): Promise<ServerHandle> {
    const name = server.metadata.name;
    if (server.metadata.uid && this.deleted.has(server.metadata.uid)) {
      throw new OperatorError(ERROR_CODES.INVALID_SPEC, `DatabaseServer ${name} was deleted`);
    }
    const spec = parseServerSpec(server);
    const credentials = await this.kv.readSecret(spec.adminCredentialsVaultPath, {
      cached: { maxAgeMs: this.credentialsMaxAgeMs },
    });
    const username = credentials?.data.username;
    const password = credentials?.data.password;
    if (!username || !password) {
      throw new OperatorError(
        ERROR_CODES.INVALID_SPEC,
        `DatabaseServer ${name}: no username/password at Vault KV path ${spec.adminCredentialsVaultPath}`,
      );
    }
    const caCertificate = await this.recentCa(name, spec);
    const fingerprint = createHash('sha256')
      .update(
        JSON.stringify([
          server.metadata.uid ?? '',
          server.metadata.generation,
          credentials.version,
          username,
          caCertificate ?? '',
        ]),
      )
      .digest('hex');
    const cached = this.handles.get(name);
    if (cached?.fingerprint === fingerprint) return cached.handle;
    if (cached) {
      this.handles.delete(name);
      await cached.handle.admin.close();
    }
    const connection: ServerConnection = {
      host: spec.host,
      port: spec.port,
      user: username,
      password,
      ...(caCertificate ? { caCertificate } : { plaintext: true }),
    };
    const handle: ServerHandle = {
      name,
      spec,
      admin: new PostgresAdmin(connection, { beforeWrite: this.beforeWrite }),
      connection,
      caCertificate,
    };
    this.handles.set(name, { fingerprint, handle, uid: server.metadata.uid });
    return handle;
  }

  /** The server's CA, read again once older than credentialsMaxAgeMs or named differently. */
  private async recentCa(name: string, spec: DatabaseServerSpec): Promise<string | undefined> {
    const ref = spec.tls?.caSecretRef;
    const source = JSON.stringify([spec.tls?.mode ?? '', ref?.namespace, ref?.name, ref?.key]);
    const last = this.caReads.get(name);
    if (last?.source === source && Date.now() - last.readAt < this.credentialsMaxAgeMs) {
      return last.ca;
    }
    const readAt = Date.now();
    const ca = await this.readCa(name, spec);
    this.caReads.set(name, { source, readAt, ca });
    return ca;
  }

  private async readCa(name: string, spec: DatabaseServerSpec): Promise<string | undefined> {
    if (spec.tls?.mode === 'Disable') return undefined;
    const ref = spec.tls?.caSecretRef;
    // The spec schema already refuses this; checked again because a missing CA
    // must never turn into a plain-text connection.
    if (!ref) {
      throw new OperatorError(ERROR_CODES.INVALID_SPEC, `DatabaseServer ${name}: no CA`);
    }
    const secret = await this.kube.get<KubeObject & { data?: Record<string, string> }>(
      objectPath(RESOURCES.Secret, ref.name, ref.namespace),
    );
    const encoded = secret?.data?.[ref.key];
    if (!encoded) {
      throw new OperatorError(
        ERROR_CODES.INVALID_SPEC,
        `DatabaseServer ${name}: CA Secret ${ref.namespace}/${ref.name} has no key ${ref.key}`,
      );
    }
    return Buffer.from(encoded, 'base64').toString('utf8');
  }

  async closeAll(): Promise<void> {
    const names = [...this.handles.keys()];
    await Promise.all(
      names.map((name) =>
        this.serialized(name, async () => {
          const cached = this.handles.get(name);
          this.handles.delete(name);
          this.caReads.delete(name);
          await cached?.handle.admin.close();
        }),
      ),
    );
  }
}
