import assert from 'node:assert/strict';
import { after, before, describe, test } from 'node:test';
import type { KubeClient } from '../../src/k8s/client.ts';
import { OperatorError } from '../../src/errors.ts';
import { adminClient, createTenant, tenantManifest } from '../support/cluster.ts';

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

  test('a valid tenant is accepted and defaulted by the server', async () => {
    const created = (await createTenant(client, 'defaults-check')) as {
      spec: { state: string; retention: { afterClosure: string }; quota: { cpu: string } };
    };
    assert.equal(created.spec.state, 'Active');
    assert.equal(created.spec.retention.afterClosure, '60d');
    assert.equal(created.spec.quota.cpu, '4');
    await client.delete('/apis/tenancy.io/v1alpha1/tenants/defaults-check');
  });
});
