import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { after, before, test } from 'node:test';
import { TestEnvironment } from '../support/fixture.ts';

// The metrics an SRE alerts on are the ones the README documents: every
// documented metric is exposed with the documented type, and the operator
// exposes none of its own that the README does not list.

let env: TestEnvironment;

before(async () => {
  env = await TestEnvironment.start('metrics');
  await env.tenantReady('a');
});

after(async () => {
  await env[Symbol.asyncDispose]();
});

interface Documented {
  name: string;
  type: string;
}

async function documentedMetrics(): Promise<Documented[]> {
  const readme = await readFile(new URL('../../README.md', import.meta.url), 'utf8');
  const section = readme.split('\n## Metrics\n')[1]?.split('\n## ')[0];
  assert.ok(section, 'README.md has no "## Metrics" section');
  const rows = [...section.matchAll(/^\|\s*`(tenant_operator_[a-z_]+)`\s*\|\s*(\w+)\s*\|/gm)];
  assert.ok(rows.length >= 5, `only ${rows.length} metrics documented`);
  return rows.map((m) => ({ name: m[1]!, type: m[2]! }));
}

function exposedTypes(body: string): Map<string, string> {
  const types = new Map<string, string>();
  for (const match of body.matchAll(/^# TYPE (\S+) (\S+)$/gm)) types.set(match[1]!, match[2]!);
  return types;
}

/** prom-client's default process and Node.js metrics, which carry our prefix too. */
function isDefaultMetric(name: string): boolean {
  return /^tenant_operator_(process_|nodejs_)/.test(name);
}

test('every documented metric is exposed with its documented type', async () => {
  const { status, body } = await env.operator.get('/metrics');
  assert.equal(status, 200);
  const exposed = exposedTypes(body);
  for (const { name, type } of await documentedMetrics()) {
    assert.equal(exposed.get(name), type, `${name}: documented as ${type}`);
  }
  // The process's own memory, which the scale benchmark reads, is there too.
  assert.ok(exposed.has('tenant_operator_process_resident_memory_bytes'));
});

test('the operator exposes no metric of its own that the README does not document', async () => {
  const { body } = await env.operator.get('/metrics');
  const documented = new Set((await documentedMetrics()).map((m) => m.name));
  const undocumented = [...exposedTypes(body).keys()].filter(
    (name) => !isDefaultMetric(name) && !documented.has(name),
  );
  assert.deepEqual(undocumented, []);
});

test('the tenant counted by phase, and a missing metric fails instead of reading 0', async () => {
  assert.equal(await env.operator.metric('tenant_operator_leader'), 1);
  // One shard unless asked: the single leader holds it.
  assert.equal(await env.operator.metric('tenant_operator_shards'), 1);
  assert.equal(await env.operator.metric('tenant_operator_shards_held'), 1);
  assert.ok((await env.operator.metric('tenant_operator_tenants', 'phase="Ready"')) >= 1);
  await assert.rejects(env.operator.metric('tenant_operator_no_such_metric'), /not exposed/);
});
