import { ERROR_CODES, OperatorError } from '../errors.ts';
import type { CachedRead } from './read-cache.ts';
import { vaultPath, type VaultClient } from './client.ts';

// Transit keys for envelope encryption: Vault hands out a fresh data key per
// backup (plaintext, to encrypt locally, and the same key wrapped by the
// tenant's Transit key, to store beside the backup), and unwraps it for a
// restore. Deleting the Transit key makes every wrapped data key, and so every
// copy of every backup, unreadable (crypto-shredding).

export interface TransitKeyInfo {
  name: string;
  type: string;
  latestVersion: number;
  minDecryptionVersion: number;
  deletionAllowed: boolean;
  /** Once true, forever: the key material may leave Vault. */
  exportable: boolean;
  allowPlaintextBackup: boolean;
  /** When each live key version was created (versions below min_decryption_version included until trimmed). */
  versionCreated: ReadonlyMap<number, Date>;
}

/** What POST keys/<name>/config may change here; absent fields are left as they are. */
export interface TransitKeyConfig {
  minDecryptionVersion?: number;
  deletionAllowed?: boolean;
}

export interface DataKey {
  /** 32 bytes for AES-256. Keep in memory only; zero it when done. */
  plaintext: Buffer;
  /** "vault:v<key version>:…", safe to store. */
  ciphertext: string;
  keyVersion: number;
}

interface KeyResponse {
  name: string;
  type: string;
  latest_version: number;
  min_decryption_version: number;
  deletion_allowed: boolean;
  exportable?: boolean;
  allow_plaintext_backup?: boolean;
  /** Symmetric keys: version -> creation time in unix seconds (asymmetric ones: an object). */
  keys?: Record<string, unknown>;
}

const KEY_TYPE = 'aes256-gcm96';

function versionTimes(keys: Record<string, unknown> | undefined): Map<number, Date> {
  const times = new Map<number, Date>();
  for (const [version, value] of Object.entries(keys ?? {})) {
    // aes keys answer unix seconds; asymmetric ones an object with creation_time.
    const seconds =
      typeof value === 'number'
        ? value
        : typeof value === 'object' && value !== null && 'creation_time' in value
          ? Date.parse(String(value.creation_time)) / 1000
          : Number.NaN;
    if (/^[1-9][0-9]*$/.test(version) && Number.isFinite(seconds))
      times.set(Number(version), new Date(seconds * 1000));
  }
  return times;
}

function toInfo(key: KeyResponse): TransitKeyInfo {
  return {
    name: key.name,
    type: key.type,
    latestVersion: key.latest_version,
    minDecryptionVersion: key.min_decryption_version,
    deletionAllowed: key.deletion_allowed,
    exportable: key.exportable === true,
    allowPlaintextBackup: key.allow_plaintext_backup === true,
    versionCreated: versionTimes(key.keys),
  };
}

/** The key version a Vault ciphertext ("vault:v<N>:…") was made with. */
export function ciphertextKeyVersion(ciphertext: string): number | undefined {
  const match = /^vault:v([1-9][0-9]*):/.exec(ciphertext);
  return match ? Number(match[1]) : undefined;
}

export class Transit {
  readonly mount: string;
  private readonly client: VaultClient;

  constructor(client: VaultClient, mount = 'transit') {
    this.client = client;
    this.mount = vaultPath(mount);
  }

  private keyPath(name: string, ...rest: string[]): string {
    return vaultPath(this.mount, 'keys', name, ...rest);
  }

  /** A change to the key (create, configure, rotate, delete): no cached answer about it survives. */
  private writing<R>(name: string, write: () => Promise<R>): Promise<R> {
    return this.client.readCache.writing([this.keyPath(name)], write);
  }

