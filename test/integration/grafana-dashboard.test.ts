// The Grafana dashboard: valid dashboard JSON in the repository, shipped by the chart as a
// ConfigMap for Grafana's dashboard sidecar only when grafanaDashboard.enabled (off by default).
// That it queries only metrics the agent exports is checked against a running agent's /metrics
// in cli-get.test.ts.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import yaml from 'js-yaml';
import { PACKAGE_ROOT } from '../../pkg/api/schemas.js';

const CHART = path.join(PACKAGE_ROOT, 'helm', 'sensorlet');

test('the dashboard JSON: uid, a Prometheus data source variable, panels for sensors, sink connections, outboxes, firmware and the process', () => {
  const dashboard = JSON.parse(readFileSync(path.join(CHART, 'dashboards', 'sensorlet.json'), 'utf8'));
  assert.equal(dashboard.uid, 'sensorlet');
  assert.ok(dashboard.templating.list.some((variable: { type: string; query: string }) => variable.type === 'datasource' && variable.query === 'prometheus'));
  const ids = dashboard.panels.map((panel: { id: number }) => panel.id);
  assert.equal(new Set(ids).size, ids.length, 'panel ids are unique');
  const expressions = dashboard.panels.flatMap((panel: { targets?: { expr: string }[] }) => (panel.targets ?? []).map((target) => target.expr)).join('\n');
  for (const metric of [
    'sensorlet_readings_total',
    'sensorlet_sink_connected',
    'sensorlet_sink_queue_depth',
    'sensorlet_outbox_dropped_total',
    'sensorlet_firmware_phase',
    'sensorlet_firmware_download_progress_ratio',
    'process_resident_memory_bytes',
    'process_cpu_seconds_total',
  ]) {
    assert.ok(expressions.includes(metric), `a panel shows ${metric}`);
  }
  // Counters are only ever shown as rates; per-resource panels filter by the namespace variable.
  for (const expression of expressions.split('\n')) {
    for (const counter of expression.match(/\b\w+_total\b/g) ?? []) {
      assert.match(expression, new RegExp(`rate\\(${counter}\\{`), `${counter} is shown as a rate: ${expression}`);
    }
    if (/\b(sensor|sink|firmware)\b/.test(expression) && expression.startsWith('sum by (namespace') ) assert.match(expression, /namespace=~"\$namespace"/);
  }
});

test('the chart ships it as a ConfigMap with the grafana_dashboard label, only when grafanaDashboard.enabled (default off)', () => {
  const values = yaml.load(readFileSync(path.join(CHART, 'values.yaml'), 'utf8')) as { grafanaDashboard: { enabled: boolean; labels: Record<string, string> } };
  assert.equal(values.grafanaDashboard.enabled, false, 'off by default');
  assert.equal(values.grafanaDashboard.labels.grafana_dashboard, '1', "the sidecar's default label");
  const template = readFileSync(path.join(CHART, 'templates', 'grafana-dashboard.yaml'), 'utf8');
  assert.match(template, /^\{\{- if \.Values\.grafanaDashboard\.enabled \}\}$/m, 'rendered only when enabled');
  assert.match(template, /^kind: ConfigMap$/m);
  assert.match(template, /\{\{- with \.Values\.grafanaDashboard\.labels \}\}\n\s+\{\{- toYaml \. \| nindent 4 \}\}/, 'the labels the sidecar looks for');
  assert.match(template, /\.Files\.Get "dashboards\/sensorlet\.json"/, 'the dashboard of the repository, not a copy');
  const readme = readFileSync(path.join(PACKAGE_ROOT, 'README.md'), 'utf8');
  assert.match(readme, /helm\/sensorlet\/dashboards\/sensorlet\.json/);
});
