import { Address4, Address6 } from 'ip-address';

// Address ranges as NetworkPolicies need them. Parsing (IPv6 with `::`,
// embedded IPv4, leading zeros, zone ids) is left to `ip-address`, a
// dependency-free library that @kubernetes/client-node already brings in;
// the little arithmetic on top (containment, order) is done on bigints here
// so each rule is one line to read.

export type IpFamily = 4 | 6;

export interface Cidr {
  family: IpFamily;
  prefix: number;
  /** The first address of the range. */
  network: bigint;
  /**
   * Canonical text: host bits cleared, IPv6 lower-case and shortest. This is
   * what the operator writes, so the API server's strict CIDR validation
   * accepts it and a re-read compares equal.
   */
  text: string;
}

const BITS: Record<IpFamily, number> = { 4: 32, 6: 128 };

/** A CIDR such as `10.0.0.0/16` or `fd00::/8`; undefined when it is not one. */
export function parseCidr(value: string): Cidr | undefined {
  const slash = value.indexOf('/');
  if (slash < 0 || !/^[0-9]{1,3}$/.test(value.slice(slash + 1))) return undefined;
  return parse(value);
}

/** A single address as the range holding only it (`/32`, `/128`). */
export function addressCidr(ip: string): Cidr | undefined {
  if (ip.includes('/')) return undefined;
  return parse(`${ip}/${ip.includes(':') ? 128 : 32}`);
}

function parse(value: string): Cidr | undefined {
  // A zone id (`fe80::1%eth0`) names an interface, not a range anyone can route to.
  if (value.includes('%')) return undefined;
  try {
    if (value.includes(':')) {
      const address = new Address6(value);
      const start = address.startAddress();
      return {
        family: 6,
        prefix: address.subnetMask,
        network: start.bigInt(),
        text: `${start.correctForm()}/${address.subnetMask}`,
      };
    }
    const address = new Address4(value);
    const start = address.startAddress();
    return {
      family: 4,
      prefix: address.subnetMask,
      network: start.bigInt(),
      text: `${start.correctForm()}/${address.subnetMask}`,
    };
  } catch {
    return undefined;
  }
}

/** Whether every address of `inner` lies in `outer` (a range contains itself). */
export function contains(outer: Cidr, inner: Cidr): boolean {
  if (outer.family !== inner.family || outer.prefix > inner.prefix) return false;
  const hostBits = BigInt(BITS[outer.family] - outer.prefix);
  return inner.network >> hostBits === outer.network >> hostBits;
}

/** Whether `inner` lies in `outer` and is smaller: what a NetworkPolicy `except` must be. */
export function strictlyContains(outer: Cidr, inner: Cidr): boolean {
  return contains(outer, inner) && inner.prefix > outer.prefix;
}

/** IPv4 before IPv6, then by first address, then the larger range first. */
export function compareCidrs(a: Cidr, b: Cidr): number {
  if (a.family !== b.family) return a.family - b.family;
  if (a.network !== b.network) return a.network < b.network ? -1 : 1;
  return a.prefix - b.prefix;
}
