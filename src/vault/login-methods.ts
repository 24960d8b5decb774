import { readFile } from 'node:fs/promises';
import { ERROR_CODES, OperatorError } from '../errors.ts';
import { vaultPath, type VaultAuth, type VaultClient } from './client.ts';
import { KubernetesAuth, type VaultLogin } from './kubernetes-auth.ts';
import type { VaultLoginMethod } from './token-source.ts';

// The ways the operator proves who it is to Vault. The credential files are
// read again at every login: the kubelet rotates a projected service account
// token (and an agent may rotate an AppRole secret ID) under a running process.

/**
 * The first of `paths` that can be read, trimmed. Names the paths, never the
 * content.
 */
export async function readCredentialFile(what: string, paths: readonly string[]): Promise<string> {
  const problems: string[] = [];
  for (const path of paths) {
    try {
      const content = (await readFile(path, 'utf8')).trim();
      if (content) return content;
      problems.push(`${path}: empty`);
    } catch (err: unknown) {
      problems.push(`${path}: ${(err as NodeJS.ErrnoException).code ?? 'unreadable'}`);
    }
  }
  throw new OperatorError(ERROR_CODES.INVALID_SPEC, `no ${what}: ${problems.join(', ')}`);
}

/** Kubernetes auth with the service account token in the first readable file of `tokenFiles`. */
export function kubernetesLogin(options: {
  mount: string;
  role: string;
  tokenFiles: readonly string[];
}): VaultLoginMethod {
  return {
    describe: { method: 'kubernetes', mount: options.mount, role: options.role },
    async login(unauthenticated: VaultClient): Promise<VaultLogin> {
      const jwt = await readCredentialFile('service account token', options.tokenFiles);
      return new KubernetesAuth(unauthenticated, options.mount).loginWithKubernetes(
        options.role,
        jwt,
      );
    },
  };
}

/** AppRole with a role ID and the secret ID in `secretIdFile`. */
export function appRoleLogin(options: {
  mount: string;
  roleId: string;
  secretIdFile: string;
}): VaultLoginMethod {
  return {
    describe: { method: 'approle', mount: options.mount },
    async login(unauthenticated: VaultClient): Promise<VaultLogin> {
      const secretId = await readCredentialFile('AppRole secret ID', [options.secretIdFile]);
      const response = await unauthenticated.request<{ auth?: VaultAuth | null }>(
        'POST',
        vaultPath('auth', options.mount, 'login'),
        { role_id: options.roleId, secret_id: secretId },
        { unauthenticated: true },
      );
      const auth = response?.auth;
      if (!auth?.client_token)
        throw new OperatorError(
          ERROR_CODES.API_ERROR,
          'Vault AppRole login: no token in the answer',
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
    },
  };
}