  /**
   * Creates an aes256-gcm96 key unless one exists; refuses a key of another
   * type (Vault's create is a silent no-op for an existing key of any type).
   */
  async ensureKey(name: string): Promise<TransitKeyInfo> {
    // `exportable` is not sent: false is Vault's default, and the operator's
    // policy refuses the parameter whatever its value, so that no request of
    // the operator can ever make a key exportable.
    const response = await this.writing(name, () =>
      this.client.write<KeyResponse>(this.keyPath(name), { type: KEY_TYPE }),
    );
    // Vault 1.21 answers with the key; older servers with 204.
    const info = response?.data?.type ? toInfo(response.data) : await this.keyInfo(name);
    if (!info)
      throw new OperatorError(
        ERROR_CODES.API_ERROR,
        `Transit key ${name}: missing right after creation`,
      );
    if (info.type !== KEY_TYPE)
      throw new OperatorError(
        ERROR_CODES.API_CONFLICT,
        `Transit key ${name} exists with type ${info.type}, expected ${KEY_TYPE}`,
      );
    return info;
  }

  /** Changes a key's configuration (POST keys/<name>/config); answers the key as it is after. */
  async configureKey(name: string, config: TransitKeyConfig): Promise<TransitKeyInfo> {
    const body = {
      ...(config.minDecryptionVersion === undefined
        ? {}
        : { min_decryption_version: config.minDecryptionVersion }),
      ...(config.deletionAllowed === undefined ? {} : { deletion_allowed: config.deletionAllowed }),
    };
    if (Object.keys(body).length === 0)
      throw new OperatorError(ERROR_CODES.INTERNAL, `Transit key ${name}: empty configuration`);
    const response = await this.writing(name, () =>
      this.client.write<KeyResponse>(this.keyPath(name, 'config'), body),
    );
    const info = response?.data?.type ? toInfo(response.data) : await this.keyInfo(name);
    if (!info) throw new OperatorError(ERROR_CODES.API_NOT_FOUND, `Transit key ${name} is gone`);
    return info;
  }

  /** Adds a new key version (used for new encryptions); old versions still decrypt. */
  async rotateKey(name: string): Promise<TransitKeyInfo> {
    const response = await this.writing(name, () =>
      this.client.write<KeyResponse>(this.keyPath(name, 'rotate')),
    );
    // Vault 1.21 answers with the key; older servers with 204.
    const info = response?.data?.type ? toInfo(response.data) : await this.keyInfo(name);
    if (!info) throw new OperatorError(ERROR_CODES.API_NOT_FOUND, `Transit key ${name} is gone`);
    return info;
  }

  /** undefined when the key does not exist. `cached`: possibly from the read cache (read-cache.ts). */
  async keyInfo(
    name: string,
    cached?: CachedRead<TransitKeyInfo>,
  ): Promise<TransitKeyInfo | undefined> {
    return this.client.readCache.read(this.keyPath(name), cached, async () => {
      const response = await this.client.read<KeyResponse>(this.keyPath(name));
      return response?.data ? toInfo(response.data) : undefined;
    });
  }

  /** The names of every key of this mount: one request, for checks across all tenants. */
  async listKeys(): Promise<string[]> {
    return this.client.list(vaultPath(this.mount, 'keys'));
  }

  /** Destroys the key and all its versions; a missing key counts as deleted. */
  async deleteKey(name: string): Promise<void> {
    const info = await this.keyInfo(name);
    if (!info) return;
    await this.writing(name, async () => {
      if (!info.deletionAllowed)
        await this.client.write(this.keyPath(name, 'config'), { deletion_allowed: true });
      await this.client.delete(this.keyPath(name));
    });
  }

  /** A fresh 256-bit data key, in plaintext and wrapped by the latest version of `name`. */
  async generateDataKey(name: string): Promise<DataKey> {
    const response = await this.client.write<{
      plaintext?: string;
      ciphertext?: string;
      key_version?: number;
    }>(vaultPath(this.mount, 'datakey', 'plaintext', name), { bits: 256 });
    const data = response?.data;
    if (!data?.plaintext || !data.ciphertext)
      throw new OperatorError(ERROR_CODES.API_ERROR, `Transit datakey ${name}: incomplete answer`);
    const plaintext = Buffer.from(data.plaintext, 'base64');
    if (plaintext.length !== 32)
      throw new OperatorError(ERROR_CODES.API_ERROR, `Transit datakey ${name}: not 32 bytes`);
    return { plaintext, ciphertext: data.ciphertext, keyVersion: data.key_version ?? 0 };
  }

