import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { ALERTS_FILE, renderAlertRules } from '../../src/cli/gen-crds.ts';
import { alertRuleGroups } from '../../src/metrics/alerts.ts';
import { createMetrics } from '../../src/metrics/registry.ts';

// The alert rules: checked in as generated, and naming only metrics the
// operator really exports. promtool (a real Prometheus rule engine) checks
// and tests the same file in test/integration/alerts.test.ts.

test('the checked-in alert rules equal what gen:crds generates', async () => {
  const [content] = renderAlertRules().values();
  const checkedIn = await readFile(
    new URL(`../../monitoring/${ALERTS_FILE}`, import.meta.url),
    'utf8',
  );
  assert.equal(checkedIn, content, `monitoring/${ALERTS_FILE} is stale: run npm run gen:crds`);
});

test('every metric an alert reads is registered by the operator', async () => {
  const { registry } = createMetrics();
  const registered = new Set((await registry.getMetricsAsJSON()).map((m) => m.name));
  const rules = alertRuleGroups().flatMap((group) => group.rules);
  assert.ok(rules.some((rule) => rule.alert === 'TenantPurgeOverdue'));
  for (const rule of rules) {
    const names = rule.expr.match(/tenant_operator_[a-z_]+/g) ?? [];
    assert.ok(names.length > 0, `${rule.alert} reads no metric of the operator`);
    for (const name of names) assert.ok(registered.has(name), `${rule.alert}: ${name} unknown`);
  }
});
