import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { test } from 'node:test';
import { DASHBOARD_FILE, renderDashboard } from '../../src/cli/gen-crds.ts';
import { dashboardQueries, grafanaDashboard } from '../../src/metrics/dashboard.ts';
import { createMetrics } from '../../src/metrics/registry.ts';

// The Grafana dashboard: checked in as generated, querying only metrics the
// operator really exports, every panel on the dashboard's data source.

interface Panel {
  id: number;
  type: string;
  title: string;
  datasource?: { uid: string };
  targets?: { expr: string; datasource: { uid: string } }[];
}

test('the checked-in dashboard equals what gen:crds generates', async () => {
  const [content] = renderDashboard().values();
  const checkedIn = await readFile(
    new URL(`../../monitoring/${DASHBOARD_FILE}`, import.meta.url),
    'utf8',
  );
  assert.equal(checkedIn, content, `monitoring/${DASHBOARD_FILE} is stale: run npm run gen:crds`);
});

test('every metric a panel reads is registered by the operator', async () => {
  const { registry } = createMetrics();
  const registered = new Set((await registry.getMetricsAsJSON()).map((m) => m.name));
  const queries = dashboardQueries();
  assert.ok(queries.length >= 15, `only ${queries.length} queries`);
  for (const expr of queries) {
    const names = expr.match(/tenant_operator_[a-z_]+/g) ?? [];
    assert.ok(names.length > 0, `${expr} reads no metric of the operator`);
    for (const name of names) {
      // A histogram is registered by its base name.
      const base = name.replace(/_(bucket|sum|count)$/, '');
      assert.ok(registered.has(name) || registered.has(base), `${expr}: ${name} unknown`);
    }
  }
});

test('panel ids are unique and every query uses the datasource variable', () => {
  const dashboard = grafanaDashboard() as {
    panels: Panel[];
    templating: { list: { name: string }[] };
  };
  const ids = dashboard.panels.map((p) => p.id);
  assert.equal(new Set(ids).size, ids.length);
  assert.ok(dashboard.templating.list.some((v) => v.name === 'datasource'));
  const graphs = dashboard.panels.filter((p) => p.type !== 'row');
  assert.ok(graphs.length > 0);
  for (const panel of graphs) {
    assert.equal(panel.datasource?.uid, '${datasource}', panel.title);
    assert.ok(panel.targets && panel.targets.length > 0, panel.title);
    for (const target of panel.targets) assert.equal(target.datasource.uid, '${datasource}');
  }
});
