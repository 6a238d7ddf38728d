// Prometheus metrics, one registry per agent. Every error that is logged also counts here.
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export class Metrics {
  readonly registry = new Registry();
  readonly readings = new Counter({ name: 'sensorlet_readings_total', help: 'Readings produced by drivers.', labelNames: ['sensor'], registers: [this.registry] });
  readonly unrouted = new Counter({
    name: 'sensorlet_readings_unrouted_total',
    help: 'Readings dropped because no Sink selects their Sensor (its Routed condition says NoMatchingSink).',
    labelNames: ['sensor'],
    registers: [this.registry],
  });
  readonly driverErrors = new Counter({ name: 'sensorlet_driver_errors_total', help: 'Driver reads that failed, by reason.', labelNames: ['sensor', 'reason'], registers: [this.registry] });
  readonly published = new Counter({ name: 'sensorlet_sink_published_total', help: 'Readings the far end acknowledged.', labelNames: ['sink'], registers: [this.registry] });
  readonly connectionsLost = new Counter({
    name: 'sensorlet_sink_connections_lost_total',
    help: 'Established sink connections that went down, by reason (SessionTakenOver: another client connected with the same MQTT client id).',
    labelNames: ['sink', 'reason'],
    registers: [this.registry],
  });
  readonly takeovers = new Counter({
    name: 'sensorlet_sink_takeovers_total',
    help: 'Sink connections the broker closed because another client connected with the same client id.',
    labelNames: ['sink'],
    registers: [this.registry],
  });
  readonly sendErrors = new Counter({ name: 'sensorlet_sink_send_errors_total', help: 'Batches whose delivery failed and will be retried.', labelNames: ['sink', 'reason'], registers: [this.registry] });
  readonly rejected = new Counter({
    name: 'sensorlet_sink_rejected_total',
    help: 'Readings the far end refused for good (e.g. CoAP 4.xx) and dropped without retry, by response code or reason.',
    labelNames: ['sink', 'code'],
    registers: [this.registry],
  });
  readonly queueDepth = new Gauge({ name: 'sensorlet_sink_queue_depth', help: 'Readings waiting in the sink outbox.', labelNames: ['sink'], registers: [this.registry] });
  readonly outboxBytes = new Gauge({ name: 'sensorlet_outbox_bytes', help: 'Bytes held by the outbox.', labelNames: ['sink'], registers: [this.registry] });
  readonly outboxReadings = new Gauge({ name: 'sensorlet_outbox_readings', help: 'Readings held by the outbox.', labelNames: ['sink'], registers: [this.registry] });
  readonly outboxOldest = new Gauge({ name: 'sensorlet_outbox_oldest_seconds', help: 'Age of the oldest reading in the outbox.', labelNames: ['sink'], registers: [this.registry] });
  readonly outboxDropped = new Gauge({ name: 'sensorlet_outbox_dropped_total', help: 'Readings the outbox dropped, by reason.', labelNames: ['sink', 'reason'], registers: [this.registry] });
  readonly outboxCorrupt = new Gauge({ name: 'sensorlet_outbox_corrupt_chunks_total', help: 'Outbox chunks that failed their checksum and were moved aside.', labelNames: ['sink'], registers: [this.registry] });
  readonly outboxTornFrames = new Gauge({ name: 'sensorlet_outbox_torn_frames_total', help: 'Torn frames (cut short by a crash) found in outbox chunk files at start-up; every whole frame before one was kept.', labelNames: ['sink'], registers: [this.registry] });
  readonly sensorDropped = new Counter({
    name: 'sensorlet_sensor_readings_dropped_total',
    help: 'Readings a Sensor dropped before any Sink saw them, by reason (e.g. SequenceStateWriteFailed: the disk refused to persist sequence numbers).',
    labelNames: ['sensor', 'reason'],
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
    labelNames: ['sink'],
    registers: [this.registry],
  });
  readonly outboxUnwrittenBytes = new Gauge({
    name: 'sensorlet_outbox_unwritten_bytes',
    help: 'Bytes of sealed outbox chunks held in memory because they are not written to disk yet.',
    labelNames: ['sink'],
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
    help: 'Admin API requests refused for their credentials, by HTTP status (401: none or not accepted; 403: not allowed).',
    labelNames: ['status'],
    registers: [this.registry],
  });
  readonly errorsLogged = new Counter({ name: 'sensorlet_errors_total', help: 'Errors logged, by component and reason.', labelNames: ['component', 'reason'], registers: [this.registry] });

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'sensorlet_process_' });
  }
}
