// Shared pieces of the benchmarks: a real agent process, its resource usage from /proc, metric
// scraping, and the median of repeated runs. Every loop here is bounded in count and time.
import { readFileSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentProcess } from '../support/agent.js';

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

export async function repeat(times: number, run: () => Promise<number>): Promise<{ median: number; runs: number[] }> {
  const runs: number[] = [];
  for (let i = 0; i < times; i++) runs.push(await run());
  return { median: median(runs), runs };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Resident set size of a process in MB. */
export function rssMb(pid: number): number {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8');
  const kb = Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
  return kb / 1024;
}

/** CPU seconds (user + system) a process has used so far. */
export function cpuSeconds(pid: number): number {
  const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
  // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
  return (Number(fields[11]) + Number(fields[12])) / 100;
}

/** A metric's value summed over its label sets, from Prometheus text. */
export function metricValue(text: string, name: string, labelFilter = ''): number {
  let total = 0;
  for (const line of text.split('\n')) {
    if (!line.startsWith(name)) continue;
    const match = /^([a-z_:]+)(\{[^}]*\})?\s+([-0-9.e+]+|NaN)$/.exec(line);
    if (!match || match[1] !== name || !(match[2] ?? '').includes(labelFilter)) continue;
    total += Number(match[3]);
  }
  return total;
}

function histogramBuckets(text: string, name: string): [number, number][] {
  const buckets: [number, number][] = [];
  for (const line of text.split('\n')) {
    const match = new RegExp(`^${name}_bucket\\{.*le="([^"]+)".*\\}\\s+(\\d+)`).exec(line);
    if (match) buckets.push([match[1] === '+Inf' ? Infinity : Number(match[1]), Number(match[2])]);
  }
  return buckets;
}

/**
 * p-quantile upper bound (the first bucket reaching the quantile) of what a Prometheus histogram
 * observed between two scrapes, so start-up does not count in a steady-state figure.
 */
export function histogramQuantile(after: string, name: string, quantile: number, before = ''): number {
  const earlier = new Map(histogramBuckets(before, name));
  const buckets = histogramBuckets(after, name).map(([le, count]) => [le, count - (earlier.get(le) ?? 0)] as [number, number]);
  const total = buckets.at(-1)?.[1] ?? 0;
  return buckets.find(([, count]) => count >= quantile * total)?.[0] ?? NaN;
}

export function manifestsDir(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-bench-'));
  for (const [file, text] of Object.entries(files)) writeFileSync(path.join(dir, file), text);
  return dir;
}

/**
 * The benchmarks measure the pipeline with one Sensor offering far more than a real sensor would,
 * so they lift the per-Sensor cap as an operator may (the default is 1000 readings per second).
 */
export const BENCH_POLICY_ARGS = ['--max-readings-per-second', '10000000'];

export function counterSensor(name: string, interval: string, samplesPerRead: number, labels = '{ bench: "true" }'): string {
  return `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: ${name}, labels: ${labels} }
spec:
  driver: { simulated: { waveform: counter, samplesPerRead: ${samplesPerRead} } }
  interval: ${interval}
  timeout: 5s
`;
}

export function mqttSink(name: string, url: string, options: { payload?: string; maxReadings?: number; maxDelay?: string; maxBytes?: string; qos?: number } = {}): string {
  return `apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: ${name} }
spec:
  selector: {}
  mqtt: { url: "${url}", qos: ${options.qos ?? 1}, payload: ${options.payload ?? 'reading'}, topic: "bench/{sensor}" }
  batch: { maxReadings: ${options.maxReadings ?? 500}, maxDelay: ${options.maxDelay ?? '100ms'} }
  outbox: { maxBytes: ${options.maxBytes ?? '2Gi'}, whenFull: dropNewest }
`;
}

/** Readings/s the far end acknowledged, over a steady window after a warm-up. */
export async function deliveredRate(agent: AgentProcess, sink: string, warmupMs: number, windowMs: number): Promise<number> {
  await sleep(warmupMs);
  const before = metricValue(await agent.metrics(), 'sensorlet_sink_published_total', `sink="${sink}"`);
  const started = Date.now();
  await sleep(windowMs);
  const after = metricValue(await agent.metrics(), 'sensorlet_sink_published_total', `sink="${sink}"`);
  return (after - before) / ((Date.now() - started) / 1000);
}

export { AgentProcess };
