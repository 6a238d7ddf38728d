// With one message per reading, an MQTT Sink keeps about 4000 messages on the wire whatever its
// batch size (READINGS_IN_FLIGHT in pkg/sinks/mqtt/mqtt.ts): a window counted in batches of 10
// would hold 20 messages, and brokers that send PUBACKs with Nagle's algorithm would then release
// them one delayed TCP ACK (up to 40 ms) at a time. The peer is a minimal MQTT server that accepts
// the connection and never acknowledges a publish, so what it received is exactly what the agent
// put in flight before it had to wait; and the window bounds that, so the backlog stays queued.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { AgentProcess } from '../support/agent.js';
import { waitFor } from '../support/ports.js';

const CONNACK_ACCEPTED = Buffer.from([0x20, 0x02, 0x00, 0x00]);
const PACKET_CONNECT = 1;
const PACKET_PUBLISH = 3;

/** Counts the PUBLISH packets of every connection: fixed header (type, remaining length) framing only. */
function silentBroker(): { server: net.Server; publishes: () => number; close: () => Promise<void> } {
  let publishes = 0;
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    let pending = Buffer.alloc(0);
    socket.on('data', (data) => {
      pending = pending.length === 0 ? data : Buffer.concat([pending, data]);
      for (;;) {
        let length = 0;
        let offset = 1;
        let byte = 0x80;
        for (let shift = 0; byte & 0x80; shift += 7) {
          if (offset >= pending.length) return;
          byte = pending[offset++];
          length += (byte & 0x7f) * 2 ** shift;
        }
        if (pending.length < offset + length) return;
        const type = pending[0] >> 4;
        if (type === PACKET_CONNECT) socket.write(CONNACK_ACCEPTED);
        if (type === PACKET_PUBLISH) publishes++;
        pending = pending.subarray(offset + length);
      }
    });
    socket.on('error', () => undefined);
  });
  return {
    server,
    publishes: () => publishes,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

test('one message per reading with 10-reading batches: about 4000 messages in flight, never more, the rest stays queued', async () => {
  const broker = silentBroker();
  await new Promise<void>((resolve) => broker.server.listen(0, '127.0.0.1', resolve));
  const port = (broker.server.address() as net.AddressInfo).port;
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-window-'));
  writeFileSync(
    path.join(dir, 'window.yaml'),
    `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: fast, labels: { app: window } }
spec:
  driver: { simulated: { waveform: counter, samplesPerRead: 100 } }
  interval: 10ms
---
apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: window }
spec:
  selector: { matchLabels: { app: window } }
  mqtt: { url: "mqtt://127.0.0.1:${port}", qos: 1, protocolVersion: 4, keepalive: 60s }
  batch: { maxReadings: 10, maxDelay: 50ms }
`,
  );
  const agent = await AgentProcess.start({ manifests: dir, extraArgs: ['--max-readings-per-second', '10000'] });
  try {
    await waitFor(() => broker.publishes() >= 3900, { timeoutMs: 20_000, what: "about 4000 messages in flight" });
    // Readings keep coming (up to 10k/s) while nothing is acknowledged: the window must hold while
    // the backlog grows in the outbox, however fast this machine produces it.
    const queued = async () => (await agent.resource('Sink', 'window'))!.status.nodes[0].queued ?? 0;
    const grown = Date.now();
    await waitFor(async () => (await queued()) >= 10_000 && Date.now() - grown >= 1500, { timeoutMs: 30_000, intervalMs: 200, what: 'a backlog of 10k readings in the outbox' });
    assert.ok(broker.publishes() <= 4000, `${broker.publishes()} messages in flight: the window is 4000`);
  } finally {
    await agent.kill();
    await broker.close();
    rmSync(dir, { recursive: true, force: true });
  }
});
