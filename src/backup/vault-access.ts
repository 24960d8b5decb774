import { ERROR_CODES, OperatorError } from '../errors.ts';
import { credentialsPath } from '../tenant/database-vault.ts';
import {
  vaultPath,
  type VaultAuth,
  type VaultClient,
  type VaultResponse,
} from '../vault/client.ts';
import { cachedRead, type VaultReads } from '../vault/inventory.ts';
import type { KubernetesAuth, KubernetesRole } from '../vault/kubernetes-auth.ts';
import type { KvV2 } from '../vault/kv.ts';
import {
  assertTenantName,
  policyOwnerUid,
  tenantBackupPolicy,
  tenantRestorePolicy,
  type TenantBackupPaths,
  type VaultPolicies,
} from '../vault/policy.ts';
import type { Transit, TransitKeyInfo } from '../vault/transit.ts';

// A tenant's backup keys and the two narrow Vault identities around them.
//
// - The Transit key `tenant-<name>` wraps each backup's data key; deleting it
//   at purge makes every copy of every backup unreadable.
// - The backup job logs in (Kubernetes auth role `backup-<name>`, bound to the
//   ServiceAccount `backup-<name>` in the operator's namespace) with policy
//   `backup-<name>`: new data keys of its own key, its own credentials; it
//   cannot unwrap any data key, so it cannot read any backup.
// - Restore and verification get a short-lived token with policy
//   `restore-<name>` only (decrypt of its own key, its own credentials),
//   minted by the operator through the token role `tenant-backup-restore`
//   (hack/vault-config.sh), which grants nothing but `restore-*` policies. The
//   operator itself holds neither datakey nor decrypt.
//
// Why `backup-`/`restore-` and not `tenant-<name>-backup`: tenant objects are
// `tenant-<name>`, and a Tenant named "acme-backup" would own `tenant-acme-backup`,
// the very name of acme's backup policy and role. Every tenant object starts
// with `tenant-`, so no Tenant name can reach `backup-…` or `restore-…`; and
// the operator's own policy, which matches names by prefix only, can give each
// family its own limits: backup roles may bind only the operator's
// namespace, tenant roles never.
//
// Ownership: policies carry the Tenant uid in a comment line; the auth role is
// the tenant's when one of its policies is (it is written last). A Transit key
// has no field for a claim: one of the right name and shape is taken as the
// tenant's (purge deletes it, so a same-named successor starts without one).

/** The token role of hack/vault-config.sh through which restore tokens are minted. */
export const RESTORE_TOKEN_ROLE = 'tenant-backup-restore';
/** A backup job's Vault token lives an hour, renewed at most two. */
export const BACKUP_TOKEN_TTL_SECONDS = 3_600;
export const BACKUP_TOKEN_MAX_TTL_SECONDS = 2 * 3_600;
/** Audience the backup job's projected ServiceAccount token carries. */
export const BACKUP_TOKEN_AUDIENCE = 'vault';

export function transitKeyName(tenant: string): string {
  return `tenant-${tenant}`;
}

/** The ServiceAccount the backup CronJob runs as, in the operator's namespace (≤ 63 chars: names are ≤ 56). */
export function backupServiceAccountName(tenant: string): string {
  return `backup-${tenant}`;
}

/** The Kubernetes auth role the backup job logs in with (VAULT_AUTH_ROLE of the job). */
export function backupAuthRoleName(tenant: string): string {
  return `backup-${tenant}`;
}

export function backupPolicyName(tenant: string): string {
  return `backup-${tenant}`;
}

export function restorePolicyName(tenant: string): string {
  return `restore-${tenant}`;
}

export interface BackupVaultObjects {
  transit: Transit;
  policies: VaultPolicies;
  kubernetesAuth: KubernetesAuth;
  /** The KV v2 engine of the tenants' database credentials. */
  kv: KvV2;
  /** Where the backup CronJobs and their ServiceAccounts live. */
  operatorNamespace: string;
  /** Audience the backup job's token must carry; default "vault". */
  audience?: string;
}

/** What ensureTenantBackupKeys needs of a Tenant (a ValidTenant fits). */
export interface BackupTenant {
  name: string;
  uid: string;
}

export interface TenantBackupVaultState {
  key: TransitKeyInfo | undefined;
  backupPolicy: string | undefined;
  restorePolicy: string | undefined;
  role: KubernetesRole | undefined;
}

export interface EnsuredBackupKeys {
  key: TransitKeyInfo;
  /** What was written, e.g. ["Transit key tenant-acme"]; [] in the steady state. */
  written: string[];
}

