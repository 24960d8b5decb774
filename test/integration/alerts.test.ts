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
  const count = alertRuleGroups().flatMap((group) => group.rules).length;
  assert.ok(count >= 6, `only ${count} rules`);
  assert.match(checked.stdout, new RegExp(`SUCCESS: ${count} rules found`));
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

/**
 * One alert over made-up series: silent before `firesAt`, firing then with
 * `labels` (besides its own) and its annotations' templates filled with `fill`.
 */
interface AlertCase {
  alert: string;
  interval: string;
  series: { series: string; values: string }[];
  silentAt: string;
  firesAt: string;
  labels?: Record<string, string>;
  fill?: Record<string, string>;
  /** Series under which it must stay silent throughout. */
  quiet: { series: string; values: string }[];
  quietUntil: string;
}

const CASES: AlertCase[] = [
  {
    // Scraped until minute 3, then nothing: absent() from minute 4, firing 5 min later.
    alert: 'TenantOperatorDown',
    interval: '1m',
    series: [{ series: 'tenant_operator_leader{instance="a"}', values: '1 1 1 1 stale' }],
    silentAt: '6m',
    firesAt: '12m',
    quiet: [
      { series: 'tenant_operator_leader{instance="a"}', values: '1x30' },
      { series: 'tenant_operator_leader{instance="b"}', values: '0x30' },
    ],
    quietUntil: '25m',
  },
  {
    alert: 'TenantOperatorNoLeader',
    interval: '1m',
    series: [
      { series: 'tenant_operator_leader{instance="a"}', values: '1 1 0x30' },
      { series: 'tenant_operator_leader{instance="b"}', values: '0x32' },
    ],
    silentAt: '5m',
    firesAt: '10m',
    quiet: [
      { series: 'tenant_operator_leader{instance="a"}', values: '1x30' },
      { series: 'tenant_operator_leader{instance="b"}', values: '0x30' },
    ],
    quietUntil: '25m',
  },
  {
    // Two shards; replica b, holding shard 1, stops being scraped at minute 3.
    alert: 'TenantOperatorShardUnheld',
    interval: '1m',
    series: [
      { series: 'tenant_operator_shards{instance="a"}', values: '2x30' },
      { series: 'tenant_operator_shards_held{instance="a"}', values: '1x30' },
      { series: 'tenant_operator_shards{instance="b"}', values: '2 2 2 2 stale' },
      { series: 'tenant_operator_shards_held{instance="b"}', values: '1 1 1 1 stale' },
    ],
    silentAt: '6m',
    firesAt: '12m',
    fill: { '{{ $value }}': '1' },
    quiet: [
      // a holds both until b starts and takes shard 1 over.
      { series: 'tenant_operator_shards{instance="a"}', values: '2x30' },
      { series: 'tenant_operator_shards_held{instance="a"}', values: '2 2 1x28' },
      { series: 'tenant_operator_shards{instance="b"}', values: '2x30' },
      { series: 'tenant_operator_shards_held{instance="b"}', values: '0 0 1x28' },
    ],
    quietUntil: '25m',
  },
  {
    // 2 errors and 8 successes a minute: 20% fail.
    alert: 'TenantReconcileErrors',
    interval: '1m',
    series: [
      { series: 'tenant_operator_reconcile_total{result="error"}', values: '0+2x60' },
      { series: 'tenant_operator_reconcile_total{result="success"}', values: '0+8x60' },
    ],
    silentAt: '10m',
    firesAt: '40m',
    fill: { '{{ $value | humanizePercentage }}': '20%' },
    // 1 error in 100: retried, not alarming.
    quiet: [
      { series: 'tenant_operator_reconcile_total{result="error"}', values: '0+1x60' },
      { series: 'tenant_operator_reconcile_total{result="success"}', values: '0+99x60' },
    ],
    quietUntil: '60m',
  },
  {
    // The newest good backup's data is from time 0; at 27 h it is 27 h old.
    alert: 'TenantBackupTooOld',
    interval: '1m',
    series: [
      {
        series: 'tenant_operator_backup_last_success_timestamp_seconds{tenant="acme"}',
        values: '0x1700',
      },
    ],
    silentAt: '26h5m',
    firesAt: '27h',
    labels: { tenant: 'acme' },
    fill: { '{{ $labels.tenant }}': 'acme', '{{ $value | humanizeDuration }}': '1d 3h 0m 0s' },
    // A backup every day: never older than 24 h.
    quiet: [
      {
        series: 'tenant_operator_backup_last_success_timestamp_seconds{tenant="acme"}',
        values: '0x1439 86400x1440 172800x100',
      },
    ],
    quietUntil: '49h',
  },
  {
    alert: 'TenantBackupVerificationFailing',
    interval: '1m',
    series: [{ series: 'tenant_operator_backup_verified{tenant="acme"}', values: '1 1 0x30' }],
    silentAt: '8m',
    firesAt: '15m',
    labels: { tenant: 'acme' },
    fill: { '{{ $labels.tenant }}': 'acme' },
    quiet: [{ series: 'tenant_operator_backup_verified{tenant="acme"}', values: '1x30' }],
    quietUntil: '30m',
  },
];

function filled(text: string, fill: Record<string, string> = {}): string {
  let out = text;
  for (const [template, value] of Object.entries(fill)) out = out.split(template).join(value);
  assert.doesNotMatch(out, /\{\{/, `a template left unfilled in: ${out}`);
  return out;
}

for (const c of CASES) {
  test(`${c.alert} fires when it should, and not otherwise`, () => {
    const defined = rule(c.alert);
    const firing = {
      exp_labels: { ...defined.labels, ...c.labels },
      exp_annotations: {
        summary: filled(defined.annotations.summary, c.fill),
        description: filled(defined.annotations.description, c.fill),
      },
    };
    const tests = [
      {
        interval: c.interval,
        input_series: c.series,
        alert_rule_test: [
          { eval_time: c.silentAt, alertname: c.alert, exp_alerts: [] },
          { eval_time: c.firesAt, alertname: c.alert, exp_alerts: [firing] },
        ],
      },
      {
        interval: c.interval,
        input_series: c.quiet,
        alert_rule_test: [{ eval_time: c.quietUntil, alertname: c.alert, exp_alerts: [] }],
      },
    ];
    const passed = promtool(['test', 'rules', ruleTests(tests)]);
    assert.equal(passed.status, 0, passed.stdout + passed.stderr);
  });
}
