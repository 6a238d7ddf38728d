// `npm run bench`: every performance figure the issues ask for, each beside its baseline measured in
// the same run. Throughputs are the median of several runs. `npm run bench -- NAME...` runs a subset
// (throughput, memory, backlog, scheduler, serial, mtls, coap, cluster, fleet, overload, ota, admin, console).
import mqtt from 'mqtt';
import { spawnSync } from 'node:child_process';
import { rmSync, writeFileSync } from 'node:fs';
import { Mosquitto } from '../support/mosquitto.js';
import { waitFor } from '../support/ports.js';
import {
  AgentProcess, BENCH_POLICY_ARGS, counterSensor, cpuSeconds, deliveredRate, histogramQuantile, manifestsDir, median, metricValue, mqttSink, repeat, rssMb, sleep,
} from './harness.js';

const RUNS = Number(process.env.BENCH_RUNS ?? 3);
const results: { figure: string; value: string; target?: string; ok?: boolean }[] = [];

function report(figure: string, value: string, target?: string, ok?: boolean): void {
  results.push({ figure, value, target, ok });
  console.log(`${figure}: ${value}${target ? `   (target ${target}: ${ok ? 'met' : 'NOT met'})` : ''}`);
}

const SAMPLE_PAYLOAD = JSON.stringify({ device: 'bench', sensor: 'counter', namespace: 'default', seq: 123456, time: new Date().toISOString(), quality: 'good', value: 123456 });

/** The baseline: mqtt.js alone publishing QoS 1 messages of a reading's size, as fast as acks allow. */
async function rawMqttRate(url: string, messages = 30_000): Promise<number> {
  const client = await mqtt.connectAsync(url, { clean: true, protocolVersion: 4 });
  const started = performance.now();
  const pending: Promise<unknown>[] = [];
  for (let i = 0; i < messages; i++) pending.push(client.publishAsync('bench/raw', SAMPLE_PAYLOAD, { qos: 1 }));
  await Promise.all(pending);
  const rate = messages / ((performance.now() - started) / 1000);
  await client.endAsync();
  return rate;
}

/** Fresh manifests and state folders for one run, removed afterwards whatever happens (an outbox can hold ~100 MB). */
async function inFreshFolders<T>(files: Record<string, string>, run: (manifests: string, stateDir: string) => Promise<T>): Promise<T> {
  const manifests = manifestsDir(files);
  const stateDir = manifestsDir({});
  try {
    return await run(manifests, stateDir);
  } finally {
    rmSync(stateDir, { recursive: true, force: true });
    rmSync(manifests, { recursive: true, force: true });
  }
}

async function withAgent<T>(files: Record<string, string>, run: (agent: AgentProcess) => Promise<T>): Promise<T> {
  return inFreshFolders(files, async (manifests, stateDir) => {
    const agent = await AgentProcess.start({ manifests, stateDir, extraArgs: [...BENCH_POLICY_ARGS, '--log-level', 'warn'] });
    try {
      return await run(agent);
    } finally {
      await agent.kill();
    }
  });
}

/** Offered readings/s → delivered readings/s, over a steady window. */
async function deliveredAt(url: string, payload: 'reading' | 'batch', offered: number): Promise<number> {
  // A counter Sensor every 10 ms, so the offered rate is set by samplesPerRead.
  const files = {
    'sensor.yaml': counterSensor('counter', '10ms', Math.max(1, Math.round(offered / 100))),
    'sink.yaml': mqttSink('bench', url, { payload, maxReadings: payload === 'batch' ? 2000 : 500, maxDelay: '50ms' }),
  };
  return withAgent(files, (agent) => deliveredRate(agent, 'bench', 2000, 4000));
}

/**
 * End-to-end capacity: the offered rate steps up until the agent no longer keeps up (delivers under
 * 90 % of it), and the figure is the most it delivered at any step. Offering far beyond capacity
 * would measure something else: the CPU the agent then spends producing and storing readings it
 * cannot send yet (the overload section measures that case).
 */
