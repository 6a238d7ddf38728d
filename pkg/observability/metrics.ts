// Prometheus metrics, one registry per agent. Every error that is logged also counts here.
//
// Conventions (https://prometheus.io/docs/practices/naming/), which every metric added here follows:
// - Names are `sensorlet_<noun>_<what>_<unit>`; a counter ends in `_total` and is a Counter (only
//   ever goes up, from 0 at process start); a value that goes up and down is a Gauge without `_total`.
// - Every per-resource series carries `namespace` and one label named after the kind, lowercase,
//   holding the resource's name (`sensor`, `sink`, `firmware`, `certificate`, `actuator`, ...):
//   Sensors of the same name in two namespaces are two series. Build the label names with
//   `resourceLabelNames(kind, ...)` and the labels with `resourceLabels(kind, ref, ...)`, never by hand.
// - A per-resource gauge is removed when its resource goes away: the controller manager calls
//   `forgetResource` for every kind after the reconcile that finds it deleted; counters stay.
// - A total kept elsewhere (the outbox persists its drop counts) is exported as a counter through
//   `advanceCounter`, which adds only what is new since the last report.
// - Node's default process metrics keep their standard names (`process_*`, `nodejs_*`), so stock
//   Node.js dashboards work unchanged.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

/** What a per-resource series names: the resource's namespace and name. */
export interface ResourceRef {
  namespace: string;
  name: string;
}

/** The label names of a per-resource metric: `namespace`, the kind's label (e.g. `sensor`), then `more`. */
export function resourceLabelNames<K extends string, M extends string = never>(kind: K, ...more: M[]): ('namespace' | K | M)[] {
  return ['namespace', kind, ...more];
}

/** The labels of one resource's series: `{ namespace, [kind]: name, ...more }`. */
export function resourceLabels<K extends string>(kind: K, ref: ResourceRef, more: Record<string, string> = {}): Record<string, string> {
  return { namespace: ref.namespace, [kind]: ref.name, ...more };
}