  /** Signs `input` with the latest version of an asymmetric key (ed25519 here). */
  async sign(name: string, input: Buffer): Promise<{ signature: string; keyVersion: number }> {
    const response = await this.client.write<{ signature?: string; key_version?: number }>(
      vaultPath(this.mount, 'sign', name),
      { input: input.toString('base64') },
    );
    const signature = response?.data?.signature;
    if (!signature || !/^vault:v\d+:[A-Za-z0-9+/=]+$/.test(signature))
      throw new OperatorError(ERROR_CODES.API_ERROR, `Transit sign ${name}: no signature`);
    return { signature, keyVersion: response.data?.key_version ?? 0 };
  }

  /** The public keys of an asymmetric key, by version (base64 of the raw key). */
  async publicKeys(name: string): Promise<Map<number, string>> {
    const response = await this.client.read<{ keys?: Record<string, { public_key?: string }> }>(
      this.keyPath(name),
    );
    const keys = new Map<number, string>();
    for (const [version, key] of Object.entries(response?.data?.keys ?? {}))
      if (key.public_key) keys.set(Number(version), key.public_key);
    if (keys.size === 0)
      throw new OperatorError(
        ERROR_CODES.API_NOT_FOUND,
        `Transit key ${name} has no public key (missing, or not an asymmetric key)`,
      );
    return keys;
  }

  /** Unwraps a data key made by generateDataKey (any key version not below min_decryption_version). */
  async decryptDataKey(name: string, ciphertext: string): Promise<Buffer> {
    if (!/^vault:v\d+:[A-Za-z0-9+/=]+$/.test(ciphertext))
      throw new OperatorError(
        ERROR_CODES.INVALID_SPEC,
        `Transit decrypt ${name}: not a Vault ciphertext`,
      );
    let response: { data?: { plaintext?: string } } | undefined;
    try {
      response = await this.client.write<{ plaintext?: string }>(
        vaultPath(this.mount, 'decrypt', name),
        { ciphertext },
      );
    } catch (err: unknown) {
      // Vault's own words ("disallowed by policy (too old)") do not say which
      // version or why; a restore of an expired backup deserves both.
      if (err instanceof OperatorError && err.httpStatus === 400 && /too old/i.test(err.message))
        throw new OperatorError(
          ERROR_CODES.API_INVALID,
          `Transit decrypt ${name}: the data key was wrapped by key version ${ciphertextKeyVersion(ciphertext) ?? '?'}, which is below the key's min_decryption_version: Vault no longer unwraps it (no retained backup was expected to need it)`,
          { cause: err, httpStatus: 400, origin: 'vault' },
        );
      throw err;
    }
    const plaintext = response?.data?.plaintext;
    if (plaintext === undefined)
      throw new OperatorError(
        ERROR_CODES.API_ERROR,
        `Transit decrypt ${name}: no plaintext in the answer`,
      );
    return Buffer.from(plaintext, 'base64');
  }

  /** Re-wraps a ciphertext under the latest key version, without revealing the data key. */
  async rewrapDataKey(
    name: string,
    ciphertext: string,
  ): Promise<{ ciphertext: string; keyVersion: number }> {
    const response = await this.client.write<{ ciphertext?: string; key_version?: number }>(
      vaultPath(this.mount, 'rewrap', name),
      { ciphertext },
    );
    const data = response?.data;
    if (!data?.ciphertext)
      throw new OperatorError(
        ERROR_CODES.API_ERROR,
        `Transit rewrap ${name}: no ciphertext in the answer`,
      );
    return { ciphertext: data.ciphertext, keyVersion: data.key_version ?? 0 };
  }
}
