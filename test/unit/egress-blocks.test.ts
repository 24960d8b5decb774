import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { addressCidr, compareCidrs, contains, parseCidr } from '../../src/tenant/cidr.ts';
import {
  egressBlocks,
  forbiddenRanges,
  metadataRanges,
  parseClusterCidrs,
} from '../../src/tenant/egress-blocks.ts';

// The arithmetic that decides what a tenant's egress rule may open. The
// integration test (network.test.ts) shows the API server accepts the result.

const FIELD = 'spec.network.allowEgressCIDRs';
const CLUSTER = ['10.244.0.0/16', '10.96.0.0/12', '192.168.49.0/24', 'fd00:10:244::/56'];

function cidr(value: string) {
  const parsed = parseCidr(value);
  assert.ok(parsed, `${value} parses`);
  return parsed;
}

describe('cidr', () => {
  test('canonical text clears host bits and shortens IPv6', () => {
    assert.equal(cidr('10.1.2.3/8').text, '10.0.0.0/8');
    assert.equal(cidr('2001:DB8:0:0::1/32').text, '2001:db8::/32');
    assert.equal(cidr('::/0').text, '::/0');
    assert.equal(addressCidr('127.0.0.1')?.text, '127.0.0.1/32');
    assert.equal(addressCidr('::1')?.text, '::1/128');
  });

  test('what is not a CIDR is refused', () => {
    for (const bad of [
      '10.0.0.0',
      '10.0.0.0/33',
      '::/129',
      '1.2.3/8',
      '01.2.3.4/8',
      'fe80::1%eth0/64',
      'x/8',
      '10.0.0.0/',
    ]) {
      assert.equal(parseCidr(bad), undefined, bad);
    }
    assert.equal(addressCidr('10.0.0.0/8'), undefined);
  });

  test('containment within a family, never across', () => {
    assert.equal(contains(cidr('10.0.0.0/8'), cidr('10.244.3.0/24')), true);
    assert.equal(contains(cidr('10.0.0.0/8'), cidr('10.0.0.0/8')), true);
    assert.equal(contains(cidr('10.244.0.0/16'), cidr('10.0.0.0/8')), false);
    assert.equal(contains(cidr('10.244.0.0/16'), cidr('10.245.0.0/16')), false);
    assert.equal(contains(cidr('0.0.0.0/0'), cidr('255.255.255.255/32')), true);
    assert.equal(contains(cidr('::/0'), cidr('10.0.0.0/8')), false);
    assert.equal(contains(cidr('0.0.0.0/0'), cidr('::/0')), false);
    assert.equal(contains(cidr('fd00::/8'), cidr('fd00:ec2::254/128')), true);
    assert.equal(contains(cidr('fd00:ec2::/32'), cidr('fd00:ec3::/32')), false);
  });

  test('order: IPv4 first, then by address, the larger range first', () => {
    const sorted = ['fd00::/8', '10.96.0.0/12', '10.0.0.0/8', '10.0.0.0/16', '::/0', '9.0.0.0/8']
      .map(cidr)
      .sort(compareCidrs)
      .map((c) => c.text);
    assert.deepEqual(sorted, [
      '9.0.0.0/8',
      '10.0.0.0/8',
      '10.0.0.0/16',
      '10.96.0.0/12',
      '::/0',
      'fd00::/8',
    ]);
  });
});

