// The Grafana dashboard for the operator's metrics, as Grafana's JSON model:
// `gen-crds` writes it to monitoring/grafana-dashboard.json and the chart
// ships that file as a ConfigMap for Grafana's sidecar. Built from a list of
// panels, so a unit test can hold every query against the registry.

interface PanelSpec {
  title: string;
  /** PromQL, one per series; {{label}} in `legend` names them. */
  queries: { expr: string; legend: string }[];
  unit?: string;
  /** A stat shows one number; a timeseries a line per series. */
  type?: 'timeseries' | 'stat';
  description?: string;
}

interface Row {
  title: string;
  panels: PanelSpec[];
}

const DATASOURCE = { type: 'prometheus', uid: '${datasource}' };

const ROWS: Row[] = [
  {
    title: 'Tenants and reconciles',
    panels: [
      {
        title: 'Tenants by phase',
        type: 'stat',
        queries: [{ expr: 'max by (phase) (tenant_operator_tenants)', legend: '{{phase}}' }],
      },
      {
        title: 'Reconciles by result',
        queries: [
          {
            expr: 'sum by (result) (rate(tenant_operator_reconcile_total[5m]))',
            legend: '{{result}}',
          },
        ],
        unit: 'ops',
      },
      {
        title: 'Reconcile duration (p50, p99)',
        queries: [0.5, 0.99].map((q) => ({
          expr: `histogram_quantile(${q}, sum by (le) (rate(tenant_operator_reconcile_duration_seconds_bucket[5m])))`,
          legend: `p${q * 100}`,
        })),
        unit: 's',
      },
      {
        title: 'Queue depth',
        queries: [{ expr: 'max(tenant_operator_queue_depth)', legend: 'waiting' }],
      },
      {
        title: 'Drift repairs by kind',
        queries: [
          {
            expr: 'sum by (kind) (increase(tenant_operator_drift_repairs_total[1h]))',
            legend: '{{kind}}',
          },
        ],
      },
    ],
  },
  {
    title: 'Operator',
    panels: [
      {
        title: 'Leader',
        description: 'Exactly one replica should show 1.',
        queries: [{ expr: 'tenant_operator_leader', legend: '{{pod}}' }],
      },
      {
        title: 'Watches connected',
        queries: [
          { expr: 'min by (resource) (tenant_operator_watch_connected)', legend: '{{resource}}' },
        ],
      },
      {
        title: 'API requests by code',
        queries: [
          {
            expr: 'sum by (code) (rate(tenant_operator_api_requests_total[5m]))',
            legend: '{{code}}',
          },
        ],
        unit: 'reqps',
      },
      {
        title: 'API writes by resource',
        description: 'Zero in a settled cluster: the operator compares before it writes.',
        queries: [
          {
            expr: 'sum by (resource) (rate(tenant_operator_api_writes_total[5m]))',
            legend: '{{resource}}',
          },
        ],
        unit: 'wps',
      },
      {
        title: 'Resident memory',
        queries: [{ expr: 'tenant_operator_process_resident_memory_bytes', legend: '{{pod}}' }],
        unit: 'bytes',
      },
    ],
  },
  {
    title: 'Backups',
    panels: [
      {
        title: 'Age of the last good backup',
        description: 'The alert TenantBackupTooOld fires past 26 hours.',
        queries: [
          {
            expr: 'time() - max by (tenant) (tenant_operator_backup_last_success_timestamp_seconds)',
            legend: '{{tenant}}',
          },
        ],
        unit: 's',
      },
      {
        title: 'Failed runs since the last good one',
        queries: [
          { expr: 'max by (tenant) (tenant_operator_backup_failures) > 0', legend: '{{tenant}}' },
        ],
      },
      {
        title: 'Latest verification (1 passed, 0 failed)',
        queries: [
          { expr: 'min by (tenant) (tenant_operator_backup_verified)', legend: '{{tenant}}' },
        ],
      },
      {
        title: 'Verifications by result',
        queries: [
          {
            expr: 'sum by (result) (increase(tenant_operator_backup_verifications_total[1h]))',
            legend: '{{result}}',
          },
        ],
      },
      {
        title: 'Backup size and duration',
        queries: [
          {
            expr: 'max by (tenant) (tenant_operator_backup_last_bytes)',
            legend: '{{tenant}} bytes',
          },
          {
            expr: 'max by (tenant) (tenant_operator_backup_last_duration_seconds)',
            legend: '{{tenant}} seconds',
          },
        ],
      },
    ],
  },
  {
    title: 'Erasure',
    panels: [
      {
        title: 'Purges overdue',
        type: 'stat',
        description: 'Closed tenants past their erasure time (legal holds excluded).',
        queries: [{ expr: 'max(tenant_operator_purges_overdue)', legend: 'overdue' }],
      },
      {
        title: 'Legal holds',
        type: 'stat',
        queries: [{ expr: 'max(tenant_operator_legal_holds)', legend: 'held' }],
      },
      {
        title: 'Tenants erased (kept as the record)',
        type: 'stat',
        queries: [{ expr: 'max(tenant_operator_tenants_purged)', legend: 'erased' }],
      },
      {
        title: 'Time until erasure',
        queries: [
          {
            expr: 'max by (tenant) (tenant_operator_purge_due_timestamp_seconds) - time()',
            legend: '{{tenant}}',
          },
        ],
        unit: 's',
      },
      {
        title: 'Erasures completed',
        queries: [
          { expr: 'sum(increase(tenant_operator_purges_completed_total[1d]))', legend: 'erased' },
        ],
      },
    ],
  },
];

const WIDTH = 24;
const PANEL_WIDTH = 8;
const PANEL_HEIGHT = 8;

/** Every PromQL expression the dashboard runs. */
export function dashboardQueries(): string[] {
  return ROWS.flatMap((row) => row.panels.flatMap((p) => p.queries.map((q) => q.expr)));
}

export function grafanaDashboard(): Record<string, unknown> {
  const panels: Record<string, unknown>[] = [];
  let id = 1;
  let y = 0;
  for (const row of ROWS) {
    panels.push({
      id: id++,
      type: 'row',
      title: row.title,
      collapsed: false,
      gridPos: { x: 0, y: y++, w: WIDTH, h: 1 },
      panels: [],
    });
    row.panels.forEach((panel, index) => {
      const x = (index * PANEL_WIDTH) % WIDTH;
      if (index > 0 && x === 0) y += PANEL_HEIGHT;
      panels.push({
        id: id++,
        type: panel.type ?? 'timeseries',
        title: panel.title,
        ...(panel.description ? { description: panel.description } : {}),
        datasource: DATASOURCE,
        gridPos: { x, y, w: PANEL_WIDTH, h: PANEL_HEIGHT },
        fieldConfig: { defaults: { unit: panel.unit ?? 'short' }, overrides: [] },
        options: {},
        targets: panel.queries.map((query, i) => ({
          refId: String.fromCharCode(65 + i),
          datasource: DATASOURCE,
          expr: query.expr,
          legendFormat: query.legend,
        })),
      });
    });
    y += PANEL_HEIGHT;
  }
  return {
    uid: 'tenant-operator',
    title: 'tenant-operator',
    tags: ['tenant-operator'],
    timezone: 'utc',
    schemaVersion: 39,
    version: 1,
    refresh: '1m',
    time: { from: 'now-24h', to: 'now' },
    templating: {
      list: [
        {
          name: 'datasource',
          label: 'Prometheus',
          type: 'datasource',
          query: 'prometheus',
          current: {},
          hide: 0,
        },
      ],
    },
    panels,
  };
}
