// Manifests and assertions shared by the mutual-TLS end-to-end tests and the mTLS bench.
import assert from 'node:assert/strict';

export function counterSensor(name: string, options: { tenant?: string; labels?: Record<string, string>; interval?: string; samplesPerRead?: number } = {}): string {
  return `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata:
  name: ${name}
  labels: ${JSON.stringify(options.labels ?? {})}
spec:
  driver:
    simulated: { waveform: counter, min: 0, step: 1${options.samplesPerRead ? `, samplesPerRead: ${options.samplesPerRead}` : ''} }
  interval: ${options.interval ?? '100ms'}
  unit: Cel
${options.tenant ? `  tenant: ${options.tenant}\n` : ''}`;
}

export function pemCertificate(name: string, files: { certFile: string; keyFile: string; caFile?: string }, labels: Record<string, string> = {}): string {
  return `apiVersion: sensorlet.io/v1alpha1
kind: Certificate
metadata:
  name: ${name}
  labels: ${JSON.stringify(labels)}
spec:
  pem: ${JSON.stringify(files)}
`;
}

export function pkcs12Certificate(name: string, file: string, passwordEnv: string, labels: Record<string, string> = {}): string {
  return `apiVersion: sensorlet.io/v1alpha1
kind: Certificate
metadata:
  name: ${name}
  labels: ${JSON.stringify(labels)}
spec:
  pkcs12: { path: ${JSON.stringify(file)}, passwordFrom: { env: ${passwordEnv} } }
`;
}

export function mtlsSink(
  name: string,
  options: { url: string; caFile?: string; selector?: string; tls?: string; qos?: number; maxReadings?: number; maxDelay?: string },
): string {
  return `apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata:
  name: ${name}
spec:
  selector: ${options.selector ?? '{}'}
  mqtt:
    url: ${options.url}
    protocolVersion: 5
    qos: ${options.qos ?? 1}
    topic: "sensorlet/{tenant}/{device}/{sensor}"
${options.tls ? `  tls: ${options.tls}\n` : ''}  batch: { maxReadings: ${options.maxReadings ?? 50}, maxDelay: ${options.maxDelay ?? '50ms'} }
`;
}

/** The distinct seqs of a sensor's readings, sorted. */
export function seqsOf(readings: { seq: number }[]): number[] {
  return [...new Set(readings.map((reading) => reading.seq))].sort((a, b) => a - b);
}

/** Every seq from `from` to the highest seen is present (duplicates allowed: at-least-once). */
export function isContiguous(readings: { seq: number }[], from = 1): boolean {
  const seqs = seqsOf(readings);
  return seqs.length > 0 && seqs[0] === from && seqs[seqs.length - 1] === from + seqs.length - 1;
}

export function assertContiguous(readings: { seq: number }[], what: string, from = 1): void {
  const seqs = seqsOf(readings);
  assert.ok(seqs.length > 0, `${what}: no readings`);
  assert.equal(seqs[0], from, `${what}: first seq`);
  const missing: number[] = [];
  for (let seq = from, index = 0; seq <= seqs[seqs.length - 1] && missing.length < 20; seq++) {
    if (seqs[index] === seq) index++;
    else missing.push(seq);
  }
  assert.deepEqual(missing, [], `${what}: seqs lost (of ${from}..${seqs[seqs.length - 1]})`);
}