describe('egress blocks', () => {
  const forbidden = forbiddenRanges(CLUSTER);

  test('0.0.0.0/0 and ::/0 mean the internet: metadata and cluster ranges cut out, per family', () => {
    const { blocks, problems } = egressBlocks(['0.0.0.0/0', '::/0'], forbidden, FIELD);
    assert.deepEqual(problems, []);
    assert.deepEqual(blocks, [
      {
        cidr: '0.0.0.0/0',
        except: ['10.96.0.0/12', '10.244.0.0/16', '169.254.0.0/16', '192.168.49.0/24'],
      },
      // The IPv4-mapped range is no except: the API server counts it as IPv4.
      { cidr: '::/0', except: ['fd00:10:244::/56', 'fd00:ec2::254/128', 'fe80::/10'] },
    ]);
  });

  test('a range holding part of the cluster gets only the cuts inside it', () => {
    const { blocks } = egressBlocks(['10.0.0.0/8', '203.0.113.0/24', 'fd00::/8'], forbidden, FIELD);
    assert.deepEqual(blocks, [
      { cidr: '10.0.0.0/8', except: ['10.96.0.0/12', '10.244.0.0/16'] },
      { cidr: '203.0.113.0/24' },
      { cidr: 'fd00::/8', except: ['fd00:10:244::/56', 'fd00:ec2::254/128'] },
    ]);
  });

  test('a cut inside another cut is written once', () => {
    const nested = forbiddenRanges(['10.0.0.0/16', '10.0.5.0/24', '10.0.0.0/16']);
    const { blocks } = egressBlocks(['10.0.0.0/8'], nested, FIELD);
    assert.deepEqual(blocks, [{ cidr: '10.0.0.0/8', except: ['10.0.0.0/16'] }]);
  });

  test('a range inside a forbidden one opens nothing and names its field', () => {
    const { blocks, problems } = egressBlocks(
      [
        '203.0.113.0/24',
        '10.244.5.0/24',
        '169.254.169.254/32',
        'fd00:ec2::254/128',
        '::ffff:a00:0/104',
        '10.244.0.0/16',
      ],
      forbidden,
      FIELD,
    );
    assert.deepEqual(blocks, [{ cidr: '203.0.113.0/24' }]);
    assert.deepEqual(problems, [
      `${FIELD}[1]: 10.244.5.0/24 lies inside the cluster range 10.244.0.0/16; tenants cannot open egress into the cluster`,
      `${FIELD}[2]: 169.254.169.254/32 lies inside the link-local or metadata range 169.254.0.0/16; tenants cannot open egress to the metadata service or the node`,
      `${FIELD}[3]: fd00:ec2::254/128 lies inside the link-local or metadata range fd00:ec2::254/128; tenants cannot open egress to the metadata service or the node`,
      `${FIELD}[4]: ::ffff:a00:0/104 is an IPv4-mapped IPv6 range (inside ::ffff:0:0/96); write IPv4 ranges in IPv4 form`,
      `${FIELD}[5]: 10.244.0.0/16 lies inside the cluster range 10.244.0.0/16; tenants cannot open egress into the cluster`,
    ]);
  });

  test('IPv6 link-local (the node, seen from its pods) is never opened', () => {
    const { blocks, problems } = egressBlocks(['fe80::1/128'], forbidden, FIELD);
    assert.deepEqual(blocks, []);
    assert.match(problems[0] ?? '', /link-local or metadata range fe80::\/10/);
  });

  test('host bits and upper case are written canonically', () => {
    const { blocks } = egressBlocks(['203.0.113.7/24', '2001:DB8::/32'], forbidden, FIELD);
    assert.deepEqual(blocks, [{ cidr: '203.0.113.0/24' }, { cidr: '2001:db8::/32' }]);
  });

  test('without cluster ranges the metadata service is still cut out', () => {
    const { blocks } = egressBlocks(['0.0.0.0/0'], metadataRanges(), FIELD);
    assert.deepEqual(blocks, [{ cidr: '0.0.0.0/0', except: ['169.254.0.0/16'] }]);
  });
});

describe('cluster CIDRs given to the operator', () => {
  test('are strict: canonical form only, IPv4 written as IPv4', () => {
    assert.equal(parseClusterCidrs(CLUSTER).length, 4);
    assert.throws(() => parseClusterCidrs(['10.244.0.1/16']), /write it as 10\.244\.0\.0\/16/);
    assert.throws(() => parseClusterCidrs(['FD00::/8']), /write it as fd00::\/8/);
    assert.throws(() => parseClusterCidrs(['10.0.0.0']), /not a CIDR/);
    assert.throws(() => parseClusterCidrs(['::ffff:a00:0/104']), /IPv4 form/);
  });
});
