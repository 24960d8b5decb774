import { ERROR_CODES, OperatorError } from '../errors.ts';
import { vaultPath, type VaultClient } from './client.ts';
import type { CachedRead } from './read-cache.ts';

// ACL policies, and the one policy a tenant's workloads get: read their own
// secrets, nothing else. A policy has no metadata, so the tenant's carries a
// comment line with its Tenant's uid: a same-named policy without it (made by
// hand, or left by an earlier Tenant of the same name) is not the tenant's.

/** A DNS label: what a Tenant name is. Anything else never reaches a policy. */
const DNS_LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** Policy names: Vault lower-cases them; keep to what needs no escaping anywhere. */
const POLICY_NAME = /^[a-z0-9]([a-z0-9_.-]{0,126}[a-z0-9])?$/;
/** A mount path that can sit inside an HCL string and a path glob unchanged. */
const MOUNT = /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/;
/** A Kubernetes uid; no newline can end the comment and start a rule. */
const UID = /^[A-Za-z0-9-]{1,64}$/;
const OWNER_LINE = /^# tenancy\.io\/tenant-uid: ([A-Za-z0-9-]{1,64})$/m;

export function assertTenantName(tenant: string): void {
  if (!DNS_LABEL.test(tenant)) {
    throw new OperatorError(
      ERROR_CODES.INVALID_SPEC,
      `tenant name ${JSON.stringify(tenant.slice(0, 80))} is not a DNS label (a-z, 0-9, '-', at most 63)`,
    );
  }
}

function assertPolicyName(name: string): void {
  if (!POLICY_NAME.test(name) || name === 'root' || name === 'default') {
    throw new OperatorError(
      ERROR_CODES.INVALID_SPEC,
      `invalid Vault policy name ${JSON.stringify(name.slice(0, 80))}`,
    );
  }
}

/**
 * HCL for a tenant's workloads: read (only) of `<kvMount>/data/tenants/<tenant>/*`
 * and of the matching metadata. No list, no write, nothing outside the prefix
 * (the trailing "/" keeps tenant "a" out of tenant "ab").
 */
export function tenantReadPolicy(kvMount: string, tenant: string, uid: string): string {
  assertTenantName(tenant);
  if (!UID.test(uid)) {
    throw new OperatorError(ERROR_CODES.INTERNAL, 'a tenant policy needs the Tenant uid');
  }
  if (!MOUNT.test(kvMount)) {
    throw new OperatorError(
      ERROR_CODES.INVALID_SPEC,
      `invalid KV mount ${JSON.stringify(kvMount.slice(0, 80))}`,
    );
  }
  return `# tenant-operator: workloads of tenant ${tenant} read their own secrets, nothing else.
# tenancy.io/tenant-uid: ${uid}
path "${kvMount}/data/tenants/${tenant}/*" {
  capabilities = ["read"]
}

path "${kvMount}/metadata/tenants/${tenant}/*" {
  capabilities = ["read"]
}
`;
}

/** What a backup or restore policy names: exact paths, never globs. */
export interface TenantBackupPaths {
  /** Transit mount, e.g. "transit". */
  transitMount: string;
  /** The tenant's Transit key, e.g. "tenant-acme". */
  transitKey: string;
  /** The KV v2 data path of the tenant's database credentials, e.g. "secret/data/tenants/acme/database". */
  credentialsDataPath: string;
}

/** A Transit key name that can sit in a policy path unchanged (no glob, no '/'). */
const KEY_NAME = /^[A-Za-z0-9_-]+$/;

