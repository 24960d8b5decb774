import { compareCidrs, contains, parseCidr, strictlyContains, type Cidr } from './cidr.ts';

// What an egress CIDR may open. Whatever a rule says, it never reaches the
// cloud metadata service (instance credentials) or the cluster itself (the
// API server, kubelets, other tenants' pods and Services): those ranges are
// cut out of every ipBlock the operator writes, so `0.0.0.0/0` means "the
// internet". The API server accepts an `except` only when it is a strict
// subset of its `cidr` and of the same family, so the cut is computed per
// rule; a rule wholly inside a forbidden range would open nothing and is
// reported instead.

export type ForbiddenKind = 'metadata' | 'cluster' | 'ipv4-mapped';

export interface ForbiddenRange {
  cidr: Cidr;
  kind: ForbiddenKind;
}

/**
 * Link-local ranges: the metadata service (169.254.169.254 on every major
 * cloud) and, over IPv6, the node itself (pods' gateway is a link-local
 * address of the node, where the kubelet listens); and AWS's IPv6 metadata
 * endpoint, which sits in the unique-local range instead.
 */
export const METADATA_CIDRS = ['169.254.0.0/16', 'fd00:ec2::254/128', 'fe80::/10'] as const;

/**
 * IPv6 spellings of IPv4 addresses. Never written as an `except` (the API
 * server counts it as IPv4 and refuses it under an IPv6 cidr), but a tenant
 * range inside it is refused: it is another way to write an IPv4 range, and
 * would dodge the IPv4 cuts.
 */
const IPV4_MAPPED_CIDR = '::ffff:0:0/96';

export interface IpBlock {
  cidr: string;
  except?: string[];
}

export interface EgressBlocks {
  blocks: IpBlock[];
  /** One message per refused range, naming its field. */
  problems: string[];
}

function mustParse(value: string, what: string): Cidr {
  const cidr = parseCidr(value);
  if (!cidr) throw new Error(`${what}: ${value} is not a CIDR`);
  return cidr;
}

/** The link-local and metadata ranges alone: what even the platform's own targets (database, Vault) must not open. */
export function metadataRanges(): ForbiddenRange[] {
  return [
    ...METADATA_CIDRS.map((value) => ({
      cidr: mustParse(value, 'metadata range'),
      kind: 'metadata' as const,
    })),
    { cidr: mustParse(IPV4_MAPPED_CIDR, 'IPv4-mapped range'), kind: 'ipv4-mapped' },
  ];
}

/** Every range a tenant's own egress rules must stay out of. Throws on a bad cluster CIDR. */
export function forbiddenRanges(clusterCidrs: readonly string[]): ForbiddenRange[] {
  const cluster = parseClusterCidrs(clusterCidrs).map((cidr) => ({
    cidr,
    kind: 'cluster' as const,
  }));
  return [...metadataRanges(), ...cluster];
}

/**
 * The cluster's pod, service and node ranges as the operator was given them.
 * Strict, because a typo here silently opens the cluster: a range must be
 * written with its host bits cleared, and IPv4 ranges in IPv4 form.
 */
export function parseClusterCidrs(values: readonly string[]): Cidr[] {
  const mapped = mustParse(IPV4_MAPPED_CIDR, 'IPv4-mapped range');
  return values.map((value) => {
    const cidr = mustParse(value, 'cluster CIDR');
    if (cidr.text !== value) {
      throw new Error(`cluster CIDR ${value}: write it as ${cidr.text}`);
    }
    if (contains(mapped, cidr)) {
      throw new Error(`cluster CIDR ${value}: write IPv4 ranges in IPv4 form`);
    }
    return cidr;
  });
}

function refusal(field: string, value: string, range: ForbiddenRange): string {
  switch (range.kind) {
    case 'metadata':
      return `${field}: ${value} lies inside the link-local or metadata range ${range.cidr.text}; tenants cannot open egress to the metadata service or the node`;
    case 'cluster':
      return `${field}: ${value} lies inside the cluster range ${range.cidr.text}; tenants cannot open egress into the cluster`;
    case 'ipv4-mapped':
      return `${field}: ${value} is an IPv4-mapped IPv6 range (inside ${range.cidr.text}); write IPv4 ranges in IPv4 form`;
  }
}

/**
 * The ipBlocks for `cidrs` (from the field `field`, e.g.
 * `spec.network.allowEgressCIDRs`), each with the forbidden ranges it holds
 * cut out, and a problem for each range that lies wholly inside a forbidden
 * one (it gets no block).
 */
export function egressBlocks(
  cidrs: readonly string[],
  forbidden: readonly ForbiddenRange[],
  field: string,
): EgressBlocks {
  const blocks: IpBlock[] = [];
  const problems: string[] = [];
  cidrs.forEach((value, index) => {
    const fieldAt = `${field}[${index}]`;
    const cidr = parseCidr(value);
    if (!cidr) {
      problems.push(`${fieldAt}: ${value} is not a CIDR`);
      return;
    }
    const inside = forbidden.find((range) => contains(range.cidr, cidr));
    if (inside) {
      problems.push(refusal(fieldAt, value, inside));
      return;
    }
    const cut = forbidden
      .filter((range) => range.kind !== 'ipv4-mapped' && strictlyContains(cidr, range.cidr))
      .map((range) => range.cidr);
    // Overlapping cluster ranges (a node range inside the pod range) need one cut, not two.
    const except = cut
      .filter((c) => !cut.some((other) => other !== c && strictlyContains(other, c)))
      .filter((c, i, all) => all.findIndex((other) => other.text === c.text) === i)
      .sort(compareCidrs)
      .map((c) => c.text);
    blocks.push(except.length > 0 ? { cidr: cidr.text, except } : { cidr: cidr.text });
  });
  return { blocks, problems };
}
