// Response handling against an independent CoAP server (the `coap` package): 4.xx is dropped on
// purpose and counted, 5.xx rejects for a later retry, and SenML CBOR arrives as sent.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type OutgoingMessage } from 'coap';
import { decodeCborIndependently } from '../../../test/support/cbor.js';
import dgram from 'node:dgram';
import { MessageType, decodeDatagram, encodeDatagram } from './codec.js';
import { silentLogger } from '../../observability/logger.js';
import type { Reading } from '../../api/reading.js';
import type { ConnectionState, TransportContext } from '../transport.js';
import type { SinkSpec } from '../../api/resource.js';
import { freePort } from '../../../test/support/ports.js';
import { CoapTransport } from './coap.js';
import type { CoapSinkConfig } from './config.js';

type Handler = (request: IncomingMessage, response: OutgoingMessage) => void;
let handler: Handler = (_, response) => response.end();
const server = createServer((request: IncomingMessage, response: OutgoingMessage) => handler(request, response));
const port = await freePort();
await new Promise<void>((resolve) => server.listen(port, '127.0.0.1', () => resolve()));
const transports: CoapTransport[] = [];
after(async () => {
  await Promise.all(transports.map((transport) => transport.close()));
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function make(config: Partial<CoapSinkConfig> = {}) {
  const states: ConnectionState[] = [];
  const full: CoapSinkConfig = { url: `coap://127.0.0.1:${port}`, ackTimeout: '100ms', maxRetransmit: 3, ...config };
  const context: TransportContext = {
    sink: { namespace: 'default', name: 'test' },
    spec: { coap: full } as SinkSpec,
    identity: { device: 'gw-7', tenant: 'acme' },
    logger: silentLogger(),
    onState: (state) => states.push(state),
  };
  const transport = new CoapTransport(full, context);
  transports.push(transport);
  transport.start();
  return { transport, states };
}

const batch: Reading[] = [1, 2, 3].map((seq) => ({
  device: 'gw-7', sensor: 'boiler-temp', namespace: 'default', tenant: 'acme', seq,
  time: new Date(Date.UTC(2024, 0, 1, 0, 0, seq)).toISOString(), value: seq * 1.5, unit: 'Cel', quality: 'good' as const,
}));

test('4.xx: readings dropped on purpose, counted by code, reported, send resolves', async () => {
  handler = (_, response) => {
    response.code = '4.04';
    response.end('no such sensor');
  };
  const { transport, states } = make({ payload: 'reading' });
  await transport.send(batch);
  assert.deepEqual(transport.permanentFailures(), { '4.04': 3 });
  const reported = states.find((state) => state.reason === 'ReadingsRejected');
  assert.ok(reported, JSON.stringify(states));
  assert.match(reported.message ?? '', /4\.04/);
});

test('5.xx: send rejects so the outbox retries; nothing counted as permanent', async () => {
  handler = (_, response) => {
    response.code = '5.03';
    response.end();
  };
  const { transport } = make({ payload: 'senml-json' });
  await assert.rejects(transport.send(batch), (error: { responseCode?: string }) => error.responseCode === '5.03');
  assert.deepEqual(transport.permanentFailures(), {});
});

test('senml-cbor: content-format 112, RFC 8428 integer labels, values as sent', async () => {
  const received: Array<{ url: string; format: unknown; payload: Buffer }> = [];
  handler = (request, response) => {
    received.push({ url: request.url, format: request.headers['Content-Format'], payload: request.payload });
    response.code = '2.04';
    response.end();
  };
  const { transport } = make({ payload: 'senml-cbor', method: 'POST' });
  await transport.send(batch);
  assert.equal(received.length, 1);
  assert.equal(received[0].url, '/sensorlet/acme/gw-7/boiler-temp');
  assert.equal(received[0].format, 'application/senml+cbor');
  const pack = decodeCborIndependently(received[0].payload) as Array<Map<number, unknown>>;
  const bt = pack[0].get(-3) as number;
  assert.equal(pack[0].get(-2), 'gw-7/boiler-temp/');
  assert.equal(pack[0].get(-4), 'Cel');
  assert.deepEqual(
    pack.map((record) => [bt + ((record.get(6) as number | undefined) ?? 0), record.get(2)]),
    batch.map((reading) => [Date.parse(reading.time) / 1000, reading.value]),
  );
});

test('a duplicate ACK is ignored: counted, and it completes nothing else', async () => {
  // A raw UDP peer that answers every request with the same piggybacked ACK twice.
  const peer = dgram.createSocket('udp4');
  await new Promise<void>((resolve) => peer.bind(0, '127.0.0.1', () => resolve()));
  const messageIds: number[] = [];
  peer.on('message', (datagram, from) => {
    const request = decodeDatagram(datagram);
    messageIds.push(request.messageId!);
    const ack = encodeDatagram({ type: MessageType.Acknowledgement, code: (2 << 5) | 4, messageId: request.messageId, token: request.token, options: [], payload: Buffer.alloc(0) });
    peer.send(ack, from.port, from.address);
    peer.send(ack, from.port, from.address);
  });
  try {
    const { transport } = make({ url: `coap://127.0.0.1:${(peer.address() as { port: number }).port}`, payload: 'reading' });
    await transport.send(batch);
    await transport.send(batch);
    const stats = (transport as unknown as { udp: { stats: { requests: number; duplicateAcks: number } } }).udp.stats;
    assert.equal(stats.requests, 6);
    assert.equal(new Set(messageIds).size, 6, 'unique message IDs');
    await new Promise((resolve) => setTimeout(resolve, 50));
    assert.equal(stats.duplicateAcks, 6);
  } finally {
    peer.close();
  }
});
