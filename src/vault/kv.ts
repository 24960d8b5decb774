import { ERROR_CODES, OperatorError } from '../errors.ts';
import { vaultPath, type VaultClient } from './client.ts';
import type { CachedRead } from './read-cache.ts';

// Secrets in a KV version 2 engine. Paths are relative to the mount
// ("tenants/acme/database"); the engine's data/ and metadata/ prefixes are
// added here. Values are strings: credentials, hosts, ports as text.
// custom_metadata (string pairs kept beside the versions, not in any of them)
// is where a secret says who it belongs to.

export type SecretData = Record<string, string>;

export interface SecretVersion<T extends SecretData = SecretData> {
  data: T;
  version: number;
  createdTime: string;
}

export interface SecretMetadata {
  currentVersion: number;
  oldestVersion: number;
  /** Free-form string pairs on the secret; {} when it has none. */
  customMetadata: Record<string, string>;
  /** version -> when it was created, deleted (soft), destroyed */
  versions: Record<string, { createdTime: string; deletionTime: string; destroyed: boolean }>;
}

interface DataResponse {
  data: Record<string, unknown> | null;
  metadata: { version: number; created_time: string; deletion_time: string; destroyed: boolean };
}

interface MetadataResponse {
  current_version: number;
  oldest_version: number;
  custom_metadata: Record<string, unknown> | null;
  versions: Record<string, { created_time: string; deletion_time: string; destroyed: boolean }>;
}

export class KvV2 {
  readonly mount: string;
  private readonly client: VaultClient;

  constructor(client: VaultClient, mount = 'secret') {
    this.client = client;
    this.mount = vaultPath(mount);
  }

  /** The path an application reads with the Vault API or a policy names (e.g. secret/data/tenants/acme/database). */
  dataPath(path: string): string {
    return vaultPath(this.mount, 'data', path);
  }

  metadataPath(path: string): string {
    return vaultPath(this.mount, 'metadata', path);
  }

  /** The read-cache keys of a secret: its latest version, its metadata. */
  private cacheKeys(path: string): [data: string, metadata: string] {
    return [`kv-data:${this.dataPath(path)}`, `kv-metadata:${this.metadataPath(path)}`];
  }

  /** A write to the secret at `path`, which no cached answer about it survives. */
  private writing<R>(path: string, write: () => Promise<R>): Promise<R> {
    return this.client.readCache.writing(this.cacheKeys(path), write);
  }

  /**
   * Writes a new version and answers its number. `cas: 0` writes only if the
   * secret does not exist yet; `cas: n` only if the current version is n.
   * A failed check-and-set throws OperatorError API_CONFLICT.
   */
  async writeSecret(
    path: string,
    data: SecretData,
    options: { cas?: number } = {},
  ): Promise<number> {
    for (const [key, value] of Object.entries(data)) {
      if (typeof value !== 'string')
        throw new OperatorError(
          ERROR_CODES.INTERNAL,
          `secret field ${JSON.stringify(key)} is not a string`,
        );
    }
    const response = await this.writing(path, () =>
      this.client.write<{ version: number }>(this.dataPath(path), {
        ...(options.cas === undefined ? {} : { options: { cas: options.cas } }),
        data,
      }),
    );
    const version = response?.data?.version;
    if (typeof version !== 'number')
      throw new OperatorError(
        ERROR_CODES.API_ERROR,
        `Vault KV write ${this.dataPath(path)}: no version in the answer`,
      );
    return version;
  }

  /**
   * The latest (or the given) version; undefined when the secret, or that
   * version, does not exist or is deleted or destroyed. `cached`: the latest
   * version may be answered from the read cache (read-cache.ts).
   */
  async readSecret<T extends SecretData = SecretData>(
    path: string,
    options: { version?: number; cached?: CachedRead<SecretVersion<T>> | undefined } = {},
  ): Promise<SecretVersion<T> | undefined> {
    if (options.version !== undefined) return this.readVersion<T>(path, options.version);
    return this.client.readCache.read(this.cacheKeys(path)[0], options.cached, () =>
      this.readVersion<T>(path, undefined),
    );
  }

  private async readVersion<T extends SecretData>(
    path: string,
    version: number | undefined,
  ): Promise<SecretVersion<T> | undefined> {
    const query = version === undefined ? '' : `?version=${Math.trunc(version)}`;
    const response = await this.client.read<DataResponse>(this.dataPath(path) + query);
    const body = response?.data;
    if (!body?.data || body.metadata.destroyed || body.metadata.deletion_time) return undefined;
    return {
      data: body.data as T,
      version: body.metadata.version,
      createdTime: body.metadata.created_time,
    };
  }

  /** Version history without the values; undefined when the secret does not exist. */
  async readMetadata(
    path: string,
    cached?: CachedRead<SecretMetadata>,
  ): Promise<SecretMetadata | undefined> {
    return this.client.readCache.read(this.cacheKeys(path)[1], cached, () =>
      this.readMetadataNow(path),
    );
  }

  private async readMetadataNow(path: string): Promise<SecretMetadata | undefined> {
    const response = await this.client.read<MetadataResponse>(this.metadataPath(path));
    const body = response?.data;
    if (!body) return undefined;
    const versions: SecretMetadata['versions'] = {};
    for (const [version, v] of Object.entries(body.versions)) {
      versions[version] = {
        createdTime: v.created_time,
        deletionTime: v.deletion_time,
        destroyed: v.destroyed,
      };
    }
    const customMetadata: Record<string, string> = {};
    for (const [key, value] of Object.entries(body.custom_metadata ?? {})) {
      if (typeof value === 'string') customMetadata[key] = value;
    }
    return {
      currentVersion: body.current_version,
      oldestVersion: body.oldest_version,
      customMetadata,
      versions,
    };
  }

  /**
   * Sets the secret's custom_metadata (replacing what was there), creating
   * the metadata if the secret does not exist yet: written before the first
   * version, it claims the path, and a crash in between leaves the claim.
   */
  async writeCustomMetadata(path: string, customMetadata: Record<string, string>): Promise<void> {
    await this.writing(path, () =>
      this.client.write(this.metadataPath(path), { custom_metadata: customMetadata }),
    );
  }

  /** Removes every version and the metadata: nothing is left to undelete. Missing is fine. */
  async deleteSecretAllVersions(path: string): Promise<void> {
    await this.writing(path, () => this.client.delete(this.metadataPath(path)));
  }

  /**
   * The keys directly under a prefix ("tenants/acme"); sub-folders end in "/".
   * [] when there are none.
   */
  async listSecrets(prefix: string): Promise<string[]> {
    const trimmed = prefix.replace(/^\/+|\/+$/g, '');
    const path = trimmed ? this.metadataPath(trimmed) : vaultPath(this.mount, 'metadata');
    return this.client.list(path);
  }
}
