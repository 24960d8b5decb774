import { ERROR_CODES, OperatorError } from '../errors.ts';
import { vaultPath, type VaultAuth, type VaultClient } from './client.ts';
import type { CachedRead } from './read-cache.ts';

// Roles of Vault's Kubernetes auth method, and logging in with a service
// account token. Vault checks the token with a TokenReview at the API server
// (configured once, by hack/vault-config.sh or the platform), then hands out a
// Vault token carrying the role's policies.

const ROLE_NAME = /^[A-Za-z0-9]([A-Za-z0-9_.-]{0,126}[A-Za-z0-9])?$/;

export interface KubernetesRole {
  /** Service account names; ["*"] for any. */
  boundServiceAccountNames: string[];
  /** Namespaces; ["*"] for any (never for a tenant). */
  boundServiceAccountNamespaces: string[];
  policies: string[];
  /** Token TTL: seconds or a Vault duration ("1h"). */
  ttl: number | string;
  /** Max TTL after renewals; Vault's default (the mount's, 32 days in dev) when absent. */
  maxTtl?: number | string;
  /**
   * A periodic token renews forever, past any max TTL: 0 (none) unless set.
   * Always written, so a period someone put on the role is taken back.
   */
  period?: number | string;
  /** A hard cap no renewal passes; 0 (none) unless set. Always written, like period. */
  explicitMaxTtl?: number | string;
  /** Audience the service account token must carry (TokenRequest audiences). */
  audience?: string;
}

export interface VaultLogin {
  /** Not enumerable: JSON.stringify, pino and util.inspect leave it out. */
  readonly clientToken: string;
  readonly accessor: string;
  readonly policies: string[];
  readonly leaseDurationSeconds: number;
  readonly renewable: boolean;
  readonly metadata: Record<string, string>;
}

interface RoleResponse {
  bound_service_account_names: string[];
  bound_service_account_namespaces: string[];
  token_policies: string[] | null;
  token_ttl: number;
  token_max_ttl: number;
  token_period?: number;
  token_explicit_max_ttl?: number;
  audience?: string;
}

function assertRoleName(name: string): void {
  if (!ROLE_NAME.test(name)) {
    throw new OperatorError(
      ERROR_CODES.INVALID_SPEC,
      `invalid Vault role name ${JSON.stringify(name.slice(0, 80))}`,
    );
  }
}

export class KubernetesAuth {
  readonly mount: string;
  private readonly client: VaultClient;

  /** `mount` is the auth method's path under auth/ ("kubernetes"). */
  constructor(client: VaultClient, mount = 'kubernetes') {
    this.client = client;
    this.mount = vaultPath(mount);
  }

  private rolePath(name: string): string {
    assertRoleName(name);
    return vaultPath('auth', this.mount, 'role', name);
  }

  private writing<R>(name: string, write: () => Promise<R>): Promise<R> {
    return this.client.readCache.writing([this.rolePath(name)], write);
  }

  /** Creates or replaces a role. */
  async putKubernetesRole(name: string, role: KubernetesRole): Promise<void> {
    if (
      role.boundServiceAccountNames.length === 0 ||
      role.boundServiceAccountNamespaces.length === 0
    )
      throw new OperatorError(
        ERROR_CODES.INVALID_SPEC,
        `Vault role ${name}: bound service account names and namespaces must not be empty`,
      );
    await this.writing(name, () =>
      this.client.write(this.rolePath(name), {
        bound_service_account_names: role.boundServiceAccountNames,
        bound_service_account_namespaces: role.boundServiceAccountNamespaces,
        token_policies: role.policies,
        token_ttl: role.ttl,
        ...(role.maxTtl === undefined ? {} : { token_max_ttl: role.maxTtl }),
        // An update keeps fields it is not given: these two would let tokens outlive token_max_ttl.
        token_period: role.period ?? 0,
        token_explicit_max_ttl: role.explicitMaxTtl ?? 0,
        // Always sent, so that replacing a role with one without audience clears it.
        audience: role.audience ?? '',
      }),
    );
  }

  /**
   * The role as Vault holds it (TTLs in seconds); undefined when it does not
   * exist. `cached`: possibly from the read cache (read-cache.ts).
   */
  async readKubernetesRole(
    name: string,
    cached?: CachedRead<KubernetesRole>,
  ): Promise<KubernetesRole | undefined> {
    return this.client.readCache.read(this.rolePath(name), cached, () =>
      this.readKubernetesRoleNow(name),
    );
  }

  /** The names of every role of this auth method: one request, for checks across all tenants. */
  async listKubernetesRoles(): Promise<string[]> {
    return this.client.list(vaultPath('auth', this.mount, 'role'));
  }

  private async readKubernetesRoleNow(name: string): Promise<KubernetesRole | undefined> {
    const response = await this.client.read<RoleResponse>(this.rolePath(name));
    const role = response?.data;
    if (!role) return undefined;
    return {
      boundServiceAccountNames: role.bound_service_account_names,
      boundServiceAccountNamespaces: role.bound_service_account_namespaces,
      policies: role.token_policies ?? [],
      ttl: role.token_ttl,
      maxTtl: role.token_max_ttl,
      period: role.token_period ?? 0,
      explicitMaxTtl: role.token_explicit_max_ttl ?? 0,
      ...(role.audience ? { audience: role.audience } : {}),
    };
  }

  /** Deletes a role; a missing one counts as deleted. Tokens already issued live until their TTL. */
  async deleteKubernetesRole(name: string): Promise<void> {
    await this.writing(name, () => this.client.delete(this.rolePath(name)));
  }

  /**
   * Logs in with a service account JWT. A token the role does not accept
   * throws OperatorError API_FORBIDDEN. The JWT is sent without any Vault
   * token and never appears in an error.
   */
  async loginWithKubernetes(role: string, jwt: string): Promise<VaultLogin> {
    assertRoleName(role);
    const response = await this.client.request<{ auth?: VaultAuth | null }>(
      'POST',
      vaultPath('auth', this.mount, 'login'),
      { role, jwt },
      { unauthenticated: true },
    );
    const auth = response?.auth;
    if (!auth?.client_token)
      throw new OperatorError(
        ERROR_CODES.API_ERROR,
        `Vault login with role ${role}: no token in the answer`,
      );
    const login = {
      accessor: auth.accessor,
      policies: auth.policies ?? [],
      leaseDurationSeconds: auth.lease_duration,
      renewable: auth.renewable,
      metadata: auth.metadata ?? {},
    };
    Object.defineProperty(login, 'clientToken', { value: auth.client_token, enumerable: false });
    return login as VaultLogin;
  }

  /** A client that acts with the token of a login. */
  clientFor(login: VaultLogin): VaultClient {
    return this.client.withToken(login.clientToken);
  }
}