const KEY_TYPE = 'aes256-gcm96';

function backupPaths(objects: BackupVaultObjects, tenant: string): TenantBackupPaths {
  return {
    transitMount: objects.transit.mount,
    transitKey: transitKeyName(tenant),
    credentialsDataPath: objects.kv.dataPath(credentialsPath(tenant)),
  };
}

export function desiredBackupRole(objects: BackupVaultObjects, tenant: string): KubernetesRole {
  return {
    boundServiceAccountNames: [backupServiceAccountName(tenant)],
    boundServiceAccountNamespaces: [objects.operatorNamespace],
    policies: [backupPolicyName(tenant)],
    ttl: BACKUP_TOKEN_TTL_SECONDS,
    maxTtl: BACKUP_TOKEN_MAX_TTL_SECONDS,
    period: 0,
    explicitMaxTtl: 0,
    audience: objects.audience ?? BACKUP_TOKEN_AUDIENCE,
  };
}

function sameRole(desired: KubernetesRole, live: KubernetesRole): boolean {
  const list = (values: string[]) => JSON.stringify(values);
  return (
    list(desired.boundServiceAccountNames) === list(live.boundServiceAccountNames) &&
    list(desired.boundServiceAccountNamespaces) === list(live.boundServiceAccountNamespaces) &&
    list(desired.policies) === list(live.policies) &&
    desired.ttl === live.ttl &&
    desired.maxTtl === live.maxTtl &&
    desired.period === live.period &&
    desired.explicitMaxTtl === live.explicitMaxTtl &&
    (desired.audience ?? '') === (live.audience ?? '')
  );
}

/** One read of each object (or its cached answer, with `reads`); no write. */
export async function readTenantBackupVault(
  objects: BackupVaultObjects,
  tenant: string,
  reads?: VaultReads,
): Promise<TenantBackupVaultState> {
  assertTenantName(tenant);
  const key = transitKeyName(tenant);
  const backupPolicy = backupPolicyName(tenant);
  const restorePolicy = restorePolicyName(tenant);
  const role = backupAuthRoleName(tenant);
  // Independent reads, at once (see readTenantVault).
  const [keyInfo, backupPolicyText, restorePolicyText, roleInfo] = await Promise.all([
    objects.transit.keyInfo(key, cachedRead(reads, 'transitKey', key)),
    objects.policies.readPolicy(backupPolicy, cachedRead(reads, 'policy', backupPolicy)),
    objects.policies.readPolicy(restorePolicy, cachedRead(reads, 'policy', restorePolicy)),
    objects.kubernetesAuth.readKubernetesRole(role, cachedRead(reads, 'kubernetesRole', role)),
  ]);
  return {
    key: keyInfo,
    backupPolicy: backupPolicyText,
    restorePolicy: restorePolicyText,
    role: roleInfo,
  };
}

/** The objects of the tenant's name that exist but are not this Tenant's. */
export function foreignBackupObjects(
  state: TenantBackupVaultState,
  tenant: BackupTenant,
): string[] {
  const ours = (policy: string | undefined) =>
    policy !== undefined && policyOwnerUid(policy) === tenant.uid;
  const foreign: string[] = [];
  if (state.backupPolicy !== undefined && !ours(state.backupPolicy))
    foreign.push(`Vault policy ${backupPolicyName(tenant.name)}`);
  if (state.restorePolicy !== undefined && !ours(state.restorePolicy))
    foreign.push(`Vault policy ${restorePolicyName(tenant.name)}`);
  if (state.role && !ours(state.backupPolicy) && !ours(state.restorePolicy))
    foreign.push(`Vault Kubernetes auth role ${backupAuthRoleName(tenant.name)}`);
  return foreign;
}

/** A key the tenant's backups can rely on: the right type, never exportable. */
function assertUsableKey(key: TransitKeyInfo): void {
  if (key.type !== KEY_TYPE)
    throw new OperatorError(
      ERROR_CODES.API_CONFLICT,
      `Transit key ${key.name} exists with type ${key.type}, expected ${KEY_TYPE}`,
    );
  // Irreversible in Vault: the key material may already be outside.
  if (key.exportable || key.allowPlaintextBackup)
    throw new OperatorError(
      ERROR_CODES.API_CONFLICT,
      `Transit key ${key.name} is ${key.exportable ? 'exportable' : 'allowed a plaintext backup'}: its material may have left Vault; a new key is needed (not done automatically)`,
    );
}