async function capacity(url: string, payload: 'reading' | 'batch', offeredSteps: number[]): Promise<{ delivered: number; steps: string }> {
  let best = 0;
  const steps: string[] = [];
  for (const offered of offeredSteps) {
    const delivered = await deliveredAt(url, payload, offered);
    steps.push(`${(offered / 1000).toFixed(0)}k→${(delivered / 1000).toFixed(1)}k`);
    best = Math.max(best, delivered);
    if (delivered < 0.9 * offered) break;
  }
  return { delivered: best, steps: steps.join(' ') };
}

async function capacityFigure(figure: string, url: string, payload: 'reading' | 'batch', offeredSteps: number[], target?: { text: string; min: number }): Promise<number> {
  const runs: { delivered: number; steps: string }[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await capacity(url, payload, offeredSteps));
  const delivered = median(runs.map((run) => run.delivered));
  report(figure, `${delivered.toFixed(0)} [${runs.map((run) => run.delivered.toFixed(0)).join(', ')}]`, target?.text, target && delivered >= target.min);
  report('  offered→delivered (readings/s) per step, each run', runs.map((run) => run.steps).join(' | '));
  return delivered;
}

async function throughput(broker: Mosquitto): Promise<number> {
  const raw = await repeat(RUNS, () => rawMqttRate(broker.url));
  report('raw mqtt.js QoS 1 publish rate (msgs/s, median)', `${raw.median.toFixed(0)} [${raw.runs.map((r) => r.toFixed(0)).join(', ')}]`);
  const steps = [0.6, 0.8, 1.0, 1.2, 1.4, 1.7].map((factor) => factor * raw.median);
  const perReading = await capacityFigure('sensorlet end-to-end capacity, durable outbox, QoS 1, one reading per message (readings/s, median)', broker.url, 'reading', steps);
  const ratio = perReading / raw.median;
  report('  ratio to raw mqtt.js', ratio.toFixed(2), '≥ 0.7 (issue 3; ≥ 0.5 issue 2)', ratio >= 0.7);
  await capacityFigure('sensorlet end-to-end capacity, durable outbox, QoS 1, batched payloads (readings/s, median)', broker.url, 'batch', [150_000, 200_000, 250_000, 300_000, 350_000, 400_000, 500_000], { text: '≥ 200000', min: 200_000 });
  return raw.median;
}

async function memory(broker: Mosquitto): Promise<void> {
  const sensors = Array.from({ length: 100 }, (_, i) => counterSensor(`s${i}`, '1s', 1)).join('---\n');
  const seconds = Number(process.env.BENCH_MEMORY_SECONDS ?? 60);
  const runs: number[] = [];
  let kubernetesMapped = 'no';
  for (let i = 0; i < RUNS; i++) {
    await withAgent({ 'sensors.yaml': sensors, 'sink.yaml': mqttSink('bench', broker.url) }, async (agent) => {
      await sleep(seconds * 1000);
      runs.push(rssMb(agent.child.pid!));
      const mapped = spawnSync('grep', ['-c', 'kubernetes', `/proc/${agent.child.pid}/maps`], { encoding: 'utf8' }).stdout.trim();
      if (mapped !== '0') kubernetesMapped = `yes (${mapped} mappings)`;
    });
  }
  const rss = median(runs);
  report(`RSS of sensorlet run, 100 simulated sensors at 1 s, after ${seconds} s (MB, median)`, `${rss.toFixed(1)} [${runs.map((run) => run.toFixed(1)).join(', ')}]`, '≤ 70', rss <= 70);
  report('  @kubernetes/client-node mapped in standalone mode', kubernetesMapped);
}

interface BacklogFigures {
  filled: number;
  fillingRss: number;
  afterFillRss: number;
  holding: number;
  holdingRss: number;
  readyMs: number;
  drainingRss: number;
  drainRate: number;
}

