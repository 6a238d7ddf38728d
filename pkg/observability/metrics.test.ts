import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Metrics, resourceLabelNames, resourceLabels } from './metrics.js';

test('per-resource labels: namespace first, then the kind label, then the rest', () => {
  assert.deepEqual(resourceLabelNames('sink', 'reason'), ['namespace', 'sink', 'reason']);
  assert.deepEqual(resourceLabels('sensor', { namespace: 'plant', name: 'temp' }, { reason: 'Timeout' }), { namespace: 'plant', sensor: 'temp', reason: 'Timeout' });
});

test('every metric follows the conventions: counters end in _total, per-resource series carry namespace, process metrics keep their standard names', async () => {
  const metrics = new Metrics();
  const kindLabels = ['sensor', 'sink', 'firmware', 'certificate', 'actuator'];
  for (const metric of metrics.registry.getMetricsAsArray() as unknown as { get(): Promise<{ name: string; type: string }> }[]) {
    const { name, type } = await metric.get();
    const labelNames = (metric as unknown as { labelNames: string[] }).labelNames ?? [];
    if (type === 'counter') assert.match(name, /_total$/, `${name} is a counter: its name ends in _total`);
    // (prom-client's own nodejs_active_resources_total is a gauge: Node's default set, as stock dashboards know it.)
    else if (name.startsWith('sensorlet_')) assert.doesNotMatch(name, /_total$/, `${name} is a ${type}: only counters end in _total`);
    if (labelNames.some((label) => kindLabels.includes(label))) assert.equal(labelNames[0], 'namespace', `${name} is per resource: namespace first`);
    if (!name.startsWith('sensorlet_')) assert.match(name, /^(process|nodejs)_/, `${name}: only Node's default metrics go without the sensorlet_ prefix`);
  }
  const text = await metrics.registry.metrics();
  assert.match(text, /^# TYPE process_cpu_seconds_total counter$/m);
  assert.match(text, /^# TYPE nodejs_heap_size_used_bytes gauge$/m);
  assert.doesNotMatch(text, /sensorlet_process_/);
  assert.match(text, /^# TYPE sensorlet_outbox_dropped_total counter$/m);
  assert.match(text, /^# TYPE sensorlet_outbox_corrupt_chunks_total counter$/m);
  assert.match(text, /^# TYPE sensorlet_sink_connected gauge$/m);
  assert.match(text, /^# TYPE sensorlet_firmware_phase gauge$/m);
  assert.match(text, /^# TYPE sensorlet_firmware_download_progress_ratio gauge$/m);
});

test('advanceCounter exports a total kept elsewhere as a counter that only adds what is new', async () => {
  const metrics = new Metrics();
  const sink = resourceLabels('sink', { namespace: 'a', name: 'up' });
  const value = async () => (await metrics.outboxDropped.get()).values.find((sample) => sample.labels.reason === 'dropOldest')?.value;
  metrics.advanceCounter(metrics.outboxDropped, { ...sink, reason: 'dropOldest' }, 0);
  assert.equal(await value(), 0, 'the series exists from the first report');
  metrics.advanceCounter(metrics.outboxDropped, { ...sink, reason: 'dropOldest' }, 5);
  metrics.advanceCounter(metrics.outboxDropped, { ...sink, reason: 'dropOldest' }, 5);
  metrics.advanceCounter(metrics.outboxDropped, { ...sink, reason: 'dropOldest' }, 8);
  assert.equal(await value(), 8);
  metrics.advanceCounter(metrics.outboxDropped, { ...sink, reason: 'dropOldest' }, 2);
  assert.equal(await value(), 10, 'a total that went down is a new source: added whole, never subtracted');
});

test('forgetResource removes the gauges of one resource only, and keeps counters', async () => {
  const metrics = new Metrics();
  const a = resourceLabels('sink', { namespace: 'x', name: 'up' });
  const b = resourceLabels('sink', { namespace: 'y', name: 'up' });
  metrics.queueDepth.set(a, 3);
  metrics.queueDepth.set(b, 4);
  metrics.connected.set({ ...a, connection: 'default' }, 1);
  metrics.published.inc(a, 7);
  await metrics.forgetResource('sink', { namespace: 'x', name: 'up' });
  const text = await metrics.registry.metrics();
  assert.doesNotMatch(text, /sensorlet_sink_queue_depth\{namespace="x"/);
  assert.match(text, /sensorlet_sink_queue_depth\{namespace="y",sink="up"\} 4/, 'the same name in another namespace is another series');
  assert.doesNotMatch(text, /sensorlet_sink_connected\{namespace="x"/);
  assert.match(text, /sensorlet_sink_published_total\{namespace="x",sink="up"\} 7/);
});
