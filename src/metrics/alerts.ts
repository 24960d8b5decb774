import { PURGE_OVERDUE_GRACE_SECONDS } from './registry.ts';

// The alert rules for the operator's metrics, in Prometheus' own rule-file
// form: `gen-crds` writes them to monitoring/alerts.rules.yaml, which
// promtool checks and tests, and the chart wraps the same groups in a
// PrometheusRule. One source, so an alert never names a metric the operator
// no longer exports (a unit test holds every name against the registry).

export interface AlertRule {
  alert: string;
  expr: string;
  for: string;
  labels: { severity: 'critical' | 'warning' };
  annotations: { summary: string; description: string };
}

export interface RuleGroup {
  name: string;
  rules: AlertRule[];
}

export function alertRuleGroups(): RuleGroup[] {
  const graceHours = PURGE_OVERDUE_GRACE_SECONDS / 3600;
  return [
    {
      name: 'tenant-operator.erasure',
      rules: [
        {
          // The promise the product exists for: data gone by its due time.
          // The gauge already excludes legal holds and allows the grace, so
          // any value above zero is a tenant whose erasure is late.
          alert: 'TenantPurgeOverdue',
          expr: 'max(tenant_operator_purges_overdue) > 0',
          for: '5m',
          labels: { severity: 'critical' },
          annotations: {
            summary: "A closed tenant's data is past its erasure time",
            description:
              `{{ $value }} closed tenant(s) are more than ${graceHours} h past their purgeAfter and not yet erased ` +
              '(legal holds excluded). `kubectl get tenants` shows them in phase Purging or Closed; ' +
              'their Ready condition (reason PurgeBlocked) names the step that stopped and why.',
          },
        },
      ],
    },
  ];
}
