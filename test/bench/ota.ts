// Bench: downtime of the data path across a self-update of the agent (Firmware target: agent).
// A counter Sensor reads every 20 ms and streams to a real Mosquitto; the agent runs under its
// launcher (--self-update), downloads a sensorlet-bundle/1 of the current dist/ (a new version),
// drains, restarts into it and commits. Downtime is the largest gap between the `time` of
// consecutive readings (by seq, deduplicated) as the subscriber receives them: the time no reading
// was taken because no agent was running. The stream must also stay whole (no seq missing).
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentProcess } from '../support/agent.js';
import { Mosquitto } from '../support/mosquitto.js';
import { Subscriber } from '../support/mqtt-subscriber.js';
import { waitFor } from '../support/ports.js';
import { PACKAGE_ROOT } from '../../pkg/api/schemas.js';
import { packAgentBundle } from '../../pkg/ota/bundle.js';
import { ArtifactServer } from '../../pkg/ota/testing/artifact-server.js';
import { signatureYaml, signedArtifact, trustKey } from '../../pkg/ota/testing/artifacts.js';

const INTERVAL_MS = 20;

export interface OtaDowntime {
  /** Largest gap between consecutive readings' times across the update. */
  downtimeMs: number;
  /** Largest gap between consecutive arrivals at the subscriber (includes delivery latency). */
  arrivalGapMs: number;
  /** From applying the Firmware to phase Succeeded (download, verify, drain, restart, health check). */
  updateMs: number;
  readings: number;
}

export async function benchOtaDowntimeDetailed(): Promise<OtaDowntime> {
  const broker = await Mosquitto.start();
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-bench-ota-'));
  const manifests = path.join(dir, 'manifests');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(manifests);
  const artifact = signedArtifact(0, 'ed25519', packAgentBundle(PACKAGE_ROOT, { version: '9.9.9-bench' }));
  const server = await ArtifactServer.start(artifact.body);
  trustKey(path.join(dir, 'trust'), 'release', artifact.key);
  writeFileSync(
    path.join(manifests, 'data.yaml'),
    `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: counter }
spec:
  driver: { simulated: { waveform: counter } }
  interval: ${INTERVAL_MS}ms
---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: broker }
spec:
  selector: {}
  mqtt: { url: "${broker.url}", qos: 1, topic: "ota-bench/{sensor}" }
  batch: { maxReadings: 100, maxDelay: 20ms }
`,
  );
  const arrivals: { seq: number; time: number; at: number }[] = [];
  const subscriber = await Subscriber.connect(broker.url, 'ota-bench/#');
  const original = subscriber.messages.push.bind(subscriber.messages);
  // Arrival times: stamped as each message is recorded.
  subscriber.messages.push = (...messages) => {
    const at = Date.now();
    for (const message of messages) {
      const payload = Array.isArray(message.payload) ? message.payload : [message.payload];
      for (const reading of payload) if (typeof reading?.seq === 'number') arrivals.push({ seq: reading.seq, time: Date.parse(reading.time), at });
    }
    return original(...messages);
  };
  const agent = await AgentProcess.start({ manifests, stateDir: path.join(dir, 'state'), extraArgs: ['--self-update', '--firmware-trust-dir', path.join(dir, 'trust')] });
  try {
    await waitFor(() => arrivals.length >= 50, { timeoutMs: 10_000, what: 'readings before the update' });
    const applied = Date.now();
    writeFileSync(
      path.join(manifests, 'firmware.yaml'),
      `apiVersion: sensorlet.io/v1alpha1
kind: Firmware
metadata: { name: agent }
spec:
  version: "9.9.9-bench"
  target: agent
  artifact:
    url: ${server.url('sensorlet.bundle')}
    sha256: "${artifact.sha256}"
    size: ${artifact.body.length}
    signature: ${signatureYaml(artifact.sign({ version: '9.9.9-bench', target: 'agent' }))}
  healthCheck: { timeout: 30s, require: [sinksConnected, sensorsReady] }
  drain: { timeout: 5s }
`,
    );
    const phase = async () => (await agent.resource('Firmware', 'agent'))?.status.nodes[0]?.phase;
    await waitFor(async () => (await phase()) === 'Succeeded', { timeoutMs: 60_000, intervalMs: 50, what: 'Firmware Succeeded' });
    const updateMs = Date.now() - applied;
    const settled = arrivals.length;
    await waitFor(() => arrivals.length >= settled + 50, { timeoutMs: 10_000, what: 'readings after the update' });

    const bySeq = new Map<number, { time: number; at: number }>();
    for (const arrival of arrivals) if (!bySeq.has(arrival.seq)) bySeq.set(arrival.seq, arrival);
    const seqs = [...bySeq.keys()].sort((a, b) => a - b);
    if (seqs.at(-1)! - seqs[0] + 1 !== seqs.length) throw new Error(`ota bench: ${seqs.at(-1)! - seqs[0] + 1 - seqs.length} seq missing across the update`);
    let downtimeMs = 0;
    for (let i = 1; i < seqs.length; i++) downtimeMs = Math.max(downtimeMs, bySeq.get(seqs[i])!.time - bySeq.get(seqs[i - 1])!.time);
    let arrivalGapMs = 0;
    const ats = arrivals.map((arrival) => arrival.at);
    for (let i = 1; i < ats.length; i++) arrivalGapMs = Math.max(arrivalGapMs, ats[i] - ats[i - 1]);
    return { downtimeMs, arrivalGapMs, updateMs, readings: seqs.length };
  } finally {
    await agent.stop().catch(() => undefined);
    await agent.kill();
    await subscriber.close();
    await server.close();
    await broker.stop();
  }
}

/** The gap in readings across an agent self-update (for `npm run bench`). */
export async function benchOtaDowntime(): Promise<{ downtimeMs: number }> {
  const { downtimeMs } = await benchOtaDowntimeDetailed();
  return { downtimeMs };
}