function ownedHeader(what: string, tenant: string, uid: string, paths: TenantBackupPaths): string {
  assertTenantName(tenant);
  if (!UID.test(uid)) {
    throw new OperatorError(ERROR_CODES.INTERNAL, `a tenant ${what} policy needs the Tenant uid`);
  }
  for (const [field, value, shape] of [
    ['Transit mount', paths.transitMount, MOUNT],
    ['Transit key', paths.transitKey, KEY_NAME],
    ['credentials path', paths.credentialsDataPath, MOUNT],
  ] as const) {
    if (!shape.test(value))
      throw new OperatorError(
        ERROR_CODES.INVALID_SPEC,
        `invalid ${field} ${JSON.stringify(value.slice(0, 80))} for a ${what} policy`,
      );
  }
  return `# tenancy.io/tenant-uid: ${uid}\n`;
}

/**
 * HCL for tenant's backup job: a fresh data key (plaintext and wrapped) from
 * the tenant's own Transit key, and a read of the tenant's database
 * credentials. Nothing else: no decrypt (the job cannot read any backup, its
 * own included), no rewrap, no other key, no key configuration. The
 * `default` policy the login adds brings the token's own lookup, renew and
 * revoke.
 */
export function tenantBackupPolicy(tenant: string, uid: string, paths: TenantBackupPaths): string {
  const owner = ownedHeader('backup', tenant, uid, paths);
  return `# tenant-operator: the backup job of tenant ${tenant} makes data keys and reads its database credentials, nothing else.
${owner}path "${paths.transitMount}/datakey/plaintext/${paths.transitKey}" {
  capabilities = ["update"]
}

path "${paths.credentialsDataPath}" {
  capabilities = ["read"]
}
`;
}

/**
 * HCL for restoring and verifying tenant's backups: unwrap data keys of the
 * tenant's Transit key, read the tenant's database credentials. Tokens with
 * it carry no `default` policy, so the token's own revocation is granted here.
 */
export function tenantRestorePolicy(tenant: string, uid: string, paths: TenantBackupPaths): string {
  const owner = ownedHeader('restore', tenant, uid, paths);
  return `# tenant-operator: restore and verification of tenant ${tenant}'s backups unwrap its data keys and read its database credentials, nothing else.
${owner}path "${paths.transitMount}/decrypt/${paths.transitKey}" {
  capabilities = ["update"]
}

path "${paths.credentialsDataPath}" {
  capabilities = ["read"]
}

path "auth/token/revoke-self" {
  capabilities = ["update"]
}
`;
}

/** The Tenant uid a policy written by tenantReadPolicy (or a backup/restore policy) names; undefined for any other policy. */
export function policyOwnerUid(hcl: string): string | undefined {
  return OWNER_LINE.exec(hcl)?.[1];
}

function cacheKey(name: string): string {
  return `policy:${name}`;
}

export class VaultPolicies {
  private readonly client: VaultClient;

  constructor(client: VaultClient) {
    this.client = client;
  }

  /** Creates or replaces an ACL policy. */
  async putPolicy(name: string, hcl: string): Promise<void> {
    assertPolicyName(name);
    await this.client.readCache.writing([cacheKey(name)], () =>
      this.client.request('PUT', vaultPath('sys/policies/acl', name), { policy: hcl }),
    );
  }

  /**
   * The policy's HCL, undefined when it does not exist (for "unchanged, skip
   * the write"); `cached`: possibly from the read cache (read-cache.ts).
   */
  async readPolicy(name: string, cached?: CachedRead<string>): Promise<string | undefined> {
    assertPolicyName(name);
    return this.client.readCache.read(cacheKey(name), cached, async () => {
      const response = await this.client.read<{ policy: string }>(
        vaultPath('sys/policies/acl', name),
      );
      return response?.data?.policy;
    });
  }

  /** The names of every ACL policy: one request, for checks across all tenants. */
  async listPolicies(): Promise<string[]> {
    return this.client.list('sys/policies/acl');
  }

  /** Deletes an ACL policy; a missing one counts as deleted. */
  async deletePolicy(name: string): Promise<void> {
    assertPolicyName(name);
    await this.client.readCache.writing([cacheKey(name)], () =>
      this.client.delete(vaultPath('sys/policies/acl', name)),
    );
  }
}
