// Bench: graceful degradation under overload. One counter Sensor offers several times what an MQTT
// QoS 1 sink sending one reading per message can take, into a bounded durable outbox whose
// `whenFull` drops (dropOldest or dropNewest). A well-behaved agent keeps delivering near the sink's
// capacity, sheds the excess cheaply and counts every reading it dropped, keeps its memory bounded
// and stays responsive. Every loop is bounded in count and time.
// Run alone with `node dist/test/bench/overload.js [dropOldest|dropNewest] [offered/s]`.
import { rmSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { Mosquitto } from '../support/mosquitto.js';
import { BENCH_POLICY_ARGS, AgentProcess, counterSensor, manifestsDir, metricValue, rssMb, sleep } from './harness.js';
import { waitFor } from '../support/ports.js';
import { readOutboxStats } from '../../pkg/outbox/stats.js';

export interface OverloadResult {
  /** Readings/s the Sensor produced over the window. */
  offered: number;
  /** Readings/s the broker acknowledged over the window. */
  delivered: number;
  /** Peak RSS of the agent during the run (MB). */
  rssMb: number;
}

export interface OverloadDetails extends OverloadResult {
  /** Readings/s the outbox dropped (all reasons) over the window. */
  dropped: number;
  /** Slowest admin API answer (GET /metrics) during the window (ms). */
  adminMaxMs: number;
  /** Longest time the Sink reported Connected!=True during the window, from 100 ms samples (ms). */
  disconnectedMs: number;
  /**
   * Readings the Sensor produced over the whole run minus those delivered, dropped (counted) and
   * still queued, read once the agent stopped: 0 when every drop is counted exactly.
   */
  unaccounted: number;
}

export type DropPolicy = 'dropOldest' | 'dropNewest';

/** At most this long for the outbox (16 MiB) to fill before the warm-up starts. */
const FILL_TIMEOUT_MS = 30_000;
const WARMUP_MS = 2000;
const WINDOW_MS = 6000;
const SAMPLE_MS = 100;

function overloadSink(url: string, whenFull: DropPolicy): string {
  return `apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: bench }
spec:
  selector: {}
  mqtt: { url: "${url}", qos: 1, payload: reading, topic: "bench/{sensor}" }
  batch: { maxReadings: 500, maxDelay: 50ms }
  outbox: { maxBytes: 16Mi, whenFull: ${whenFull} }
`;
}

async function timed<T>(work: () => Promise<T>): Promise<{ value: T; ms: number }> {
  const started = performance.now();
  const value = await work();
  return { value, ms: performance.now() - started };
}

/**
 * Offers `offered` readings/s (default 500k) with `whenFull` (default dropOldest), against `brokerUrl`
 * when given, else its own Mosquitto.
 */
export async function benchOverloadDetailed(brokerUrl?: string, whenFull: DropPolicy = 'dropOldest', offered = 500_000): Promise<OverloadDetails> {
  const broker = brokerUrl ? undefined : await Mosquitto.start();
  const url = brokerUrl ?? broker!.url;
  const dir = manifestsDir({ 'sensor.yaml': counterSensor('counter', '10ms', Math.max(1, Math.round(offered / 100))), 'sink.yaml': overloadSink(url, whenFull) });
  const agent = await AgentProcess.start({ manifests: dir, deviceId: 'bench', extraArgs: [...BENCH_POLICY_ARGS, '--log-level', 'error'] });
  let peakRss = 0;
  let stopped = false;
  try {
    const pid = agent.child.pid!;
    // The window measures a full outbox shedding, not one still filling up.
    const fillEnd = Date.now() + FILL_TIMEOUT_MS;
    while (Date.now() < fillEnd && (await agent.condition('Sink', 'bench', 'BufferFull'))?.status !== 'True') {
      peakRss = Math.max(peakRss, rssMb(pid));
      await sleep(SAMPLE_MS);
    }
    const warmupEnd = Date.now() + WARMUP_MS;
    while (Date.now() < warmupEnd) {
      peakRss = Math.max(peakRss, rssMb(pid));
      await sleep(SAMPLE_MS);
    }
    const first = await agent.metrics();
    const started = Date.now();
    let adminMaxMs = 0;
    let disconnectedSince: number | undefined;
    let disconnectedMs = 0;
    while (Date.now() - started < WINDOW_MS) {
      peakRss = Math.max(peakRss, rssMb(pid));
      const { value: connected, ms } = await timed(async () => (await agent.condition('Sink', 'bench', 'Connected'))?.status === 'True');
      adminMaxMs = Math.max(adminMaxMs, ms);
      const now = Date.now();
      if (!connected) disconnectedSince ??= now;
      else disconnectedSince = undefined;
      if (disconnectedSince !== undefined) disconnectedMs = Math.max(disconnectedMs, now - disconnectedSince);
      await sleep(SAMPLE_MS);
    }
    const { value: last, ms } = await timed(() => agent.metrics());
    adminMaxMs = Math.max(adminMaxMs, ms);
    const seconds = (Date.now() - started) / 1000;
    const delta = (name: string, filter = '') => (metricValue(last, name, filter) - metricValue(first, name, filter)) / seconds;
    peakRss = Math.max(peakRss, rssMb(pid));
    // Exact drop counts: stop the Sensor, let the agent stop cleanly (the outbox persists its
    // counters and queue), and account for every reading produced.
    rmSync(path.join(dir, 'sensor.yaml'));
    const produced = await waitFor(async () => {
      const text = await agent.metrics();
      const now = metricValue(text, 'sensorlet_readings_total');
      return (await agent.resource('Sensor', 'counter')) === undefined ? now : undefined;
    }, { timeoutMs: 10_000, intervalMs: 200, what: 'the Sensor to stop' });
    // Then the Sink: its outbox closes and persists counters and queue; no more acks after that.
    rmSync(path.join(dir, 'sink.yaml'));
    await waitFor(async () => (await agent.resource('Sink', 'bench')) === undefined, { timeoutMs: 10_000, intervalMs: 200, what: 'the Sink to stop' });
    await sleep(1000);
    const published = metricValue(await agent.metrics(), 'sensorlet_sink_published_total', 'sink="bench"');
    stopped = true;
    await agent.stop();
    const outbox = (await readOutboxStats(agent.stateDir)).find((item) => item.sink === 'default.bench');
    const droppedTotal = outbox ? Object.values(outbox.dropped).reduce((sum, count) => sum + count, 0) : NaN;
    return {
      offered: delta('sensorlet_readings_total'),
      delivered: delta('sensorlet_sink_published_total', 'sink="bench"'),
      dropped: delta('sensorlet_outbox_dropped_total', 'sink="bench"'),
      rssMb: peakRss,
      adminMaxMs,
      disconnectedMs,
      unaccounted: produced - published - droppedTotal - (outbox?.readings ?? NaN),
    };
  } finally {
    if (!stopped) await agent.kill();
    rmSync(dir, { recursive: true, force: true });
    rmSync(agent.stateDir, { recursive: true, force: true });
    await broker?.stop();
  }
}

export async function benchOverload(): Promise<{ offered: number; delivered: number; rssMb: number }> {
  const { offered, delivered, rssMb: rss } = await benchOverloadDetailed();
  return { offered, delivered, rssMb: rss };
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const runs = Number(process.env.BENCH_RUNS ?? 1);
  for (let i = 0; i < runs; i++) {
    const result = await benchOverloadDetailed(undefined, (process.argv[2] as DropPolicy | undefined) ?? 'dropOldest', Number(process.argv[3] ?? 500_000));
    console.log(
      `overload: offered ${result.offered.toFixed(0)}/s, delivered ${result.delivered.toFixed(0)}/s, dropped ${result.dropped.toFixed(0)}/s, ` +
        `peak RSS ${result.rssMb.toFixed(1)} MB, slowest admin answer ${result.adminMaxMs.toFixed(0)} ms, longest Connected!=True ${result.disconnectedMs} ms, unaccounted ${result.unaccounted}`,
    );
  }
  process.exit(0);
}