async function backlog(broker: Mosquitto, rawRate: number): Promise<void> {
  const target = Number(process.env.BENCH_BACKLOG ?? 1_000_000);
  const runs: BacklogFigures[] = [];
  for (let i = 0; i < RUNS; i++) runs.push(await backlogRun(broker, target));
  const figure = (name: string, pick: (run: BacklogFigures) => number, digits = 1, target?: string, ok?: (value: number) => boolean) => {
    const value = median(runs.map(pick));
    report(`${name} (median)`, `${value.toFixed(digits)} [${runs.map((run) => pick(run).toFixed(digits)).join(', ')}]`, target, ok?.(value));
    return value;
  };
  figure('outbox backlog built (readings)', (run) => run.filled, 0);
  figure('RSS while filling at ~500k readings/s offered (MB, peak; an overload figure)', (run) => run.fillingRss);
  figure('RSS while holding the backlog, 5 s after the fill stopped, same process (MB)', (run) => run.afterFillRss, 1, '≤ 100', (value) => value <= 100);
  figure('RSS while holding the backlog, restarted offline, 10 s after start (MB)', (run) => run.holdingRss, 1, '≤ 100', (value) => value <= 100 && runs.every((run) => run.holding >= target));
  figure('start to ready with the backlog (ms, process spawn to /readyz)', (run) => run.readyMs, 0, '≤ 2000', (value) => value <= 2000);
  figure('RSS while draining the backlog (MB, peak)', (run) => run.drainingRss, 1, '≤ 100', (value) => value <= 100);
  const rate = figure('drain rate (readings/s)', (run) => run.drainRate, 0);
  report('  ratio to raw mqtt.js', (rate / rawRate).toFixed(2), '≥ 0.7', rate / rawRate >= 0.7);
}

async function backlogRun(broker: Mosquitto, target: number): Promise<BacklogFigures> {
  // Fill: the sink points at a port where nothing listens, so everything stays in the outbox.
  const closedPort = `mqtt://127.0.0.1:9`;
  const fill = { 'sensor.yaml': counterSensor('counter', '20ms', 10_000), 'sink.yaml': mqttSink('bench', closedPort, { maxReadings: 2000, maxDelay: '100ms' }) };
  return inFreshFolders(fill, (dir, stateDir) => fillHoldAndDrain(broker, target, dir, stateDir));
}

/** Fills the outbox with `target` readings, holds it (twice), then restarts with the broker reachable and drains it. */
async function fillHoldAndDrain(broker: Mosquitto, target: number, dir: string, stateDir: string): Promise<BacklogFigures> {
  let agent = await AgentProcess.start({ manifests: dir, stateDir, extraArgs: [...BENCH_POLICY_ARGS, '--log-level', 'error'] });
  let fillingRss = 0;
  let filled: number;
  let afterFillRss: number;
  try {
    filled = await waitFor(async () => {
      const queued = metricValue(await agent.metrics(), 'sensorlet_outbox_readings', 'sink="bench"');
      fillingRss = Math.max(fillingRss, rssMb(agent.child.pid!));
      return queued >= target ? queued : undefined;
    }, { timeoutMs: 120_000, intervalMs: 500, what: `${target} readings in the outbox` });
    // Holding, twice. First the process that filled: the producer stops (its manifest goes), the
    // backlog stays, and what the overload grew is still there.
    rmSync(`${dir}/sensor.yaml`);
    await sleep(5000);
    afterFillRss = rssMb(agent.child.pid!);
  } finally {
    await agent.stop();
  }
  // Then an agent started on the backlog with the broker still unreachable, as a device that
  // restarts while offline: it holds the backlog (index in memory, readings on disk) and retries.
  agent = await AgentProcess.start({ manifests: dir, stateDir, extraArgs: [...BENCH_POLICY_ARGS, '--log-level', 'error'] });
  let holding: number;
  let holdingRss: number;
  try {
    await sleep(10_000);
    holding = metricValue(await agent.metrics(), 'sensorlet_outbox_readings', 'sink="bench"');
    holdingRss = rssMb(agent.child.pid!);
  } finally {
    await agent.stop();
  }
  // Restart with the broker reachable and no new readings: time to ready, then the drain.
  writeFileSync(`${dir}/sink.yaml`, mqttSink('bench', broker.url, { maxReadings: 2000, maxDelay: '100ms' }));
  const started = performance.now();
  agent = await AgentProcess.start({ manifests: dir, stateDir, extraArgs: [...BENCH_POLICY_ARGS, '--log-level', 'error'] });
  const readyMs = performance.now() - started;
  try {
    let drainingRss = 0;
    const drainStart = performance.now();
    const initial = metricValue(await agent.metrics(), 'sensorlet_sink_published_total', 'sink="bench"');
    const drained = await waitFor(async () => {
      drainingRss = Math.max(drainingRss, rssMb(agent.child.pid!));
      const published = metricValue(await agent.metrics(), 'sensorlet_sink_published_total', 'sink="bench"') - initial;
      return published >= target ? published : undefined;
    }, { timeoutMs: 180_000, intervalMs: 250, what: 'backlog drained' });
    const drainRate = drained / ((performance.now() - drainStart) / 1000);
    return { filled, fillingRss, afterFillRss, holding, holdingRss, readyMs, drainingRss, drainRate };
  } finally {
    await agent.kill();
  }
}

