import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, test } from 'node:test';
import { stringify } from 'yaml';
import { ALERTS_FILE } from '../../src/cli/gen-crds.ts';
import { alertRuleGroups } from '../../src/metrics/alerts.ts';
import { requireEnv } from '../support/cluster.ts';

// The alert rules as Prometheus itself reads them: `promtool check rules`
// parses every expression, and `promtool test rules` evaluates them over
// made-up series with Prometheus' own rule engine, so "fires after five
// minutes of an overdue purge, never for a held one" is checked, not assumed.

const RULES = join(import.meta.dirname, '..', '..', 'monitoring', ALERTS_FILE);
const work = mkdtempSync(join(tmpdir(), 'alerts-'));
after(() => rmSync(work, { recursive: true, force: true }));

function promtool(args: string[]) {
  return spawnSync(requireEnv('PROMTOOL'), args, { encoding: 'utf8', timeout: 60_000 });
}

function rule(name: string) {
  const found = alertRuleGroups()
    .flatMap((group) => group.rules)
    .find((r) => r.alert === name);
  assert.ok(found, `no alert ${name}`);
  return found;
}

/** A promtool unit-test file over the checked-in rules. */
function ruleTests(tests: unknown[]): string {
  const file = join(work, `tests-${Math.random().toString(16).slice(2)}.yaml`);
  writeFileSync(file, stringify({ rule_files: [RULES], evaluation_interval: '1m', tests }));
  return file;
}

test('promtool accepts every rule', () => {
  const checked = promtool(['check', 'rules', RULES]);
  assert.equal(checked.status, 0, checked.stdout + checked.stderr);
  assert.match(checked.stdout, /SUCCESS: 1 rules found/);
});

test('TenantPurgeOverdue fires after five minutes of an overdue purge, and not for none', () => {
  const overdue = rule('TenantPurgeOverdue');
  const firing = {
    exp_labels: overdue.labels,
    exp_annotations: {
      summary: overdue.annotations.summary,
      description: overdue.annotations.description.replace('{{ $value }}', '1'),
    },
  };
  const tests = [
    {
      // Overdue from minute 2: pending at minute 3, firing at minute 8.
      interval: '1m',
      input_series: [
        { series: 'tenant_operator_purges_overdue{instance="a"}', values: '0 0 1x10' },
      ],
      alert_rule_test: [
        { eval_time: '3m', alertname: 'TenantPurgeOverdue', exp_alerts: [] },
        { eval_time: '8m', alertname: 'TenantPurgeOverdue', exp_alerts: [firing] },
      ],
    },
    {
      // Nothing overdue (held tenants are not counted by the gauge): silent.
      interval: '1m',
      input_series: [{ series: 'tenant_operator_purges_overdue{instance="a"}', values: '0x20' }],
      alert_rule_test: [{ eval_time: '15m', alertname: 'TenantPurgeOverdue', exp_alerts: [] }],
    },
  ];
  const passed = promtool(['test', 'rules', ruleTests(tests)]);
  assert.equal(passed.status, 0, passed.stdout + passed.stderr);

  // The same check can fail: an expectation that it stays silent at minute 8 is refused.
  const wrong = promtool([
    'test',
    'rules',
    ruleTests([
      {
        ...tests[0],
        alert_rule_test: [{ eval_time: '8m', alertname: 'TenantPurgeOverdue', exp_alerts: [] }],
      },
    ]),
  ]);
  assert.equal(wrong.status, 1, wrong.stdout + wrong.stderr);
  assert.match(wrong.stdout + wrong.stderr, /TenantPurgeOverdue/);
});