export class Metrics {
  readonly registry = new Registry();
  /** Per counter and label set, the total already counted (see advanceCounter). */
  private readonly counted = new Map<string, number>();
  readonly readings = new Counter({ name: 'sensorlet_readings_total', help: 'Readings produced by drivers.', labelNames: resourceLabelNames('sensor'), registers: [this.registry] });
  readonly unrouted = new Counter({
    name: 'sensorlet_readings_unrouted_total',
    help: 'Readings dropped because no Sink selects their Sensor (its Routed condition says NoMatchingSink).',
    labelNames: resourceLabelNames('sensor'),
    registers: [this.registry],
  });
  readonly driverErrors = new Counter({ name: 'sensorlet_driver_errors_total', help: 'Driver reads that failed, by reason.', labelNames: resourceLabelNames('sensor', 'reason'), registers: [this.registry] });
  readonly published = new Counter({ name: 'sensorlet_sink_published_total', help: 'Readings the far end acknowledged.', labelNames: resourceLabelNames('sink'), registers: [this.registry] });
  readonly connected = new Gauge({
    name: 'sensorlet_sink_connected',
    help: '1 while a sink connection is up, else 0; one series per connection (`connection`: its tenant, its Certificate, or "default").',
    labelNames: resourceLabelNames('sink', 'connection'),
    registers: [this.registry],
  });
  readonly connectionsLost = new Counter({
    name: 'sensorlet_sink_connections_lost_total',
    help: 'Established sink connections that went down, by reason (SessionTakenOver: another client connected with the same MQTT client id).',
    labelNames: resourceLabelNames('sink', 'reason'),
    registers: [this.registry],
  });
  readonly takeovers = new Counter({
    name: 'sensorlet_sink_takeovers_total',
    help: 'Sink connections the broker closed because another client connected with the same client id.',
    labelNames: resourceLabelNames('sink'),
    registers: [this.registry],
  });
  readonly sendErrors = new Counter({ name: 'sensorlet_sink_send_errors_total', help: 'Batches whose delivery failed and will be retried.', labelNames: resourceLabelNames('sink', 'reason'), registers: [this.registry] });
  readonly rejected = new Counter({
    name: 'sensorlet_sink_rejected_total',
    help: 'Readings the far end refused for good (e.g. CoAP 4.xx) and dropped without retry, by response code or reason.',
    labelNames: resourceLabelNames('sink', 'code'),
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({ name: 'sensorlet_sink_queue_depth', help: 'Readings waiting in the sink outbox.', labelNames: resourceLabelNames('sink'), registers: [this.registry] });
  readonly outboxBytes = new Gauge({ name: 'sensorlet_outbox_bytes', help: 'Bytes held by the outbox.', labelNames: resourceLabelNames('sink'), registers: [this.registry] });
  readonly outboxReadings = new Gauge({ name: 'sensorlet_outbox_readings', help: 'Readings held by the outbox.', labelNames: resourceLabelNames('sink'), registers: [this.registry] });
  readonly outboxOldest = new Gauge({ name: 'sensorlet_outbox_oldest_seconds', help: 'Age of the oldest reading in the outbox.', labelNames: resourceLabelNames('sink'), registers: [this.registry] });
  readonly outboxDropped = new Counter({
    name: 'sensorlet_outbox_dropped_total',
    help: 'Readings the outbox dropped, by reason (dropOldest, dropNewest, maxAge); counted since the outbox was created, across restarts.',
    labelNames: resourceLabelNames('sink', 'reason'),
    registers: [this.registry],
  });
  readonly outboxCorrupt = new Counter({
    name: 'sensorlet_outbox_corrupt_chunks_total',
    help: 'Outbox chunks that failed their checksum and were moved aside; counted since the outbox was created, across restarts.',
    labelNames: resourceLabelNames('sink'),
    registers: [this.registry],
  });
  readonly outboxTornFrames = new Counter({
    name: 'sensorlet_outbox_torn_frames_total',
    help: 'Torn frames (cut short by a crash) found in outbox chunk files at start-up; every whole frame before one was kept.',
    labelNames: resourceLabelNames('sink'),
    registers: [this.registry],
  });
  readonly sensorDropped = new Counter({
    name: 'sensorlet_sensor_readings_dropped_total',
    help: 'Readings a Sensor dropped before any Sink saw them, by reason (e.g. SequenceStateWriteFailed: the disk refused to persist sequence numbers).',
    labelNames: resourceLabelNames('sensor', 'reason'),
    registers: [this.registry],
  });
  readonly stateWriteErrors = new Counter({
    name: 'sensorlet_state_write_errors_total',
    help: 'Writes to the state dir that failed and are retried, by area (status, generations, sequences: each write; outbox: each episode until a chunk write succeeds again) and reason (NoSpaceLeft, ReadOnlyFilesystem, IOError, ...).',
    labelNames: ['area', 'reason'],
    registers: [this.registry],
  });
  readonly stateRecovered = new Counter({
    name: 'sensorlet_state_recovered_total',
    help: 'Damaged state repaired at start-up, by area and reason (OutboxIndexRebuilt: meta.db rebuilt from the chunk files; SequenceStateCorrupt: sequence numbers resumed with a forward jump).',
    labelNames: ['area', 'reason'],
    registers: [this.registry],
  });
  readonly outboxStorageFull = new Gauge({
    name: 'sensorlet_outbox_storage_full',
    help: '1 while the outbox cannot write its chunks to disk (full, read-only, failing) and holds them in memory, else 0.',
    labelNames: resourceLabelNames('sink'),
    registers: [this.registry],
  });
  readonly outboxUnwrittenBytes = new Gauge({
    name: 'sensorlet_outbox_unwritten_bytes',
    help: 'Bytes of sealed outbox chunks held in memory because they are not written to disk yet.',
    labelNames: resourceLabelNames('sink'),
    registers: [this.registry],
  });
  readonly firmwarePhase = new Gauge({
    name: 'sensorlet_firmware_phase',
    help: 'The update phase of a Firmware on this node: 1 for its current phase, 0 for the others.',
    labelNames: resourceLabelNames('firmware', 'phase'),
    registers: [this.registry],
  });
  readonly firmwareProgress = new Gauge({
    name: 'sensorlet_firmware_download_progress_ratio',
    help: 'Share of the Firmware artifact downloaded, 0 to 1.',
    labelNames: resourceLabelNames('firmware'),
    registers: [this.registry],
  });
  readonly firmwareDownloadedBytes = new Gauge({
    name: 'sensorlet_firmware_download_bytes',
    help: 'Bytes of the Firmware artifact downloaded so far.',
    labelNames: resourceLabelNames('firmware'),
    registers: [this.registry],
  });
  readonly firmwareSizeBytes = new Gauge({
    name: 'sensorlet_firmware_artifact_size_bytes',
    help: 'Size of the Firmware artifact being downloaded (spec.artifact.size).',
    labelNames: resourceLabelNames('firmware'),
    registers: [this.registry],
  });
  readonly actuatorWrites = new Counter({
    name: 'sensorlet_actuator_writes_total',
    help: 'Values an Actuator wrote to its device (desired values, drift corrections and fail-safes).',
    labelNames: ['namespace', 'actuator'],
    registers: [this.registry],
  });
  readonly actuatorFailures = new Counter({
    name: 'sensorlet_actuator_failures_total',
    help: 'Actuator reconcile passes that did not leave the device in sync, by reason (WriteFailed, ReadBackMismatch, DeviceGone).',
    labelNames: ['namespace', 'actuator', 'reason'],
    registers: [this.registry],
  });
  readonly actuatorDriftCorrections = new Counter({
    name: 'sensorlet_actuator_drift_corrections_total',
    help: 'Times an Actuator found its device changed behind its back (reset, local change) and wrote the desired value again.',
    labelNames: ['namespace', 'actuator'],
    registers: [this.registry],
  });
  readonly actuatorRemoteCommands = new Counter({
    name: 'sensorlet_actuator_remote_commands_total',
    help: 'Remote desired values received through Sinks (mqtt.commands), by result (accepted, refused; dropped: an accepted value the changed spec no longer allows) and reason; actuator is empty when the topic named none this agent runs.',
    labelNames: ['namespace', 'actuator', 'result', 'reason'],
    registers: [this.registry],
  });
  readonly reconciles = new Counter({ name: 'sensorlet_reconcile_total', help: 'Reconcile passes by kind and result.', labelNames: ['kind', 'result'], registers: [this.registry] });
  readonly reconcileDuration = new Histogram({
    name: 'sensorlet_reconcile_duration_seconds',
    help: 'Time spent in one reconcile pass.',
    labelNames: ['kind'],
    buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
    registers: [this.registry],
  });
  readonly schedulerLateness = new Histogram({
    name: 'sensorlet_scheduler_lateness_seconds',
    help: 'How late a poll started against its due time (scheduler jitter).',
    buckets: [0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.5],
    registers: [this.registry],
  });
  readonly manifestFilesSkipped = new Gauge({
    name: 'sensorlet_manifest_files_skipped',
    help: 'Entries of the manifests folder not loaded now (unreadable, too large, not a regular file, link loop...), by reason.',
    labelNames: ['reason'],
    registers: [this.registry],
  });
  readonly adminDenied = new Counter({
    name: 'sensorlet_admin_denied_total',
    help: 'Admin API requests refused, by HTTP status (401: credentials none or not accepted; 403: not allowed; 421: a Host header that is not loopback where nothing authenticates).',
    labelNames: ['status'],
    registers: [this.registry],
  });
  readonly errorsLogged = new Counter({ name: 'sensorlet_errors_total', help: 'Errors logged, by component and reason.', labelNames: ['component', 'reason'], registers: [this.registry] });

  constructor() {
    // No prefix: process_cpu_seconds_total, process_resident_memory_bytes, nodejs_heap_size_used_bytes...
    collectDefaultMetrics({ register: this.registry });
  }

  /**
   * Exports a total counted elsewhere (and maybe persisted) as a counter: adds what is new since
   * the last call for these labels. A total that went down belongs to a new source (an outbox
   * recreated): it is added whole, as a counter cannot go down.
   */
  advanceCounter(counter: Counter<string>, labels: Record<string, string>, total: number): void {
    const key = `${(counter as unknown as { name: string }).name}\u0000${JSON.stringify(labels)}`;
    const before = this.counted.get(key);
    this.counted.set(key, total);
    // inc(0) too: the series exists from the first report, so a dashboard shows 0, not "no data".
    counter.inc(labels, before === undefined || total < before ? total : total - before);
  }

  /**
   * Removes the gauge series of a resource that went away (a deleted Sink's queue depth would
   * otherwise stay on dashboards for ever). Counters are kept: their totals stay true.
   */
  async forgetResource(kind: string, ref: ResourceRef): Promise<void> {
    for (const metric of this.registry.getMetricsAsArray()) {
      // Only this kind's gauges: get() on the others would run their collect functions (the process
      // metrics read /proc) once per deleted resource.
      const labelNames = (metric as unknown as { labelNames?: string[] }).labelNames ?? [];
      if (!(metric instanceof Gauge) || !labelNames.includes(kind)) continue;
      const data = await metric.get();
      for (const sample of data.values) {
        const labels = sample.labels as Record<string, string>;
        if (labels.namespace === ref.namespace && labels[kind] === ref.name) metric.remove(labels);
      }
    }
  }
}