async function scheduler(broker: Mosquitto): Promise<void> {
  // Twice: the scheduler and drivers alone (no Sink selects the Sensors), then with their 10k
  // readings/s delivered over MQTT through the durable outbox.
  // The target (issue 5) is the scheduler's and the drivers'; the second run shows what delivery
  // adds: with a topic per Sensor, each chunk of 2000 readings is 1000 messages, ~5k messages/s.
  await schedulerRun('scheduler and drivers only', {}, true);
  await schedulerRun('readings delivered over MQTT (no target)', { 'sink.yaml': mqttSink('bench', broker.url, { payload: 'batch', maxReadings: 2000 }) }, false);
}

async function schedulerRun(what: string, sinks: Record<string, string>, targeted: boolean): Promise<void> {
  const sensors = Array.from({ length: 1000 }, (_, i) => counterSensor(`s${i}`, '100ms', 1)).join('---\n');
  await withAgent({ 'sensors.yaml': sensors, ...sinks }, async (agent) => {
    // Steady state: every Sensor reading, then a few seconds more, before the window opens.
    await waitFor(async () => metricValue(await agent.metrics(), 'sensorlet_readings_total') >= 1000 * 20, { timeoutMs: 60_000, what: 'all sensors reading' });
    await sleep(3000);
    const pid = agent.child.pid!;
    const startText = await agent.metrics();
    const cpuBefore = cpuSeconds(pid);
    const before = performance.now();
    await sleep(15_000);
    const cpu = (cpuSeconds(pid) - cpuBefore) / ((performance.now() - before) / 1000);
    const text = await agent.metrics();
    const p50 = histogramQuantile(text, 'sensorlet_scheduler_lateness_seconds', 0.5, startText) * 1000;
    const p99 = histogramQuantile(text, 'sensorlet_scheduler_lateness_seconds', 0.99, startText) * 1000;
    report(`scheduler lateness, 1000 sensors at 100 ms, ${what}: p50 (ms, histogram bucket bound, steady 15 s window)`, `≤ ${p50}`);
    report(`scheduler lateness, 1000 sensors at 100 ms, ${what}: p99 (ms, histogram bucket bound, steady 15 s window)`, `≤ ${p99}`, targeted ? '≤ 10' : undefined, targeted ? p99 <= 10 : undefined);
    report(`CPU, 1000 sensors at 100 ms, ${what} (% of one core)`, (cpu * 100).toFixed(1), targeted ? '≤ 30' : undefined, targeted ? cpu * 100 <= 30 : undefined);
  });
}

