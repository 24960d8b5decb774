import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { KubeClient } from '../../src/k8s/client.ts';
import { OperatorError } from '../../src/errors.ts';
import {
  adminClient,
  createTenant,
  deleteUnreconciledTenant,
  tenantManifest,
} from '../support/cluster.ts';

// The real API server refuses invalid Tenants through the generated CRD
// schema and its CEL rules, with a message that names the field.

let client: KubeClient;
before(async () => {
  client = await adminClient();
});
after(async () => {
  await client.close();
});

async function refusal(name: string, spec: Record<string, unknown>): Promise<string> {
  try {
    await client.create('/apis/tenancy.io/v1alpha1/tenants', {
      ...tenantManifest(name),
      spec,
    });
  } catch (err: unknown) {
    assert.ok(err instanceof OperatorError, `unexpected error ${String(err)}`);
    assert.equal(err.httpStatus, 422, err.message);
    return err.message;
  }
  assert.fail(`tenant ${name} with spec ${JSON.stringify(spec)} was accepted`);
}

const owners = [{ kind: 'Group', name: 'admins' }];

describe('the Tenant CRD refuses invalid input', () => {
  test('bad duration', async () => {
    const message = await refusal('bad-duration', {
      owners,
      retention: { afterClosure: '60days' },
    });
    assert.match(message, /spec\.retention\.afterClosure/);
  });

  test('unknown state', async () => {
    const message = await refusal('bad-state', { owners, state: 'Deleted' });
    assert.match(message, /spec\.state/);
    assert.match(message, /Unsupported value: "Deleted"/);
  });

  test('empty owners list', async () => {
    const message = await refusal('no-owners', { owners: [] });
    assert.match(message, /spec\.owners/);
  });

  test('a ServiceAccount owner without a namespace', async () => {
    const message = await refusal('sa-owner', {
      owners: [{ kind: 'ServiceAccount', name: 'deployer' }],
    });
    assert.match(message, /spec\.owners\[0\]\.namespace/);
    assert.match(message, /needs a namespace/);
  });

  test("names whose namespace or Vault identity are the operator's own are reserved", async () => {
    assert.match(await refusal('system', { owners }), /tenant-system is the operator's namespace/);
    assert.match(await refusal('operator', { owners }), /reserved/);
  });

  test('a name too long for the tenant-<name> namespace', async () => {
    const message = await refusal('a'.repeat(57), { owners });
    assert.match(message, /metadata\.name must be a DNS label of at most 56 characters/);
  });

  test('names with dots or capitals, which no namespace can carry', async () => {
    assert.match(await refusal('acme.corp', { owners }), /metadata\.name must be a DNS label/);
    assert.match(await refusal('Acme', { owners }), /metadata\.name/);
  });

  test('injection-looking names never get in', async () => {
    for (const name of ["x';drop-table", 'a;rm -rf /', '$(reboot)', 'ünïcode', '../../etc']) {
      const message = await refusal(name, { owners });
      assert.match(message, /metadata\.name|name/i, `for ${name}`);
    }
  });

  test('bad CIDR and bad quota', async () => {
    const cidr = await refusal('bad-cidr', {
      owners,
      network: { allowEgressCIDRs: ['300.1.1.1/99'] },
    });
    assert.match(cidr, /spec\.network\.allowEgressCIDRs\[0\]/);
    const quota = await refusal('bad-quota', { owners, quota: { memory: '8 gigs' } });
    assert.match(quota, /spec\.quota\.memory/);
  });

  test('unknown fields are refused, not silently dropped', async () => {
    // The CRD prunes unknown fields; with strict field validation the server says so.
    try {
      await client.request('POST', '/apis/tenancy.io/v1alpha1/tenants', {
        query: { fieldValidation: 'Strict' },
        body: { ...tenantManifest('typo'), spec: { owners, quotas: { cpu: '1' } } },
      });
      assert.fail('accepted a spec with an unknown field');
    } catch (err: unknown) {
      assert.ok(err instanceof OperatorError);
      assert.match(err.message, /unknown field "spec\.quotas"/);
    }
  });

  test('durations: never 0, no leading zeros, at most 36500d, so no date overflows', async () => {
    for (const bad of ['0d', '00s', '01d', '1.5d']) {
      const message = await refusal('bad-duration', { owners, retention: { afterClosure: bad } });
      assert.match(message, /spec\.retention\.afterClosure/, bad);
      assert.match(message, /should match '\^\[1-9\]\[0-9\]\*\[smhd\]\$'/, bad);
    }
    for (const [field, tooLong] of [
      ['retention.afterClosure', '99999999d'],
      ['database.rotationInterval', '36501d'],
      ['backup.retention', '876001h'],
    ] as const) {
      const [section, key] = field.split('.') as [string, string];
      const message = await refusal('long-duration', { owners, [section]: { [key]: tooLong } });
      assert.match(message, new RegExp(`spec\\.${section}\\.${key}: Invalid value`), tooLong);
      assert.match(message, /must be at most 36500d \(100 years\)/, tooLong);
    }
    const longest = (await createTenant(client, 'longest-retention', {
      retention: { afterClosure: '36500d' },
    })) as { spec: { retention: { afterClosure: string } } };
    assert.equal(longest.spec.retention.afterClosure, '36500d');
    await deleteUnreconciledTenant(client, 'longest-retention');
  });

  test('label selectors: key and value syntax, and operators with the right values', async () => {
    const at = 'spec\\.network\\.allowIngressFromNamespaces\\[0\\]';
    const cases: [Record<string, unknown>, string, RegExp][] = [
      [{ matchLabels: { 'bad key': 'x' } }, '\\.matchLabels', /every key must be a label key/],
      [
        { matchLabels: { team: 'not ok!' } },
        '\\.matchLabels\\.team',
        /should match '\^\(\(\[A-Za-z0-9\]/,
      ],
      [
        { matchExpressions: [{ key: '-team', operator: 'Exists' }] },
        '\\.matchExpressions\\[0\\]\\.key',
        /must be a label key/,
      ],
      [
        { matchExpressions: [{ key: 'team', operator: 'In' }] },
        '\\.matchExpressions\\[0\\]\\.values',
        /operators In and NotIn need at least one value/,
      ],
      [
        { matchExpressions: [{ key: 'team', operator: 'NotIn', values: [] }] },
        '\\.matchExpressions\\[0\\]\\.values',
        /operators In and NotIn need at least one value/,
      ],
      [
        { matchExpressions: [{ key: 'team', operator: 'DoesNotExist', values: ['a'] }] },
        '\\.matchExpressions\\[0\\]\\.values',
        /operators Exists and DoesNotExist take no values/,
      ],
      [
        { matchExpressions: [{ key: 'team', operator: 'In', values: ['a b'] }] },
        '\\.matchExpressions\\[0\\]\\.values\\[0\\]',
        /should match '\^\(\(\[A-Za-z0-9\]/,
      ],
    ];
    for (const [selector, field, expected] of cases) {
      const message = await refusal('bad-selector', {
        owners,
        network: { allowIngressFromNamespaces: [selector] },
      });
      assert.match(message, new RegExp(`${at}${field}: `), JSON.stringify(selector));
      assert.match(message, expected, JSON.stringify(selector));
    }
  });

  test('system: users and groups are never owners', async () => {
    for (const owner of [
      { kind: 'Group', name: 'system:authenticated' },
      { kind: 'Group', name: 'system:serviceaccounts' },
      { kind: 'User', name: 'system:serviceaccount:tenant-other:default' },
    ]) {
      const message = await refusal('system-owner', { owners: [owner] });
      assert.match(message, /spec\.owners\[0\]\.name/, owner.name);
      assert.match(message, /must not start with 'system:'/, owner.name);
    }
  });

  test("a ServiceAccount of another tenant's namespace is never an owner; its own is", async () => {
    const message = await refusal('sa-elsewhere', {
      owners: [{ kind: 'ServiceAccount', name: 'deployer', namespace: 'tenant-other' }],
    });
    assert.match(message, /spec\.owners: Invalid value/);
    assert.match(message, /may not live in another tenant's namespace/);
    await createTenant(client, 'sa-own', {
      owners: [{ kind: 'ServiceAccount', name: 'deployer', namespace: 'tenant-sa-own' }],
    });
    await deleteUnreconciledTenant(client, 'sa-own');
  });

  test('negative quota counts and quantities beyond 64 bits', async () => {
    const message = await refusal('bad-nodeports', { owners, quota: { nodePorts: -1 } });
    assert.match(message, /spec\.quota\.nodePorts/);
    const huge = await refusal('huge-quota', { owners, quota: { memory: '1024Ei' } });
    assert.match(huge, /spec\.quota\.memory: Invalid value.*must be less than 8Ei/);
  });

  test('a valid tenant is accepted and defaulted by the server', async () => {
    const created = (await createTenant(client, 'defaults-check')) as {
      spec: {
        state: string;
        retention: { afterClosure: string };
        quota: Record<string, string | number>;
      };
    };
    assert.equal(created.spec.state, 'Active');
    assert.equal(created.spec.retention.afterClosure, '60d');
    assert.equal(created.spec.quota.cpu, '4');
    assert.equal(created.spec.quota.nodePorts, 0);
    assert.equal(created.spec.quota.loadBalancers, 0);
    assert.equal(created.spec.quota.ephemeralStorage, '20Gi');
    await deleteUnreconciledTenant(client, 'defaults-check');
  });
});
