// The coap sink against libcoap's coap-server-openssl (a real, independent CoAP implementation):
// UDP delivery, loss with retransmission, server down and back, mutual TLS over RFC 8323, and a
// refused client certificate surfacing as a named reason. Every server is stopped by the test.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { createPrivateKey } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { silentLogger } from '../../observability/logger.js';
import type { Reading } from '../../api/reading.js';
import type { ConnectionIdentity, ConnectionState, TransportContext } from '../transport.js';
import type { SinkSpec } from '../../api/resource.js';
import { inMemoryKeySlot } from '../../pki/key-slot.js';
import { LibcoapServer } from '../../../test/support/libcoap.js';
import { waitFor } from '../../../test/support/ports.js';
import { CoapTransport, coapTransportFactory } from './coap.js';
import type { CoapSinkConfig } from './config.js';

const servers: LibcoapServer[] = [];
const transports: CoapTransport[] = [];
after(async () => {
  await Promise.all(transports.map((transport) => transport.close()));
  await Promise.all(servers.map((server) => server.stop()));
});

async function startServer(options: Parameters<typeof LibcoapServer.start>[0] = {}): Promise<LibcoapServer> {
  const server = await LibcoapServer.start(options);
  servers.push(server);
  return server;
}

function readings(count: number, sensors = ['boiler-temp', 'room'], firstSeq = 1): Reading[] {
  return Array.from({ length: count }, (_, index) => ({
    device: 'gw-7',
    sensor: sensors[index % sensors.length],
    namespace: 'default',
    tenant: 'acme',
    seq: firstSeq + index,
    time: new Date(Date.UTC(2024, 4, 1, 10, 0, 0, index * 10)).toISOString(),
    value: 20 + index / 4,
    unit: 'Cel',
    quality: 'good' as const,
  }));
}

function makeTransport(config: CoapSinkConfig, identity: ConnectionIdentity = { device: 'gw-7', tenant: 'acme' }, spec: Partial<SinkSpec> = {}) {
  const states: ConnectionState[] = [];
  const context: TransportContext = {
    sink: { namespace: 'default', name: 'plant-coap' },
    spec: { coap: config, ...spec } as SinkSpec,
    identity,
    logger: silentLogger(),
    onState: (state) => states.push(state),
  };
  const errors = coapTransportFactory.validate!(config, 'spec.coap', context.spec);
  assert.deepEqual(errors, []);
  const transport = coapTransportFactory.create(config, context) as CoapTransport;
  transports.push(transport);
  transport.start();
  return { transport, states };
}

/** Per sensor, the sequence numbers in arrival order: requests are grouped by sensor path. */
function bySensor(seqs: number[], batch: Reading[]): Record<string, number[]> {
  const sensorOf = new Map(batch.map((reading) => [reading.seq, reading.sensor]));
  const result: Record<string, number[]> = {};
  for (const seq of seqs) (result[sensorOf.get(seq) ?? '?'] ??= []).push(seq);
  return result;
}

/** Sequence numbers found in the JSON payloads the server logged, in arrival order. */
function loggedSeqs(server: LibcoapServer): number[] {
  return server.receivedRequests().flatMap((request) => {
    try {
      const parsed = JSON.parse(request.payload) as Reading | Reading[];
      return (Array.isArray(parsed) ? parsed : [parsed]).map((reading) => reading.seq);
    } catch {
      return [];
    }
  });
}

/** The log arrives through a pipe, possibly after the ACK: wait until `count` readings are in it. */
async function seqsAfter(server: LibcoapServer, count: number): Promise<number[]> {
  await waitFor(
    async () => {
      if (new Set(loggedSeqs(server)).size >= count) return true;
      await server.poke(5);
      return false;
    },
    { what: `${count} readings in the libcoap log`, timeoutMs: 5000, intervalMs: 100 },
  ).catch(() => undefined);
  return loggedSeqs(server);
}

const fastTiming = { ackTimeout: '100ms', ackRandomFactor: 1.5, maxRetransmit: 8 } as const;

test('plain CoAP over UDP: one PUT per reading reaches libcoap on the templated path', async () => {
  const server = await startServer();
  const { transport, states } = makeTransport({ url: server.udpUrl, method: 'PUT', payload: 'reading', ...fastTiming });
  const batch = readings(10);
  await transport.send(batch);
  const received = await waitFor(() => server.receivedRequests().length >= 10 && server.receivedRequests(), { what: 'requests in the libcoap log' });
  assert.deepEqual(bySensor(loggedSeqs(server), batch), bySensor(batch.map((reading) => reading.seq), batch));
  assert.deepEqual(new Set(received.map((request) => request.path)), new Set(['sensorlet/acme/gw-7/boiler-temp', 'sensorlet/acme/gw-7/room']));
  assert.ok(received.every((request) => request.type === 'CON' && request.code === 'PUT'));
  assert.equal(new Set(received.map((request) => request.messageId)).size, received.length, 'message IDs are unique');
  assert.deepEqual(states.at(-1), { connected: true });
  assert.deepEqual(transport.permanentFailures(), {});
});