async function serial(): Promise<void> {
  const { benchSerialFrameParsing } = await import('./serial-frames.js');
  for (const result of benchSerialFrameParsing()) {
    report(`serial ${result.kind} frame parsing (µs/frame; % of one core at 1k frames/s)`, `${result.microsPerFrame.toFixed(2)}; ${result.cpuPercentAt1kPerSecond.toFixed(2)} %`);
  }
}

async function mtls(): Promise<void> {
  const { benchMtls } = await import('./mtls.js');
  const runs = [];
  for (let i = 0; i < RUNS; i++) runs.push(await benchMtls());
  const plain = median(runs.map((run) => run.plainReadingsPerSec));
  const secured = median(runs.map((run) => run.mtlsReadingsPerSec));
  const ratio = median(runs.map((run) => run.ratio));
  report('plain MQTT through the agent (readings/s, median)', plain.toFixed(0));
  report('mutual-TLS MQTT through the agent (readings/s, median)', secured.toFixed(0));
  report('  mTLS ratio to plain (median of per-run ratios)', ratio.toFixed(2), '≥ 0.8', ratio >= 0.8);
  report('reconnect after certificate rotation (ms, median)', median(runs.map((run) => run.rotationReconnectMs)).toFixed(0));
}

async function coap(): Promise<void> {
  const { benchCoap } = await import('./coap.js');
  const runs = [];
  for (let i = 0; i < RUNS; i++) runs.push(await benchCoap());
  report('CoAP, one reading per request (readings/s, median)', median(runs.map((run) => run.coapPerRequest)).toFixed(0));
  report('CoAP, SenML packs (readings/s, median)', median(runs.map((run) => run.coapSenml)).toFixed(0));
  report('MQTT, one reading per message, same run (readings/s, median)', median(runs.map((run) => run.mqttPerMessage)).toFixed(0));
}

async function cluster(): Promise<void> {
  const { benchClusterRss, CLUSTER_RSS_TARGET_MB } = await import('./cluster.js');
  const { clusterMb, folderMb } = await benchClusterRss();
  report('RSS in cluster mode (MB)', clusterMb.toFixed(1), `≤ ${CLUSTER_RSS_TARGET_MB}`, clusterMb <= CLUSTER_RSS_TARGET_MB);
  report('RSS in folder mode, same manifests (MB)', folderMb.toFixed(1));
}

async function fleet(): Promise<void> {
  const { benchFleet, printFleet } = await import('./fleet.js');
  type FleetResult = Awaited<ReturnType<typeof benchFleet>>;
  // One run per size by default (N=1000 takes minutes on two cores); the per-node figures are
  // medians over the nodes. FLEET_RUNS=3 takes the median of three runs of each figure.
  const runs = Number(process.env.FLEET_RUNS ?? 1);
  for (const nodes of (process.env.FLEET_NODES ?? '10,100,1000').split(',').map(Number)) {
    const results: FleetResult[] = [];
    for (let i = 0; i < runs; i++) results.push(await benchFleet({ nodes, steadySeconds: Number(process.env.FLEET_STEADY_SECONDS ?? 60) }));
    const mid = (pick: (result: FleetResult) => number) => median(results.map(pick));
    console.log(`fleet N=${nodes}: per run, the leader's writes/min ${results.map((r) => r.leaderWritesPerMin.toFixed(1)).join(', ')}; worst non-leader writes/min ${results.map((r) => r.writesPerMin.max.toFixed(1)).join(', ')}; killed leader → Unknown (ms) ${results.map((r) => r.killedLeaderUnknownMs).join(', ')}`);
    printFleet(
      {
        nodes,
        writesPerMin: { median: mid((r) => r.writesPerMin.median), max: mid((r) => r.writesPerMin.max) },
        readsPerMin: { median: mid((r) => r.readsPerMin.median), max: mid((r) => r.readsPerMin.max) },
        watchEventsPerMin: { median: mid((r) => r.watchEventsPerMin.median), max: mid((r) => r.watchEventsPerMin.max) },
        leaderWritesPerMin: mid((r) => r.leaderWritesPerMin),
        leaderWatchEventsPerMin: mid((r) => r.leaderWatchEventsPerMin),
        largestObjectBytes: mid((r) => r.largestObjectBytes),
        rollupLatencyMs: mid((r) => r.rollupLatencyMs),
        staleDetectionMs: mid((r) => r.staleDetectionMs),
        deletedNodeMs: mid((r) => r.deletedNodeMs),
        failoverMs: mid((r) => r.failoverMs),
        failoverRollupMs: mid((r) => r.failoverRollupMs),
        killedLeaderUnknownMs: mid((r) => r.killedLeaderUnknownMs),
        stepDowns: Math.max(...results.map((r) => r.stepDowns)),
      },
      report,
    );
  }
}