/**
 * The tenant's Transit key (aes256-gcm96, not exportable, not deletable),
 * its backup and restore policies and the backup job's auth role. Reads
 * each, writes only what differs: an unchanged tenant costs four reads (or
 * their cached answers, with `reads`) and no write. Objects of the tenant's names that are not this Tenant's throw
 * FOREIGN_OBJECT before anything is written.
 */
export async function ensureTenantBackupKeys(
  objects: BackupVaultObjects,
  tenant: BackupTenant,
  reads?: VaultReads,
): Promise<EnsuredBackupKeys> {
  const state = await readTenantBackupVault(objects, tenant.name, reads);
  const foreign = foreignBackupObjects(state, tenant);
  if (foreign.length > 0)
    throw new OperatorError(
      ERROR_CODES.FOREIGN_OBJECT,
      `${foreign.join(', ')} exist${foreign.length === 1 ? 's' : ''} but ${foreign.length === 1 ? 'is' : 'are'} not tenant ${tenant.name}'s (uid ${tenant.uid}): refusing to overwrite`,
    );
  const written: string[] = [];
  const keyName = transitKeyName(tenant.name);
  let key = state.key;
  if (key === undefined) {
    key = await objects.transit.ensureKey(keyName);
    written.push(`Transit key ${keyName}`);
  }
  assertUsableKey(key);
  if (key.deletionAllowed) {
    // Only the purge may delete it (Transit.deleteKey allows deletion first).
    key = await objects.transit.configureKey(keyName, { deletionAllowed: false });
    written.push(`Transit key ${keyName} config`);
  }
  const paths = backupPaths(objects, tenant.name);
  // Policies before the role that names them: the role is the last write.
  for (const [name, live, desired] of [
    [
      restorePolicyName(tenant.name),
      state.restorePolicy,
      tenantRestorePolicy(tenant.name, tenant.uid, paths),
    ],
    [
      backupPolicyName(tenant.name),
      state.backupPolicy,
      tenantBackupPolicy(tenant.name, tenant.uid, paths),
    ],
  ] as const) {
    if (live !== desired) {
      await objects.policies.putPolicy(name, desired);
      written.push(`Vault policy ${name}`);
    }
  }
  const role = desiredBackupRole(objects, tenant.name);
  if (!state.role || !sameRole(role, state.role)) {
    await objects.kubernetesAuth.putKubernetesRole(backupAuthRoleName(tenant.name), role);
    written.push(`Vault Kubernetes auth role ${backupAuthRoleName(tenant.name)}`);
  }
  return { key, written };
}

/**
 * Purge: the backup role, both policies, then the Transit key (crypto-shredding:
 * every copy of every backup becomes unreadable). In that order so that a
 * crash anywhere leaves what is left still provably the tenant's: the role
 * goes while its policies still carry the uid. Objects of the tenant's names
 * that are not this Tenant's are left alone; answers what was deleted.
 */
export async function removeTenantBackupVault(
  objects: BackupVaultObjects,
  tenant: BackupTenant,
  /** Access cut only: the key stays, so the backups stay restorable until the purge. */
  options: { keepKey?: boolean } = {},
): Promise<string[]> {
  const state = await readTenantBackupVault(objects, tenant.name);
  const foreign = new Set(foreignBackupObjects(state, tenant));
  const deleted: string[] = [];
  const role = `Vault Kubernetes auth role ${backupAuthRoleName(tenant.name)}`;
  if (state.role && !foreign.has(role)) {
    await objects.kubernetesAuth.deleteKubernetesRole(backupAuthRoleName(tenant.name));
    deleted.push(role);
  }
  for (const [name, live] of [
    [backupPolicyName(tenant.name), state.backupPolicy],
    [restorePolicyName(tenant.name), state.restorePolicy],
  ] as const) {
    if (live !== undefined && !foreign.has(`Vault policy ${name}`)) {
      await objects.policies.deletePolicy(name);
      deleted.push(`Vault policy ${name}`);
    }
  }
  if (state.key && !options.keepKey) {
    await objects.transit.deleteKey(transitKeyName(tenant.name));
    deleted.push(`Transit key ${transitKeyName(tenant.name)}`);
  }
  return deleted;
}

function requireKey(info: TransitKeyInfo | undefined, name: string): TransitKeyInfo {
  if (!info)
    throw new OperatorError(ERROR_CODES.API_NOT_FOUND, `Transit key ${name} does not exist`);
  return info;
}

/**
 * Rotates the key when its latest version is at least `intervalMs` old at
 * `now`; answers the version new data keys are made with. Not due: one read.
 */
