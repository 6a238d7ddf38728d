// Regression (found by the mTLS rotation bench): closing an MQTT transport must fail the sends still
// waiting for PUBACK. mqtt.js keeps QoS 1 callbacks across a forced end() when reconnectPeriod ≠ 0 and
// never calls them; the lane then waited forever on the replaced connection and delivery stopped
// after a certificate rotation under load. The peer here is a minimal MQTT server that accepts the
// connection and never acknowledges a publish, so sends are certainly in flight when close() runs.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { createMqttTransport } from '../../pkg/sinks/mqtt/mqtt.js';
import { silentLogger } from '../../pkg/observability/logger.js';
import type { ConnectionState } from '../../pkg/sinks/transport.js';
import { waitFor } from '../support/ports.js';

test('close() rejects sends the broker never acknowledged, so their readings are re-sent on the next connection', async () => {
  const sockets = new Set<net.Socket>();
  const server = net.createServer((socket) => {
    sockets.add(socket);
    socket.once('data', (data) => {
      if (data[0] >> 4 === 1) socket.write(Buffer.from([0x20, 0x02, 0x00, 0x00])); // CONNACK, accepted; PUBLISH is never acknowledged
    });
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as net.AddressInfo).port;
  const states: ConnectionState[] = [];
  const transport = createMqttTransport(
    { url: `mqtt://127.0.0.1:${port}`, qos: 1, protocolVersion: 4 } as never,
    { sink: { namespace: 'default', name: 'close-test' }, spec: {} as never, identity: { device: 'dev' }, logger: silentLogger(), onState: (state) => states.push(state) },
  );
  try {
    transport.start();
    await waitFor(() => states.some((state) => state.connected), { timeoutMs: 5000, what: 'connected' });
    const reading = { device: 'dev', sensor: 's', namespace: 'default', seq: 1, time: new Date().toISOString(), value: 1, quality: 'good' };
    const sent = transport.send([reading as never]);
    const outcome = sent.then(() => 'resolved', (error: Error) => `rejected: ${error.message}`);
    await new Promise((resolve) => setTimeout(resolve, 200));
    await transport.close();
    const settled = await Promise.race([outcome, new Promise((resolve) => setTimeout(() => resolve('still pending after 2 s'), 2000))]);
    assert.match(String(settled), /^rejected/, 'a send waiting for PUBACK must fail when the connection is closed');
  } finally {
    for (const socket of sockets) socket.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
});
