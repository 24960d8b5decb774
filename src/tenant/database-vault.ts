import { MANAGED_BY_VALUE } from '../api/constants.ts';
import { cachedRead, type VaultReads } from '../vault/inventory.ts';
import type { KubernetesAuth, KubernetesRole } from '../vault/kubernetes-auth.ts';
import type { KvV2, SecretMetadata } from '../vault/kv.ts';
import { policyOwnerUid, tenantReadPolicy, type VaultPolicies } from '../vault/policy.ts';
import type { ValidTenant } from './model.ts';

// What a tenant owns in Vault, and how that is told apart from what it does
// not. The credentials secret carries the claim in its KV custom_metadata
// (tenant name and Tenant uid), written before its first version; the policy
// carries the uid in a comment. The Kubernetes auth role has no field for
// free text, so it counts as the tenant's when the secret or the policy does:
// the operator writes it last, after both. Anything of the tenant's name that
// exists without such a claim belongs to someone else (or to an earlier
// Tenant of the same name) and is neither read as credentials nor rewritten.

/** Tokens of a tenant's workloads live an hour and, renewed, at most four. */
export const TENANT_TOKEN_TTL_SECONDS = 3_600;
export const TENANT_TOKEN_MAX_TTL_SECONDS = 4 * 3_600;

export interface VaultObjects {
  kv: KvV2;
  policies: VaultPolicies;
  kubernetesAuth: KubernetesAuth;
  /** Audience tenant service-account tokens must carry to log in. */
  vaultAudience: string | undefined;
}

/** The tenant's Vault objects as they are now; one read of each per reconcile. */
export interface TenantVaultState {
  credentialsMetadata: SecretMetadata | undefined;
  policy: string | undefined;
  role: KubernetesRole | undefined;
}

/** The KV folder every tenant's secrets live under: tenants/<name>/… */
export const TENANTS_KV_FOLDER = 'tenants';

export function credentialsPath(tenant: string): string {
  return `${TENANTS_KV_FOLDER}/${tenant}/database`;
}

export function vaultObjectName(tenant: string): string {
  return `tenant-${tenant}`;
}

/** The custom_metadata of the tenant's credentials secret. */
export function credentialsClaim(tenant: ValidTenant): Record<string, string> {
  return { 'managed-by': MANAGED_BY_VALUE, tenant: tenant.name, uid: tenant.uid };
}

/**
 * `reads`: a settled tenant's resync may take the answers from the read
 * cache; a closure or purge reads Vault (no `reads`).
 */
export async function readTenantVault(
  vault: VaultObjects,
  tenant: ValidTenant,
  reads?: VaultReads,
): Promise<TenantVaultState> {
  const name = vaultObjectName(tenant.name);
  // Three independent reads, at once: the reconcile waits for one round trip,
  // not three (a new leader, trusting no cached answer, reads them for every
  // database tenant).
  const [credentialsMetadata, policy, role] = await Promise.all([
    vault.kv.readMetadata(credentialsPath(tenant.name), cachedRead(reads, 'kvFolder', tenant.name)),
    vault.policies.readPolicy(name, cachedRead(reads, 'policy', name)),
    vault.kubernetesAuth.readKubernetesRole(name, cachedRead(reads, 'kubernetesRole', name)),
  ]);
  return { credentialsMetadata, policy, role };
}

/** Whether the credentials secret exists and names this Tenant. */
export function credentialsClaimed(state: TenantVaultState, tenant: ValidTenant): boolean {
  const claim = state.credentialsMetadata?.customMetadata;
  return claim?.tenant === tenant.name && claim.uid === tenant.uid;
}

