import { createHash } from 'node:crypto';
import {
  databaseServerSpecSchema,
  type DatabaseServerSpec,
  type DatabaseServerStatus,
} from '../api/databaseserver.ts';
import { ERROR_CODES, OperatorError } from '../errors.ts';
import type { KubeClient } from '../k8s/client.ts';
import { objectPath, RESOURCES } from '../k8s/resources.ts';
import type { KubeObject } from '../k8s/types.ts';
import { PostgresAdmin } from '../postgres/admin.ts';
import type { ServerConnection } from '../postgres/connection.ts';
import type { KvV2 } from '../vault/kv.ts';

// Admin connections to DatabaseServers, one pool per server, rebuilt when the
// server's spec, its admin credentials in Vault or its CA change. Credentials
// come from Vault and the CA from a Secret; neither is ever logged.

export interface DatabaseServerObject extends KubeObject {
  spec?: unknown;
  status?: DatabaseServerStatus;
}

export interface ServerHandle {
  name: string;
  spec: DatabaseServerSpec;
  admin: PostgresAdmin;
  /** What tenants' clients use: the same host, port and CA as the admin connection. */
  caCertificate: string | undefined;
}

/** The server's spec, or undefined when it does not parse (such a server is no candidate for anything). */
export function serverSpecOf(server: DatabaseServerObject): DatabaseServerSpec | undefined {
  const parsed = databaseServerSpecSchema.safeParse(server.spec ?? {});
  return parsed.success ? parsed.data : undefined;
}

export function parseServerSpec(server: DatabaseServerObject): DatabaseServerSpec {
  const spec = serverSpecOf(server);
  if (!spec) {
    throw new OperatorError(
      ERROR_CODES.INVALID_SPEC,
      `DatabaseServer ${server.metadata.name}: invalid spec`,
    );
  }
  return spec;
}

export class DatabaseServerConnections {
  private readonly kube: KubeClient;
  private readonly kv: KvV2;
  private readonly handles = new Map<string, { fingerprint: string; handle: ServerHandle }>();

  constructor(kube: KubeClient, kv: KvV2) {
    this.kube = kube;
    this.kv = kv;
  }

  async get(server: DatabaseServerObject): Promise<ServerHandle> {
    const name = server.metadata.name;
    const spec = parseServerSpec(server);
    const credentials = await this.kv.readSecret(spec.adminCredentialsVaultPath);
    const username = credentials?.data.username;
    const password = credentials?.data.password;
    if (!username || !password) {
      throw new OperatorError(
        ERROR_CODES.INVALID_SPEC,
        `DatabaseServer ${name}: no username/password at Vault KV path ${spec.adminCredentialsVaultPath}`,
      );
    }
    const caCertificate = await this.readCa(name, spec);
    const fingerprint = createHash('sha256')
      .update(
        JSON.stringify([
          server.metadata.generation,
          credentials.version,
          username,
          caCertificate ?? '',
        ]),
      )
      .digest('hex');
    const cached = this.handles.get(name);
    if (cached?.fingerprint === fingerprint) return cached.handle;
    if (cached) await cached.handle.admin.close();
    const connection: ServerConnection = {
      host: spec.host,
      port: spec.port,
      user: username,
      password,
      ...(caCertificate ? { caCertificate } : {}),
    };
    const handle: ServerHandle = {
      name,
      spec,
      admin: new PostgresAdmin(connection),
      caCertificate,
    };
    this.handles.set(name, { fingerprint, handle });
    return handle;
  }

  private async readCa(name: string, spec: DatabaseServerSpec): Promise<string | undefined> {
    const ref = spec.tls?.caSecretRef;
    if (!ref) return undefined;
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
    for (const { handle } of this.handles.values()) await handle.admin.close();
    this.handles.clear();
  }
}
