// A manifests folder with one counter Sensor (5 samples every 20 ms) feeding one MQTT Sink on
// topic `NAME/{sensor}`: the load the state-dir tests (storage faults, damaged state) run under.
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

export function counterToMqttManifests(brokerUrl: string, name: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), `sensorlet-${name}-`));
  writeFileSync(
    path.join(dir, 'counter-to-mqtt.yaml'),
    `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: ${name}-sensor, labels: { app: ${name} } }
spec:
  driver: { simulated: { waveform: counter, samplesPerRead: 5 } }
  interval: 20ms
---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: ${name}-mqtt }
spec:
  selector: { matchLabels: { app: ${name} } }
  mqtt: { url: "${brokerUrl}", qos: 1, topic: "${name}/{sensor}", keepalive: 5s }
  batch: { maxReadings: 100, maxDelay: 100ms }
`,
  );
  return dir;
}