/**
 * 4× overload: the Sensor offers four times the one-reading-per-message capacity, for each policy
 * that drops; delivery should stay at capacity (≥ 0.9×) and every drop be counted. The capacity
 * is measured again right before each pair of overload runs: on a shared machine it drifts within
 * minutes, and a ratio against a figure from another moment would measure the drift.
 */
async function overload(broker: Mosquitto, rawRate: number): Promise<void> {
  const { benchOverloadDetailed } = await import('./overload.js');
  type Run = Awaited<ReturnType<typeof benchOverloadDetailed>> & { capacity: number };
  const runs: Record<'dropOldest' | 'dropNewest', Run[]> = { dropOldest: [], dropNewest: [] };
  const steps = [0.6, 0.8, 1.0, 1.2, 1.4, 1.7].map((factor) => factor * rawRate);
  for (let i = 0; i < RUNS; i++) {
    const { delivered: capacityRate } = await capacity(broker.url, 'reading', steps);
    for (const whenFull of ['dropOldest', 'dropNewest'] as const) {
      runs[whenFull].push({ ...(await benchOverloadDetailed(broker.url, whenFull, 4 * capacityRate)), capacity: capacityRate });
    }
  }
  for (const whenFull of ['dropOldest', 'dropNewest'] as const) {
    const list = (pick: (run: Run) => number, digits = 0) => `${median(runs[whenFull].map(pick)).toFixed(digits)} [${runs[whenFull].map((run) => pick(run).toFixed(digits)).join(', ')}]`;
    const ratio = median(runs[whenFull].map((run) => run.delivered / run.capacity));
    const rss = Math.max(...runs[whenFull].map((run) => run.rssMb));
    const unaccounted = runs[whenFull].map((run) => run.unaccounted);
    report(`overload ${whenFull}: capacity measured just before (readings/s)`, list((run) => run.capacity));
    report(`overload ${whenFull}: produced at 4× that (readings/s)`, list((run) => run.offered));
    report(`overload ${whenFull}: delivered (readings/s)`, list((run) => run.delivered));
    report(`  delivered ÷ capacity (median of the runs' ratios)`, `${ratio.toFixed(2)} [${runs[whenFull].map((run) => (run.delivered / run.capacity).toFixed(2)).join(', ')}]`, '≥ 0.9', ratio >= 0.9);
    report(`overload ${whenFull}: dropped (readings/s)`, list((run) => run.dropped));
    report(`overload ${whenFull}: readings produced but neither delivered, counted as dropped nor queued (each run)`, unaccounted.join(', '), '0', unaccounted.every((count) => count === 0));
    report(`overload ${whenFull}: peak RSS (MB, highest of the runs)`, rss.toFixed(1), '≤ 100', rss <= 100);
    report(`overload ${whenFull}: slowest admin answer (ms); longest Connected gap (ms)`, `${list((run) => run.adminMaxMs)}; ${list((run) => run.disconnectedMs)}`);
  }
}