export async function rotateIfDue(
  transit: Transit,
  name: string,
  intervalMs: number,
  now: Date,
  /** The key as just read (by ensureTenantBackupKeys): saves a read. */
  known?: TransitKeyInfo,
): Promise<{ version: number; rotated: boolean; rotatedAt: Date }> {
  if (!Number.isFinite(intervalMs) || intervalMs <= 0)
    throw new OperatorError(ERROR_CODES.INVALID_SPEC, `key rotation interval must be positive`);
  const key = known ?? requireKey(await transit.keyInfo(name), name);
  const created = key.versionCreated.get(key.latestVersion);
  if (!created)
    throw new OperatorError(
      ERROR_CODES.API_ERROR,
      `Transit key ${name}: Vault gave no creation time for version ${key.latestVersion}`,
    );
  if (now.getTime() - created.getTime() < intervalMs)
    return { version: key.latestVersion, rotated: false, rotatedAt: created };
  const rotated = await transit.rotateKey(name);
  return {
    version: rotated.latestVersion,
    rotated: true,
    rotatedAt: rotated.versionCreated.get(rotated.latestVersion) ?? now,
  };
}

/**
 * Raises min_decryption_version to `oldestNeeded` (the oldest key version a
 * retained backup was wrapped with): older versions stop decrypting, so the
 * backups that needed them, gone anyway, stay unreadable wherever a copy
 * lingers. Never lowers it, never above the latest version (a new backup
 * always needs that one); answers the minimum in force. Nothing to raise: one read.
 */
export async function raiseMinDecryptionVersion(
  transit: Transit,
  name: string,
  oldestNeeded: number,
): Promise<number> {
  if (!Number.isInteger(oldestNeeded) || oldestNeeded < 1)
    throw new OperatorError(
      ERROR_CODES.INTERNAL,
      `Transit key ${name}: oldest needed version ${oldestNeeded} is not a key version`,
    );
  const key = requireKey(await transit.keyInfo(name), name);
  const target = Math.min(oldestNeeded, key.latestVersion);
  if (target <= key.minDecryptionVersion) return key.minDecryptionVersion;
  const after = await transit.configureKey(name, { minDecryptionVersion: target });
  return after.minDecryptionVersion;
}

/** A client acting with a restore token of one tenant; dispose revokes the token. */
export interface RestoreVault extends AsyncDisposable {
  readonly client: VaultClient;
  readonly policies: readonly string[];
  /** For an administrator's lookup or revocation; like the token, kept out of logs. */
  readonly accessor: string;
  /** Revokes the token; again, or for a token already gone, nothing happens. */
  dispose(): Promise<void>;
}

/**
 * A short-lived token with the tenant's restore policy and nothing else,
 * minted through the token role (the operator needs no decrypt of its own).
 * An answer with any other policy set (a misconfigured role) is revoked and
 * refused.
 */
export async function restoreVault(vault: VaultClient, tenant: string): Promise<RestoreVault> {
  assertTenantName(tenant);
  const policy = restorePolicyName(tenant);
  const response = await vault.request<VaultResponse>(
    'POST',
    vaultPath('auth/token/create', RESTORE_TOKEN_ROLE),
    { policies: [policy] },
  );
  const auth: VaultAuth | null | undefined = response?.auth;
  if (!auth?.client_token)
    throw new OperatorError(
      ERROR_CODES.API_ERROR,
      `Vault token role ${RESTORE_TOKEN_ROLE}: no token in the answer`,
      { origin: 'vault' },
    );
  const client = vault.withToken(auth.client_token);
  let revoked = false;
  const dispose = async (): Promise<void> => {
    if (revoked) return;
    try {
      await client.write('auth/token/revoke-self');
    } catch (err: unknown) {
      // 403: expired or already revoked; the token is gone either way.
      if (!(err instanceof OperatorError && err.httpStatus === 403)) throw err;
    }
    revoked = true;
  };
  const policies = [...(auth.token_policies ?? auth.policies ?? [])].sort();
  if (policies.length !== 1 || policies[0] !== policy) {
    await dispose();
    throw new OperatorError(
      ERROR_CODES.INTERNAL,
      `Vault token role ${RESTORE_TOKEN_ROLE} gave policies ${JSON.stringify(policies)}, expected exactly ["${policy}"]: check hack/vault-config.sh`,
    );
  }
  const session = { client, policies, dispose, [Symbol.asyncDispose]: dispose };
  Object.defineProperty(session, 'accessor', { value: auth.accessor, enumerable: false });
  return session as typeof session & { accessor: string };
}