test('POST with batch and SenML payloads: one request per sensor and chunk', async () => {
  const server = await startServer();
  for (const payload of ['batch', 'senml-json', 'senml-cbor'] as const) {
    // libcoap's -d creates resources on PUT only; POST to an existing one is 2.04.
    for (const method of ['PUT', 'POST'] as const) {
      const { transport } = makeTransport({ url: server.udpUrl, method, payload, path: '{tenant}/{device}/{sensor}/' + payload, ...fastTiming });
      await transport.send(readings(6));
      assert.deepEqual(transport.permanentFailures(), {});
    }
  }
  await seqsAfter(server, 6);
  await waitFor(() => server.receivedRequests().length >= 12, { what: '12 requests' });
  const requests = server.receivedRequests().filter((request) => request.code === 'POST');
  assert.equal(requests.length, 6, 'two sensors × three formats');
  assert.deepEqual(
    loggedSeqs(server).sort((a, b) => a - b),
    [1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6],
    'the JSON batches, PUT and POST',
  );
  for (const [payload, contentFormat] of [['senml-json', 'application/senml+json'], ['senml-cbor', 'application/senml+cbor'], ['batch', 'application/json']]) {
    const sent = requests.filter((request) => request.path.endsWith(payload));
    assert.equal(sent.length, 2, payload);
    assert.ok(sent.every((request) => request.options.includes(`Content-Format:${contentFormat}`)), `${payload}: ${sent[0].options}`);
  }
});

test('large chunks are split so every request fits maxMessageSize', async () => {
  const server = await startServer();
  const { transport } = makeTransport({ url: server.udpUrl, method: 'PUT', payload: 'batch', maxMessageSize: 400, ...fastTiming });
  await transport.send(readings(40, ['boiler-temp']));
  await seqsAfter(server, 40);
  const requests = server.receivedRequests();
  assert.ok(requests.length > 1, `expected several requests, got ${requests.length}`);
  assert.ok(requests.every((request) => request.payload.length <= 400));
  assert.deepEqual(loggedSeqs(server), readings(40).map((reading) => reading.seq));
});

test('30% loss at the server: every reading is delivered, duplicates counted', async () => {
  const server = await startServer({ loss: '30%' });
  const { transport } = makeTransport({ url: server.udpUrl, method: 'PUT', payload: 'reading', ...fastTiming });
  const batch = readings(60);
  for (let start = 0; start < batch.length; start += 10) await transport.send(batch.slice(start, start + 10));
  const seqs = await seqsAfter(server, 60);
  const unique = new Set(seqs);
  if (unique.size !== 60) writeFileSync(path.join(tmpdir(), 'sensorlet-coap-loss.log'), server.output);
  assert.equal(unique.size, 60, 'every reading arrived');
  const duplicates = seqs.length - unique.size;
  // With 30% of the ACKs lost, some requests must have been retransmitted and seen twice.
  assert.ok(duplicates > 0, 'retransmissions reached the server');
  console.log(`# 30% loss: 60 readings, ${seqs.length} requests received, ${duplicates} duplicates`);
});

test('server down: send rejects as retryable with a reason, then the same readings go through in order', async () => {
  const server = await startServer();
  const { transport, states } = makeTransport({ url: server.udpUrl, method: 'PUT', payload: 'reading', ackTimeout: '100ms', maxRetransmit: 2 });
  await transport.send(readings(2));
  await server.stop();
  const pending = readings(5, ['boiler-temp', 'room'], 3);
  await assert.rejects(transport.send(pending), (error: { code?: string }) => error.code === 'ConnectionRefused' || error.code === 'Timeout');
  assert.equal(states.at(-1)?.connected, false);
  assert.match(states.at(-1)?.reason ?? '', /^(ConnectionRefused|Timeout)$/);
  server.output = '';
  await server.restart();
  await transport.send(pending);
  assert.deepEqual(bySensor(await seqsAfter(server, 5), pending), { 'boiler-temp': [3, 5, 7], room: [4, 6] });
  assert.deepEqual(states.at(-1), { connected: true });
});