async function admin(): Promise<void> {
  const { benchAdminDetailed } = await import('./admin.js');
  const result = await benchAdminDetailed();
  const ok = (ms: number) => ms <= 100;
  report(`admin: slowest /healthz during 20 concurrent POST /reload, ${result.sensors} Sensors (ms)`, result.reloadsMaxMs.toFixed(0), '≤ 100 ms', ok(result.reloadsMaxMs));
  report('admin: reconcile passes caused by that burst (coalesced: ≤ 2)', result.reloadPasses.toFixed(2));
  report('admin: slowest /healthz during 5 concurrent GET /api/v1/resources (ms)', result.resourcesMaxMs.toFixed(0), '≤ 100 ms', ok(result.resourcesMaxMs));
  report('admin: slowest /healthz during 5 concurrent GET /metrics (ms)', result.metricsMaxMs.toFixed(0), '≤ 100 ms', ok(result.metricsMaxMs));
}

async function ota(): Promise<void> {
  const { benchOtaDowntimeDetailed } = await import('./ota.js');
  const result = await benchOtaDowntimeDetailed();
  report('agent self-update: gap in reading times across the update (ms)', result.downtimeMs.toFixed(0));
  report('agent self-update: largest gap between arrivals at the subscriber (ms)', result.arrivalGapMs.toFixed(0));
  report('agent self-update: Firmware applied → Succeeded (ms)', result.updateMs.toFixed(0));
}

async function webConsole(broker: Mosquitto): Promise<void> {
  const { benchConsole } = await import('./console.js');
  const result = await benchConsole(broker.url, RUNS);
  const assets = Object.entries(result.sizes).map(([route, bytes]) => `${route} ${(bytes / 1024).toFixed(1)}`).join(', ');
  report('console: page size, gzipped (KB)', `${(result.totalBytes / 1024).toFixed(1)} (${assets})`, '≤ 150 KB', result.totalBytes <= 150 * 1024);
  const runs = (pick: (run: (typeof result.runs)[number]) => number) => result.runs.map((run) => pick(run).toFixed(1)).join(' / ');
  report('console: agent RSS without → with the page open, 100 Sensors at 1 s (MB, per run)', `${runs((run) => run.rssWithout)} → ${runs((run) => run.rssWith)}`);
  report('console: agent RSS growth with the page open (MB, median)', result.rssGrowthMb.toFixed(2), '≤ 5 MB', result.rssGrowthMb <= 5);
  report('console: agent CPU without → with the page open (% of a core, per run)', `${runs((run) => run.cpuWithout)} → ${runs((run) => run.cpuWith)}`);
  report('console: agent CPU increase with the page open (% of a core, median)', result.cpuIncreasePercent.toFixed(2), '≤ 2 %', result.cpuIncreasePercent <= 2);
}

const sections = process.argv.slice(2);
const wanted = (name: string) => sections.length === 0 || sections.includes(name);
const broker = await Mosquitto.start();
try {
  let raw = 0;
  if (wanted('throughput') || wanted('backlog') || wanted('overload')) raw = await throughput(broker);
  if (wanted('memory')) await memory(broker);
  if (wanted('backlog')) await backlog(broker, raw);
  if (wanted('scheduler')) await scheduler(broker);
  if (wanted('serial')) await serial();
  if (wanted('mtls')) await mtls();
  if (wanted('coap')) await coap();
  if (wanted('cluster')) await cluster();
  if (wanted('fleet')) await fleet();
  if (wanted('overload')) await overload(broker, raw);
  if (wanted('ota')) await ota();
  if (wanted('admin')) await admin();
  if (wanted('console')) await webConsole(broker);
} finally {
  await broker.stop();
}
console.log('\nsummary');
for (const result of results) console.log(`  ${result.ok === undefined ? ' ' : result.ok ? '✓' : '✗'} ${result.figure}: ${result.value}${result.target ? ` (target ${result.target})` : ''}`);
process.exit(0);
