import { ERROR_CODES, OperatorError } from '../errors.ts';

// Which BackupStore a tenant's backups go to. Data location is per tenant:
// a tenant with a region uses a store of that region, never another; one
// without a region uses the store marked default, else the only store
// without a region. Ambiguity is an error to fix, not a coin to toss.

export interface StoreCandidate {
  name: string;
  region?: string | undefined;
  isDefault?: boolean | undefined;
}

export function selectStore<T extends StoreCandidate>(
  stores: readonly T[],
  tenantRegion: string | undefined,
  requested?: string,
): T {
  if (requested !== undefined) {
    const store = stores.find((s) => s.name === requested);
    if (!store)
      throw new OperatorError(ERROR_CODES.INVALID_SPEC, `BackupStore ${requested} does not exist`);
    if (tenantRegion !== undefined && store.region !== tenantRegion)
      throw new OperatorError(
        ERROR_CODES.INVALID_SPEC,
        `BackupStore ${requested} is in region ${store.region ?? '(none)'}; the tenant's backups must stay in ${tenantRegion}`,
      );
    return store;
  }
  const eligible =
    tenantRegion === undefined
      ? stores.filter((s) => s.region === undefined)
      : stores.filter((s) => s.region === tenantRegion);
  const defaults = eligible.filter((s) => s.isDefault === true);
  const chosen = defaults.length > 0 ? defaults : eligible;
  const where = tenantRegion === undefined ? 'without a region' : `in region ${tenantRegion}`;
  if (chosen.length === 0)
    throw new OperatorError(ERROR_CODES.INVALID_SPEC, `no BackupStore ${where}`);
  if (chosen.length > 1)
    throw new OperatorError(
      ERROR_CODES.INVALID_SPEC,
      `several BackupStores ${where} (${chosen.map((s) => s.name).join(', ')}): mark one with spec.default: true`,
    );
  return chosen[0] as T;
}
