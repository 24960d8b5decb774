import { ERROR_CODES, OperatorError } from '../errors.ts';
import { VaultClient } from './client.ts';
import { appRoleLogin, kubernetesLogin } from './login-methods.ts';
import { RenewingTokenSource, type TokenSourceLogger } from './token-source.ts';

// The operator's own Vault identity, from the environment. In a cluster it is
// the operator's ServiceAccount (Kubernetes auth), or an AppRole; a static
// VAULT_TOKEN is for development only, because nothing renews or replaces it
// and it is usually far more powerful than the operator needs.

/** Projected with audience "vault" by the chart; re-read at every login. */
export const PROJECTED_TOKEN_FILE = '/var/run/secrets/tokens/vault-token';
/** The pod's default token: audience is the API server, so the role must not require "vault". */
export const DEFAULT_SA_TOKEN_FILE = '/var/run/secrets/kubernetes.io/serviceaccount/token';
export const DEFAULT_AUTH_ROLE = 'tenant-operator';

export type VaultIdentityConfig =
  | { method: 'token'; token: string }
  | { method: 'kubernetes'; mount: string; role: string; tokenFiles: string[] }
  | { method: 'approle'; mount: string; roleId: string; secretIdFile: string };

/** The environment variables read here, for the usage text. */
export const VAULT_IDENTITY_USAGE = `Vault identity of the operator (environment):
  VAULT_AUTH_METHOD     kubernetes | approle | token (kubernetes, or token when VAULT_TOKEN is set)
  VAULT_AUTH_MOUNT      auth method mount (kubernetes, or approle)
  VAULT_AUTH_ROLE       Kubernetes auth role (tenant-operator)
  VAULT_K8S_TOKEN_FILE  service account token, re-read at every login (${PROJECTED_TOKEN_FILE},
                        else ${DEFAULT_SA_TOKEN_FILE})
  VAULT_ROLE_ID, VAULT_SECRET_ID_FILE   AppRole role ID and a file holding the secret ID
  VAULT_TOKEN           a static token: development only (never renewed; a warning is logged)
  The token is renewed at 2/3 of its TTL and obtained again before its max TTL.`;

function nonEmpty(value: string | undefined): string | undefined {
  return value === undefined || value.trim() === '' ? undefined : value.trim();
}

function required(env: NodeJS.ProcessEnv, name: string, why: string): string {
  const value = nonEmpty(env[name]);
  if (value === undefined)
    throw new OperatorError(ERROR_CODES.INVALID_SPEC, `${name} must be set ${why}`);
  return value;
}

/**
 * How the operator logs in to Vault. An empty variable counts as unset, so
 * that `VAULT_TOKEN=` turns the static token off.
 */
export function vaultIdentityFromEnv(env: NodeJS.ProcessEnv): VaultIdentityConfig {
  const token = nonEmpty(env.VAULT_TOKEN);
  const method = nonEmpty(env.VAULT_AUTH_METHOD) ?? (token ? 'token' : 'kubernetes');
  switch (method) {
    case 'token':
      return { method, token: required(env, 'VAULT_TOKEN', 'for VAULT_AUTH_METHOD=token') };
    case 'kubernetes': {
      const tokenFile = nonEmpty(env.VAULT_K8S_TOKEN_FILE);
      return {
        method,
        mount: nonEmpty(env.VAULT_AUTH_MOUNT) ?? 'kubernetes',
        role: nonEmpty(env.VAULT_AUTH_ROLE) ?? DEFAULT_AUTH_ROLE,
        tokenFiles: tokenFile ? [tokenFile] : [PROJECTED_TOKEN_FILE, DEFAULT_SA_TOKEN_FILE],
      };
    }
    case 'approle':
      return {
        method,
        mount: nonEmpty(env.VAULT_AUTH_MOUNT) ?? 'approle',
        roleId: required(env, 'VAULT_ROLE_ID', 'for VAULT_AUTH_METHOD=approle'),
        secretIdFile: required(env, 'VAULT_SECRET_ID_FILE', 'for VAULT_AUTH_METHOD=approle'),
      };
    default:
      throw new OperatorError(
        ERROR_CODES.INVALID_SPEC,
        `VAULT_AUTH_METHOD ${JSON.stringify(method.slice(0, 40))} is not one of kubernetes, approle, token`,
      );
  }
}

export interface OperatorVault {
  client: VaultClient;
  /** Stops renewing and revokes the token (a static token is left alone). */
  close(): Promise<void>;
}

/**
 * A client acting as the operator. With a login method, the first login
 * starts in the background and is retried with backoff: a Vault that is down
 * at start delays the tenants' databases, not the rest of the operator.
 */
export function operatorVault(
  config: VaultIdentityConfig,
  options: {
    address: string;
    namespace?: string;
    log: TokenSourceLogger;
    beforeWrite?: () => void;
  },
): OperatorVault {
  const common = {
    address: options.address,
    ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
    ...(options.beforeWrite === undefined ? {} : { beforeWrite: options.beforeWrite }),
  };
  if (config.method === 'token') {
    options.log.warn(
      { vaultAuth: { method: 'token' } },
      'Vault: using the static VAULT_TOKEN; for development only (never renewed), use Kubernetes auth in a cluster',
    );
    return { client: new VaultClient({ ...common, token: config.token }), close: async () => {} };
  }
  const method =
    config.method === 'kubernetes'
      ? kubernetesLogin({ mount: config.mount, role: config.role, tokenFiles: config.tokenFiles })
      : appRoleLogin({
          mount: config.mount,
          roleId: config.roleId,
          secretIdFile: config.secretIdFile,
        });
  const source = new RenewingTokenSource({
    client: new VaultClient({
      address: common.address,
      ...(options.namespace === undefined ? {} : { namespace: options.namespace }),
    }),
    method,
    log: options.log,
  });
  source.start();
  return {
    client: new VaultClient({ ...common, tokenProvider: source }),
    close: () => source.close({ revoke: true }),
  };
}
