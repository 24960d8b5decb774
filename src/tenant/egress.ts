import { BoundedMemo } from '../bounded-memo.ts';
import { CONDITION, REASON } from '../controller/conditions.ts';
import type { Informer } from '../controller/informer.ts';
import { addressCidr, compareCidrs, parseCidr } from './cidr.ts';
import { serverSpecOf, type DatabaseServerObject } from './database-servers.ts';
import type { DatabaseOutcome } from './database.ts';
import {
  egressBlocks,
  metadataRanges,
  type ForbiddenRange,
  type IpBlock,
} from './egress-blocks.ts';
import type { HostResolver } from './host-resolver.ts';
import type { TenantObject, ValidTenant } from './model.ts';

// Where the tenant's apps must be able to connect outside their namespace:
// their database server and Vault. A NetworkPolicy holds addresses only, so
// a server known by name is resolved (through a short-lived cache), or its
// DatabaseServer lists the ranges to open. When no rule can be written the
// tenant is not reported ready: its pods could not reach their database.

/** One service outside the namespace: the ranges it answers on, and its port. */
export interface EgressTarget {
  blocks: IpBlock[];
  port: number;
}

export interface EgressConfig {
  resolver: HostResolver;
  /** Ranges tenants' own egress rules must never open (metadata service, the cluster's ranges). */
  forbidden: ForbiddenRange[];
  /** Vault as tenants' apps reach it. */
  vault?: { host: string; port: number };
}

export interface PlatformEgress {
  targets: EgressTarget[];
  /** Why the tenant's pods cannot reach their database or Vault; none when they can. */
  unreachable: string[];
}

export interface PlatformEgressDeps {
  egress: EgressConfig;
  servers?: Informer<DatabaseServerObject> | undefined;
}

/** How soon a tenant whose database cannot be reached for want of an address looks again. */
export const UNRESOLVED_RETRY_MS = 10_000;

export async function platformEgress(
  deps: PlatformEgressDeps,
  tenant: TenantObject,
): Promise<PlatformEgress> {
  const targets: EgressTarget[] = [];
  const unreachable: string[] = [];
  const serverName = tenant.status?.database?.server;
  const server = serverName ? deps.servers?.get(serverName) : undefined;
  const spec = server ? serverSpecOf(server) : undefined;
  if (serverName && spec) {
    const what = `DatabaseServer ${serverName}`;
    const found = spec.egressCIDRs
      ? fromRanges(spec.egressCIDRs, `${what} spec.egressCIDRs`)
      : await fromHost(deps.egress.resolver, spec.host, what);
    if (found.blocks.length > 0) targets.push({ blocks: found.blocks, port: spec.port });
    else unreachable.push(found.problem);
  }
  const vault = deps.egress.vault;
  if (vault) {
    const found = await fromHost(deps.egress.resolver, vault.host, 'Vault');
    if (found.blocks.length > 0) targets.push({ blocks: found.blocks, port: vault.port });
    else unreachable.push(found.problem);
  }
  return { targets, unreachable };
}

type Found = { blocks: IpBlock[]; problem: string };

/**
 * What was found, by what it was found from: every reconcile of every
 * tenant asks for Vault's egress (and its database server's), and turning
 * addresses into checked, sorted blocks (parsing each address) took about a
 * tenth of a millisecond each time, a second and a half of a restart at ten
 * thousand tenants. The answer depends only on the key. Frozen, as every
 * tenant's NetworkPolicy shares it.
 */
const foundBefore = new BoundedMemo<Found>(1_000);

function remembered(key: string, find: () => Found): Found {
  return foundBefore.get(key, () => {
    const found = find();
    for (const block of found.blocks) {
      if (block.except) Object.freeze(block.except);
      Object.freeze(block);
    }
    Object.freeze(found.blocks);
    return Object.freeze(found);
  });
}

function fromRanges(cidrs: readonly string[], field: string): Found {
  return remembered(`${field}\u0000${cidrs.join('\u0000')}`, () => {
    const { blocks, problems } = egressBlocks(cidrs, metadataRanges(), field);
    return { blocks: sorted(blocks), problem: `no range to open: ${problems.join('; ')}` };
  });
}

async function fromHost(resolver: HostResolver, host: string, what: string): Promise<Found> {
  const resolution = await resolver.resolve(host);
  if (!resolution.ok) {
    return { blocks: [], problem: `${what} host ${resolution.error}; no egress rule can reach it` };
  }
  const { addresses } = resolution;
  return remembered(`${what}\u0000${host}\u0000${addresses.join('\u0000')}`, () => {
    // Even the platform's own targets never open the metadata service.
    const single = addresses.flatMap((ip) => addressCidr(ip)?.text ?? []);
    const { blocks, problems } = egressBlocks(single, metadataRanges(), `${what} host ${host}`);
    return {
      blocks: sorted(blocks),
      problem: `${what} host ${host} resolves to no address tenants may reach (${problems.join('; ')})`,
    };
  });
}

function sorted(blocks: IpBlock[]): IpBlock[] {
  const key = (block: IpBlock) => parseCidr(block.cidr);
  return [...blocks].sort((a, b) => {
    const ka = key(a);
    const kb = key(b);
    return ka && kb ? compareCidrs(ka, kb) : a.cidr.localeCompare(b.cidr);
  });
}

/**
 * The database outcome as the tenant's pods see it: a database they cannot
 * reach (no egress rule could be written) is not ready, whatever the
 * operator's own connection says.
 */
export function withPlatformEgress(
  outcome: DatabaseOutcome,
  egress: PlatformEgress,
  tenant: ValidTenant,
): DatabaseOutcome {
  if (!tenant.spec.database.enabled || egress.unreachable.length === 0) return outcome;
  return {
    ...outcome,
    ready: false,
    conditions: [
      ...outcome.conditions.filter((c) => c.type !== CONDITION.DatabaseReady),
      {
        type: CONDITION.DatabaseReady,
        status: 'False',
        reason: REASON.EgressUnresolved,
        message: egress.unreachable.join('; '),
      },
    ],
    requeueAfterMs: Math.min(outcome.requeueAfterMs ?? UNRESOLVED_RETRY_MS, UNRESOLVED_RETRY_MS),
  };
}
