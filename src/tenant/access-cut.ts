import { ERROR_CODES, OperatorError } from '../errors.ts';
import { databaseIdentifiersFor } from '../postgres/identifiers.ts';
import { ownershipMarker } from '../postgres/ownership.ts';
import { revokeTenantAccess } from '../postgres/tenant-database.ts';
import { policyOwnerUid } from '../vault/policy.ts';
import type { DatabaseDeps } from './database.ts';
import { credentialsClaimed, readTenantVault, vaultObjectName } from './database-vault.ts';
import { namespaceFor, type TenantObject, type ValidTenant } from './model.ts';

// A closed Tenant whose namespace is gone (a deleted tenant, under
// foreground deletion), and the purge's first step: every way in is cut,
// although the data stays until the purge. Otherwise its Vault role, which trusts
// service accounts by namespace *name*, would let anyone who later owns a
// namespace of that name read the credentials, and the login roles would
// keep working for whoever kept the password. In the order that leaves no
// gap: the Vault policy first (that also cuts tokens already issued), then
// the auth role (no new logins), then database login revoked and sessions
// ended. Only what carries this Tenant's claim is touched; every step is
// safe to repeat after a crash.

export interface AccessCut {
  /** What was removed or revoked now (empty when everything was already cut). */
  cut: string[];
}

export async function cutTenantAccess(
  deps: DatabaseDeps,
  tenant: TenantObject,
): Promise<AccessCut> {
  const name = tenant.metadata.name;
  const uid = tenant.metadata.uid ?? '';
  // The spec is not needed to find what the tenant owns: names and uid say it all.
  const owner = { name, uid, namespace: namespaceFor(name) } as ValidTenant;
  const cut: string[] = [];

  const vaultName = vaultObjectName(name);
  const state = await readTenantVault(deps, owner);
  const policyOurs = state.policy !== undefined && policyOwnerUid(state.policy) === uid;
  const roleOurs = state.role !== undefined && (policyOurs || credentialsClaimed(state, owner));
  if (policyOurs) {
    await deps.policies.deletePolicy(vaultName);
    cut.push(`Vault policy ${vaultName}`);
  }
  if (roleOurs) {
    await deps.kubernetesAuth.deleteKubernetesRole(vaultName);
    cut.push(`Vault Kubernetes auth role ${vaultName}`);
  }

  const serverName = tenant.status?.database?.server;
  const server = serverName ? deps.servers.get(serverName) : undefined;
  if (server) {
    const handle = await deps.connections.get(server);
    const ids = databaseIdentifiersFor(name);
    try {
      const { revoked, ended } = await revokeTenantAccess(
        handle.admin,
        ids,
        ownershipMarker(name, uid),
      );
      // Told only when something changed: a repeat (a resync, a resumed purge) cuts nothing new.
      for (const role of revoked) cut.push(`LOGIN of database role ${role}`);
      if (ended > 0) cut.push(`${ended} open database session(s)`);
    } catch (err: unknown) {
      // Roles of this name that are not this Tenant's are someone else's to keep.
      if (!(err instanceof OperatorError && err.code === ERROR_CODES.FOREIGN_OBJECT)) throw err;
    }
  }
  return { cut };
}
