import { ERROR_CODES, OperatorError } from '../errors.ts';
import { vaultPath, type VaultClient } from './client.ts';

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

/** The Tenant uid a policy written by tenantReadPolicy names; undefined for any other policy. */
export function policyOwnerUid(hcl: string): string | undefined {
  return OWNER_LINE.exec(hcl)?.[1];
}

export class VaultPolicies {
  private readonly client: VaultClient;

  constructor(client: VaultClient) {
    this.client = client;
  }

  /** Creates or replaces an ACL policy. */
  async putPolicy(name: string, hcl: string): Promise<void> {
    assertPolicyName(name);
    await this.client.request('PUT', vaultPath('sys/policies/acl', name), { policy: hcl });
  }

  /** The policy's HCL, undefined when it does not exist (for "unchanged, skip the write"). */
  async readPolicy(name: string): Promise<string | undefined> {
    assertPolicyName(name);
    const response = await this.client.read<{ policy: string }>(
      vaultPath('sys/policies/acl', name),
    );
    return response?.data?.policy;
  }

  /** Deletes an ACL policy; a missing one counts as deleted. */
  async deletePolicy(name: string): Promise<void> {
    assertPolicyName(name);
    await this.client.delete(vaultPath('sys/policies/acl', name));
  }
}