test('a variable containing / is refused: the reading is dropped for good and counted', async () => {
  const server = await startServer();
  const { transport, states } = makeTransport({ url: server.udpUrl, method: 'PUT', payload: 'reading', ...fastTiming });
  const [bad] = readings(1, ['evil/../x']);
  await transport.send([bad, ...readings(1, ['room'], 2)]);
  assert.deepEqual(transport.permanentFailures(), { InvalidPath: 1 });
  assert.ok(states.some((state) => state.reason === 'ReadingsRejected' && /InvalidPath|contains/.test(state.message ?? '')), JSON.stringify(states));
  assert.deepEqual(await seqsAfter(server, 1), [2]);
});

// ---- mutual TLS: CoAP over TLS (RFC 8323) with a test CA made with the openssl CLI ----

interface Pki {
  dir: string;
  caFile: string;
  serverCert: string;
  serverKey: string;
  client: { cert: string; key: string };
  rogueClient: { cert: string; key: string };
}

function makePki(): Pki {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-coap-pki-'));
  const file = (name: string) => path.join(dir, name);
  const openssl = (...args: string[]) => execFileSync('openssl', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  const makeCa = (name: string) => openssl('req', '-x509', ...ec, '-keyout', file(`${name}.key`), '-out', file(`${name}.crt`), '-subj', `/CN=${name}`, '-days', '2');
  const issue = (name: string, ca: string, san: string, usage: string) => {
    writeFileSync(file(`${name}.ext`), `subjectAltName=${san}\nextendedKeyUsage=${usage}\n`);
    openssl('req', ...ec, '-keyout', file(`${name}.key`), '-out', file(`${name}.csr`), '-subj', `/CN=${name}`);
    openssl('x509', '-req', '-in', file(`${name}.csr`), '-CA', file(`${ca}.crt`), '-CAkey', file(`${ca}.key`), '-CAcreateserial', '-out', file(`${name}.crt`), '-days', '2', '-extfile', file(`${name}.ext`));
  };
  makeCa('test-ca');
  makeCa('rogue-ca');
  issue('server', 'test-ca', 'IP:127.0.0.1,DNS:localhost', 'serverAuth');
  issue('device', 'test-ca', 'URI:spiffe://example.org/tenant/acme/device/gw-7', 'clientAuth');
  issue('rogue-device', 'rogue-ca', 'URI:spiffe://example.org/tenant/acme/device/gw-7', 'clientAuth');
  return {
    dir,
    caFile: file('test-ca.crt'),
    serverCert: file('server.crt'),
    serverKey: file('server.key'),
    client: { cert: file('device.crt'), key: file('device.key') },
    rogueClient: { cert: file('rogue-device.crt'), key: file('rogue-device.key') },
  };
}

function tlsIdentity(pki: Pki, client: { cert: string; key: string }): ConnectionIdentity {
  return {
    device: 'gw-7',
    tenant: 'acme',
    certificate: 'device-identity',
    keySlot: inMemoryKeySlot('pem', client.key, readFileSync(client.cert, 'utf8'), createPrivateKey(readFileSync(client.key)), readFileSync(pki.caFile, 'utf8')),
  };
}

test('coaps+tcp: mutual TLS with libcoap verifying the client certificate (-C)', async () => {
  const pki = makePki();
  const server = await startServer({ tls: { certFile: pki.serverCert, keyFile: pki.serverKey, caFile: pki.caFile } });
  const spec = { tls: { certificateRef: { name: 'device-identity' } } };
  const { transport, states } = makeTransport({ url: server.tlsUrl, method: 'POST', payload: 'reading', ...fastTiming }, tlsIdentity(pki, pki.client), spec);
  await waitFor(() => states.some((state) => state.connected), { what: 'TLS connection', timeoutMs: 10_000 });
  const batch = readings(20);
  await transport.send(batch);
  assert.deepEqual(bySensor(await seqsAfter(server, 20), batch), bySensor(batch.map((reading) => reading.seq), batch), 'pipelined over one stream, in order');
  assert.match(server.output, /CSM/, 'libcoap saw our CSM');
});

test('coaps+tcp: a client certificate from another CA is refused with a named reason', async () => {
  const pki = makePki();
  const server = await startServer({ tls: { certFile: pki.serverCert, keyFile: pki.serverKey, caFile: pki.caFile } });
  const spec = { tls: { certificateRef: { name: 'device-identity' } } };
  const { transport, states } = makeTransport({ url: server.tlsUrl, method: 'POST', payload: 'reading', ...fastTiming }, tlsIdentity(pki, pki.rogueClient), spec);
  const refused = await waitFor(() => states.find((state) => !state.connected), { what: 'a refused connection', timeoutMs: 10_000 });
  assert.equal(refused.reason, 'ClientCertificateRejected', refused.message);
  await assert.rejects(transport.send(readings(1)), (error: { code?: string }) => error.code === 'ClientCertificateRejected');
  assert.deepEqual(loggedSeqs(server), []);
});