/** The tenant's Vault objects that exist but are not this Tenant's, by name. */
export function foreignVaultObjects(
  vault: VaultObjects,
  state: TenantVaultState,
  tenant: ValidTenant,
): string[] {
  const name = vaultObjectName(tenant.name);
  const secretOurs = credentialsClaimed(state, tenant);
  const policyOurs = state.policy !== undefined && policyOwnerUid(state.policy) === tenant.uid;
  const foreign: string[] = [];
  if (state.credentialsMetadata && !secretOurs) {
    foreign.push(`Vault secret ${vault.kv.dataPath(credentialsPath(tenant.name))}`);
  }
  if (state.policy !== undefined && !policyOurs) foreign.push(`Vault policy ${name}`);
  if (state.role && !secretOurs && !policyOurs) {
    foreign.push(`Vault Kubernetes auth role ${name}`);
  }
  return foreign;
}

/**
 * Claims the credentials path before its first version is written: the
 * metadata is created with the claim, so a crash before the data write
 * leaves a path that is still recognisably the tenant's.
 */
export async function claimCredentialsPath(
  vault: VaultObjects,
  state: TenantVaultState,
  tenant: ValidTenant,
): Promise<void> {
  if (credentialsClaimed(state, tenant)) return;
  await vault.kv.writeCustomMetadata(credentialsPath(tenant.name), credentialsClaim(tenant));
}

/**
 * The policy and Kubernetes auth role through which the tenant's service
 * accounts read their own credentials, with tokens of bounded life. Written
 * only when they differ from what Vault holds.
 */
export async function ensureTenantVaultAccess(
  vault: VaultObjects,
  state: TenantVaultState,
  tenant: ValidTenant,
): Promise<void> {
  const name = vaultObjectName(tenant.name);
  const policy = tenantReadPolicy(vault.kv.mount, tenant.name, tenant.uid);
  if (state.policy !== policy) await vault.policies.putPolicy(name, policy);
  const role = tenantAuthRole(tenant, vault.vaultAudience);
  if (!state.role || !sameRole(role, state.role)) {
    await vault.kubernetesAuth.putKubernetesRole(name, role);
  }
}

/** The Kubernetes auth role through which the tenant's service accounts read their own path. */
export function tenantAuthRole(
  tenant: Pick<ValidTenant, 'name' | 'namespace'>,
  audience: string | undefined,
): KubernetesRole {
  return {
    boundServiceAccountNames: ['*'],
    boundServiceAccountNamespaces: [tenant.namespace],
    policies: [vaultObjectName(tenant.name)],
    ttl: TENANT_TOKEN_TTL_SECONDS,
    maxTtl: TENANT_TOKEN_MAX_TTL_SECONDS,
    period: 0,
    explicitMaxTtl: 0,
    ...(audience ? { audience } : {}),
  };
}

/**
 * A closed tenant's Vault access, cut: the policy first, which takes the
 * reads away from tokens already issued, then the auth role, so no new
 * login. Called only once the objects are known to be this Tenant's. The
 * secret stays (the data is kept until the purge); re-opening puts both back.
 * Answers what was removed ([] when nothing was left).
 */
export async function cutTenantVaultAccess(
  vault: VaultObjects,
  state: TenantVaultState,
  tenant: Pick<ValidTenant, 'name'>,
): Promise<string[]> {
  const name = vaultObjectName(tenant.name);
  const cut: string[] = [];
  if (state.policy !== undefined) {
    await vault.policies.deletePolicy(name);
    cut.push(`Vault policy ${name}`);
  }
  if (state.role !== undefined) {
    await vault.kubernetesAuth.deleteKubernetesRole(name);
    cut.push(`Vault Kubernetes auth role ${name}`);
  }
  return cut;
}

function sameRole(desired: KubernetesRole, live: KubernetesRole): boolean {
  return (
    JSON.stringify(desired.boundServiceAccountNames) ===
      JSON.stringify(live.boundServiceAccountNames) &&
    JSON.stringify(desired.boundServiceAccountNamespaces) ===
      JSON.stringify(live.boundServiceAccountNamespaces) &&
    JSON.stringify(desired.policies) === JSON.stringify(live.policies) &&
    desired.ttl === live.ttl &&
    desired.maxTtl === live.maxTtl &&
    desired.period === live.period &&
    desired.explicitMaxTtl === live.explicitMaxTtl &&
    (desired.audience ?? '') === (live.audience ?? '')
  );
}
