import { ERROR_CODES, OperatorError } from '../errors.ts';
import { credentialsPath } from '../tenant/database-vault.ts';
import type { VaultClient } from '../vault/client.ts';
import { KvV2 } from '../vault/kv.ts';
import type { PgTarget } from './pg-tools.ts';

/**
 * The tenant's own login, from its credentials in Vault (host, port and TLS
 * included), read with whatever token `vault` carries: the backup job's, or
 * a restore token. Dumps and restores run as the tenant, never as a superuser.
 */
export async function tenantLogin(
  vault: VaultClient,
  kvMount: string,
  tenant: string,
): Promise<PgTarget> {
  const secret = await new KvV2(vault, kvMount).readSecret(credentialsPath(tenant));
  const data = secret?.data;
  if (!data?.username || !data.password || !data.host || !data.dbname)
    throw new OperatorError(
      ERROR_CODES.API_NOT_FOUND,
      `tenant ${tenant} has no database credentials in Vault (is spec.database.enabled, and is it Ready?)`,
    );
  return {
    host: data.host,
    port: Number(data.port ?? '5432'),
    user: data.username,
    password: data.password,
    database: data.dbname,
    ...(data.ca ? { caCertificate: data.ca } : { plaintext: true }),
  };
}
