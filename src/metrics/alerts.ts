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

/** A tenant's newest good backup older than this alerts: a daily schedule plus two hours' slack. */
export const BACKUP_TOO_OLD_HOURS = 26;

export function alertRuleGroups(): RuleGroup[] {
  const graceHours = PURGE_OVERDUE_GRACE_SECONDS / 3600;
  return [
    {
      name: 'tenant-operator.operator',
      rules: [
        {
          // Our own metric rather than up{job=...}: the job label is the
          // Service's name, which the Helm release decides. When no replica
          // is scraped, the series goes stale and absent() turns true.
          alert: 'TenantOperatorDown',
          expr: 'absent(tenant_operator_leader)',
          for: '5m',
          labels: { severity: 'critical' },
          annotations: {
            summary: 'No tenant-operator replica is being scraped',
            description:
              'Prometheus has no tenant_operator_leader series from any replica for 5 minutes: the operator is down ' +
              '(or not scraped). Nothing provisions, repairs, backs up or erases tenants meanwhile. ' +
              'Check `kubectl -n <namespace> get pods -l app.kubernetes.io/name=tenant-operator` and their logs.',
          },
        },
        {
          // Replicas answer but none holds the Lease: nothing reconciles.
          alert: 'TenantOperatorNoLeader',
          expr: 'max(tenant_operator_leader) == 0',
          for: '5m',
          labels: { severity: 'critical' },
          annotations: {
            summary: 'tenant-operator replicas run but none leads',
            description:
              'Every scraped replica reports tenant_operator_leader 0 for 5 minutes, so no replica reconciles. ' +
              "Check the Lease `tenant-operator` in the operator namespace and the replicas' logs " +
              '(they cannot renew it: API server reachable? RBAC on leases?).',
          },
        },
        {
          // With --shards, each shard has its own Lease: a shard nobody holds
          // leaves its tenants unreconciled while the others lead, which
          // TenantOperatorNoLeader cannot see. With one shard that alert
          // already covers it.
          alert: 'TenantOperatorShardUnheld',
          expr:
            'max(tenant_operator_shards) - sum(tenant_operator_shards_held) > 0 ' +
            'and max(tenant_operator_shards) > 1',
          for: '5m',
          labels: { severity: 'critical' },
          annotations: {
            summary: 'A shard of tenants has no replica leading it',
            description:
              '{{ $value }} shard(s) held by no scraped replica for 5 minutes: their tenants are not provisioned, ' +
              'repaired, backed up or erased. Check the Leases `tenant-operator-shard-<i>` in the operator namespace ' +
              '(holder, renewTime) and the replicas: fewer live replicas than needed, or one that cannot renew.',
          },
        },
        {
          // Errors now and then are retried with backoff; a steady share of
          // them means tenants are not converging.
          alert: 'TenantReconcileErrors',
          expr:
            'sum(rate(tenant_operator_reconcile_total{result="error"}[15m])) ' +
            '/ sum(rate(tenant_operator_reconcile_total[15m])) > 0.1',
          for: '15m',
          labels: { severity: 'warning' },
          annotations: {
            summary: 'More than 10% of tenant reconciles fail',
            description:
              '{{ $value | humanizePercentage }} of reconciles failed over 15 minutes. ' +
              '`kubectl get tenants` shows the tenants that are not Ready; their Ready condition says why ' +
              '(reason and message), and so do Warning events (`kubectl get events -n default --field-selector type=Warning`).',
          },
        },
      ],
    },
    {
      name: 'tenant-operator.backups',
      rules: [
        {
          alert: 'TenantBackupTooOld',
          expr: `time() - tenant_operator_backup_last_success_timestamp_seconds > ${BACKUP_TOO_OLD_HOURS} * 3600`,
          for: '10m',
          labels: { severity: 'critical' },
          annotations: {
            summary: 'A tenant has no good backup for more than ' + `${BACKUP_TOO_OLD_HOURS} hours`,
            description:
              "Tenant {{ $labels.tenant }}'s newest good backup is {{ $value | humanizeDuration }} old. " +
              '`kubectl get tenant {{ $labels.tenant }}` shows Last Backup; its LastBackupSucceeded condition ' +
              'and BackupFailed events say why runs fail (`kubectl get tenantbackups` lists the runs).',
          },
        },
        {
          alert: 'TenantBackupVerificationFailing',
          expr: 'tenant_operator_backup_verified == 0',
          for: '10m',
          labels: { severity: 'critical' },
          annotations: {
            summary: "A tenant's latest backup failed its restore check",
            description:
              "Tenant {{ $labels.tenant }}'s latest backup verification failed: restored into a scratch database, " +
              'it did not match. Its BackupVerified condition and the VerificationFailed event say what differed; ' +
              'the backup record carries a Verified condition.',
          },
        },
      ],
    },
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
