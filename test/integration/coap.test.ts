// Issue 7 through the real agent (`sensorlet run --manifests DIR`): a Sink with spec.coap against
// libcoap's coap-server-openssl (UDP, and CoAP over mutual TLS with -C), 30 % datagram loss, a 30 s
// server outage, SenML JSON/CBOR from both the coap and the mqtt sink decoded by independent
// decoders, and 4.xx answers that are dropped visibly. Every peer is started and stopped here.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import coap from 'coap';
import { decodeCborIndependently as decodeCbor } from '../support/cbor.js';
import mqtt from 'mqtt';
import { AgentProcess, policyArgs } from '../support/agent.js';
import { LibcoapServer } from '../support/libcoap.js';
import { Mosquitto } from '../support/mosquitto.js';
import { TestPki, spiffeId } from '../support/pki.js';
import { waitFor } from '../support/ports.js';
import { assertInOrderWithoutGaps } from '../support/sequences.js';
import { metricValue } from '../bench/harness.js';

const cleanups: (() => Promise<unknown> | unknown)[] = [];
after(async () => {
  for (const cleanup of cleanups.reverse()) await Promise.resolve(cleanup()).catch(() => undefined);
});

interface SeenReading {
  device: string;
  sensor: string;
  seq: number;
  time: string;
  value: number;
  unit?: string;
  tenant?: string;
}

// ---- manifests ----

function counterSensor(name: string, options: { interval?: string; samplesPerRead?: number; labels?: Record<string, string> } = {}): string {
  return `apiVersion: sensorlet.io/v1alpha1
kind: Sensor
metadata: { name: ${name}, labels: ${JSON.stringify(options.labels ?? { app: 'coap-test' })} }
spec:
  driver: { simulated: { waveform: counter, min: 0, step: 1${options.samplesPerRead ? `, samplesPerRead: ${options.samplesPerRead}` : ''} } }
  interval: ${options.interval ?? '50ms'}
  unit: Cel
`;
}

interface CoapSinkOptions {
  url: string;
  path?: string;
  method?: 'PUT' | 'POST';
  payload?: string;
  tls?: string;
  maxReadings?: number;
  maxDelay?: string;
  timing?: string;
  selector?: string;
}

/** Fast RFC 7252 timing so loss and outages resolve within a test's time. */
const FAST_TIMING = 'ackTimeout: 100ms, ackRandomFactor: 1.5, maxRetransmit: 8';

function coapSink(name: string, options: CoapSinkOptions): string {
  return `apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: ${name} }
spec:
  selector: ${options.selector ?? '{ matchLabels: { app: coap-test } }'}
  coap: { url: "${options.url}", method: ${options.method ?? 'PUT'}, payload: ${options.payload ?? 'reading'}, path: "${options.path ?? 'sensorlet/{tenant}/{device}/{sensor}'}", ${options.timing ?? FAST_TIMING} }
${options.tls ? `  tls: ${options.tls}\n` : ''}  batch: { maxReadings: ${options.maxReadings ?? 50}, maxDelay: ${options.maxDelay ?? '50ms'} }
`;
}

function manifests(files: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-coap-it-'));
  for (const [file, text] of Object.entries(files)) writeFileSync(path.join(dir, file), text);
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

async function startAgent(dir: string, deviceId = 'gw-7', extraArgs: string[] = []): Promise<AgentProcess> {
  const agent = await AgentProcess.start({ manifests: dir, deviceId, extraArgs });
  cleanups.push(() => agent.kill());
  return agent;
}

async function startLibcoap(options: Parameters<typeof LibcoapServer.start>[0] = {}): Promise<LibcoapServer> {
  const server = await LibcoapServer.start(options);
  cleanups.push(() => server.stop());
  return server;
}

async function sinkFacts(agent: AgentProcess, sink: string): Promise<Record<string, any>> {
  return (await agent.resource('Sink', sink))?.status.nodes[0] ?? {};
}

/**
 * Stops the sensors (removes their manifest) and returns how many readings each produced, from the
 * agent's own counter: what "every reading" must add up to.
 */
async function stopSensors(agent: AgentProcess, dir: string, file: string, sensors: string[]): Promise<Record<string, number>> {
  rmSync(path.join(dir, file));
  await waitFor(async () => {
    const names = (await agent.resources()).filter((item) => item.kind === 'Sensor').map((item) => item.metadata.name);
    return sensors.every((sensor) => !names.includes(sensor));
  }, { timeoutMs: 10_000, what: 'sensors removed' });
  await new Promise((resolve) => setTimeout(resolve, 300));
  const text = await agent.metrics();
  return Object.fromEntries(sensors.map((sensor) => [sensor, metricValue(text, 'sensorlet_readings_total', `sensor="${sensor}"`)]));
}

// ---- what libcoap received (payload: reading → one JSON reading per request) ----

function libcoapReadings(server: LibcoapServer): SeenReading[] {
  return server.receivedRequests().flatMap((request) => {
    try {
      const parsed = JSON.parse(request.payload) as SeenReading | SeenReading[];
      return Array.isArray(parsed) ? parsed : [parsed];
    } catch {
      return [];
    }
  });
}

/** The log trails the ACKs (see LibcoapServer.poke): wait until every expected reading shows up. */
async function waitForLibcoap(server: LibcoapServer, expected: Record<string, number>, timeoutMs = 30_000): Promise<SeenReading[]> {
  await waitFor(
    async () => {
      const seen = libcoapReadings(server);
      if (Object.entries(expected).every(([sensor, count]) => new Set(seen.filter((r) => r.sensor === sensor).map((r) => r.seq)).size >= count)) return true;
      await server.poke(5);
      return false;
    },
    { timeoutMs, intervalMs: 200, what: `readings in the libcoap log: want ${JSON.stringify(expected)}, have ${JSON.stringify(countBySensor(libcoapReadings(server)))}` },
  );
  return libcoapReadings(server);
}

function countBySensor(readings: SeenReading[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const sensor of new Set(readings.map((r) => r.sensor))) counts[sensor] = new Set(readings.filter((r) => r.sensor === sensor).map((r) => r.seq)).size;
  return counts;
}

/** Every seq 1..produced arrived for the sensor (duplicates allowed); returns the duplicate count. */
function assertEveryReading(readings: SeenReading[], sensor: string, produced: number): number {
  const mine = readings.filter((reading) => reading.sensor === sensor);
  const seqs = [...new Set(mine.map((reading) => reading.seq))].sort((a, b) => a - b);
  assert.ok(produced > 0, `${sensor}: produced nothing`);
  assert.equal(seqs.length, produced, `${sensor}: ${seqs.length} distinct readings arrived of ${produced} produced`);
  assert.equal(seqs[0], 1, `${sensor}: first seq`);
  assert.equal(seqs.at(-1), produced, `${sensor}: last seq`);
  // The counter driver makes value = seq - 1 in a fresh agent: the payload is the reading itself.
  for (const reading of mine) {
    assert.equal(reading.value, reading.seq - 1, `${sensor}#${reading.seq}: value`);
    assert.equal(reading.unit, 'Cel');
  }
  return mine.length - seqs.length;
}

/** First arrivals of each seq, in arrival order, must be 1, 2, 3... (in order, no gap). */
/** Something arrived, first copies in order without gaps, starting at the Sensor's first reading. */
function assertInOrder(readings: SeenReading[], sensor: string): void {
  const own = readings.filter((r) => r.sensor === sensor);
  assertInOrderWithoutGaps(own, sensor);
  assert.equal(own[0].seq, 1, `${sensor}: the first reading was not the first to arrive`);
}

// ---- tests ----

test('plain CoAP over UDP: the agent delivers every reading to libcoap', { timeout: 90_000 }, async () => {
  const server = await startLibcoap();
  const sensors = ['udp-a', 'udp-b'];
  const dir = manifests({
    'sensors.yaml': sensors.map((name) => counterSensor(name)).join('---\n'),
    'sink.yaml': coapSink('coap-udp', { url: server.udpUrl }),
  });
  const agent = await startAgent(dir);
  await agent.waitForCondition('Sink', 'coap-udp', 'Connected', 'True', undefined, 15_000);
  await waitForLibcoap(server, { 'udp-a': 30, 'udp-b': 30 });
  const produced = await stopSensors(agent, dir, 'sensors.yaml', sensors);
  const readings = await waitForLibcoap(server, produced);
  for (const sensor of sensors) {
    assertEveryReading(readings, sensor, produced[sensor]);
    assertInOrder(readings, sensor);
  }
  const requests = server.receivedRequests();
  assert.ok(requests.every((request) => request.type === 'CON' && request.code === 'PUT'));
  assert.deepEqual(new Set(requests.map((request) => request.path)), new Set(sensors.map((sensor) => `sensorlet/default/gw-7/${sensor}`)));
  await waitFor(async () => (await sinkFacts(agent, 'coap-udp')).queued === 0, { what: 'outbox empty' });
  assert.deepEqual((await sinkFacts(agent, 'coap-udp')).rejected, {});
  assert.equal(await agent.stop(), 0);
});

test('coaps+tcp with mutual TLS: libcoap verifies the Certificate (-C); a certificate of another CA is refused and named on the Sink', { timeout: 90_000 }, async () => {
  const pki = TestPki.create();
  cleanups.push(() => pki.remove());
  const serverCert = pki.issue({ name: 'coap-server', usage: 'server', cn: 'localhost', sans: ['DNS:localhost', 'IP:127.0.0.1'] });
  const device = pki.issue({ name: 'acme-gw7', cn: 'acme', sans: [spiffeId('acme', 'gw-7')] });
  const rogue = pki.issue({ name: 'rogue-gw7', cn: 'acme', sans: [spiffeId('acme', 'gw-7')], issuer: 'other' });
  const server = await startLibcoap({ tls: { certFile: serverCert.certFile, keyFile: serverCert.keyFile, caFile: pki.ca.certFile } });
  // Each Certificate is whole on its own (its chain checks against its own CA), so the rogue one
  // loads on the device and only the server's -C check can refuse it.
  const certificate = (name: string, files: { certFile: string; keyFile: string }, caFile: string) => `apiVersion: sensorlet.io/v1alpha1
kind: Certificate
metadata: { name: ${name} }
spec:
  pem: ${JSON.stringify({ certFile: files.certFile, keyFile: files.keyFile, caFile })}
`;
  const sensors = ['tls-a'];
  const dir = manifests({
    'sensors.yaml': counterSensor('tls-a'),
    'certs.yaml': certificate('device-identity', device, pki.ca.certFile) + '---\n' + certificate('rogue-identity', rogue, pki.otherCa.certFile),
    'sinks.yaml':
      coapSink('coap-mtls', { url: server.tlsUrl, tls: `{ certificateRef: { name: device-identity }, caFile: "${pki.ca.certFile}" }` }) +
      '---\n' +
      coapSink('coap-rogue', { url: server.tlsUrl, path: 'rogue/{sensor}', tls: `{ certificateRef: { name: rogue-identity }, caFile: "${pki.ca.certFile}" }` }),
  });
  const agent = await startAgent(dir, 'gw-7', policyArgs({ certificateDirs: [pki.dir], tenantGrants: { default: ['acme'] } }));
  await agent.waitForCondition('Sink', 'coap-mtls', 'Connected', 'True', undefined, 20_000);
  // The refused one: a named reason, not a generic failure.
  const refused = await agent.waitForCondition('Sink', 'coap-rogue', 'Connected', 'False', 'ClientCertificateRejected', 20_000);
  assert.ok(refused.message.length > 0, 'the condition says why');
  await waitForLibcoap(server, { 'tls-a': 20 });
  const produced = await stopSensors(agent, dir, 'sensors.yaml', sensors);
  const readings = await waitForLibcoap(server, produced);
  // Only the verified connection delivered; its readings carry the tenant from the certificate's SAN.
  assert.ok(server.receivedRequests().every((request) => request.path.startsWith('sensorlet/acme/gw-7/')), 'nothing arrived over the rogue certificate');
  assertEveryReading(readings, 'tls-a', produced['tls-a']);
  assertInOrder(readings, 'tls-a');
  assert.ok(readings.every((reading) => reading.tenant === 'acme'));
  assert.match(server.output, /CSM/, 'RFC 8323 CSM exchanged');
  assert.equal((await sinkFacts(agent, 'coap-rogue')).connected, false);
  assert.deepEqual((await sinkFacts(agent, 'coap-mtls')).rejected, {}, 'every PUT got a 2.xx');
  assert.equal(await agent.stop(), 0);
});

test('30 % datagram loss at libcoap (-l 30%): every reading is delivered; duplicates counted', { timeout: 120_000 }, async () => {
  const server = await startLibcoap({ loss: '30%' });
  const sensors = ['lossy-a', 'lossy-b'];
  const dir = manifests({
    'sensors.yaml': sensors.map((name) => counterSensor(name, { interval: '100ms' })).join('---\n'),
    'sink.yaml': coapSink('coap-lossy', { url: server.udpUrl }),
  });
  const agent = await startAgent(dir);
  await waitForLibcoap(server, { 'lossy-a': 40, 'lossy-b': 40 }, 60_000);
  const produced = await stopSensors(agent, dir, 'sensors.yaml', sensors);
  const readings = await waitForLibcoap(server, produced, 60_000);
  let duplicates = 0;
  try {
    for (const sensor of sensors) {
      duplicates += assertEveryReading(readings, sensor, produced[sensor]);
      assertInOrder(readings, sensor);
    }
  } finally {
    writeFileSync(path.join(tmpdir(), `sensorlet-coap-it-loss-${process.pid}.log`), server.output);
    writeFileSync(path.join(tmpdir(), `sensorlet-coap-it-loss-agent-${process.pid}.log`), agent.stdout + agent.stderr);
  }
  const total = produced['lossy-a'] + produced['lossy-b'];
  console.log(`# 30% loss through the agent: ${total} readings, ${readings.length} received, ${duplicates} duplicates`);
  assert.ok(duplicates > 0, 'with 30 % of the ACKs lost, retransmissions must have reached the server twice');
  assert.deepEqual((await sinkFacts(agent, 'coap-lossy')).rejected, {});
  assert.equal(await agent.stop(), 0);
});

test('libcoap down for 30 s: readings wait in the outbox, then arrive in order without gaps', { timeout: 180_000 }, async () => {
  const server = await startLibcoap();
  const sensors = ['outage-a', 'outage-b'];
  const dir = manifests({
    'sensors.yaml': sensors.map((name) => counterSensor(name, { interval: '50ms' })).join('---\n'),
    // reading per request, one sensor's readings per request path; a slow-ish give-up so a dead server is noticed in seconds.
    'sink.yaml': coapSink('coap-outage', { url: server.udpUrl, timing: 'ackTimeout: 100ms, ackRandomFactor: 1.5, maxRetransmit: 4' }),
  });
  const agent = await startAgent(dir);
  await waitForLibcoap(server, { 'outage-a': 20, 'outage-b': 20 });
  await server.stop();
  const downAt = Date.now();
  await agent.waitForCondition('Sink', 'coap-outage', 'Connected', 'False', undefined, 15_000);
  const queuedEarly = (await sinkFacts(agent, 'coap-outage')).queued as number;
  await new Promise((resolve) => setTimeout(resolve, 30_000 - (Date.now() - downAt)));
  const queuedLate = (await sinkFacts(agent, 'coap-outage')).queued as number;
  assert.ok(queuedLate > queuedEarly && queuedLate >= 400, `the outbox should grow while the server is down: ${queuedEarly} → ${queuedLate}`);
  await server.restart();
  const produced = await stopSensors(agent, dir, 'sensors.yaml', sensors);
  const readings = await waitForLibcoap(server, produced, 90_000);
  try {
    for (const sensor of sensors) {
      assertEveryReading(readings, sensor, produced[sensor]);
      assertInOrder(readings, sensor);
    }
  } finally {
    writeFileSync(path.join(tmpdir(), 'sensorlet-coap-it-outage.log'), server.output);
    writeFileSync(path.join(tmpdir(), 'sensorlet-coap-it-outage-agent.log'), agent.stdout + agent.stderr);
  }
  await waitFor(async () => (await sinkFacts(agent, 'coap-outage')).queued === 0, { what: 'outbox drained', timeoutMs: 10_000 });
  await agent.waitForCondition('Sink', 'coap-outage', 'Connected', 'True');
  assert.equal(await agent.stop(), 0);
});

// ---- an independent CoAP receiver (the `coap` npm package) for SenML payloads and 4.xx ----

interface CoapReceived {
  path: string;
  contentFormat: unknown;
  payload: Buffer;
}

async function startCoapReceiver(answer: (path: string) => string = () => '2.04'): Promise<{ port: number; received: CoapReceived[] }> {
  const received: CoapReceived[] = [];
  const server = coap.createServer({ type: 'udp4' });
  server.on('request', (request: any, response: any) => {
    const requestPath = String(request.url).replace(/^\//, '');
    received.push({ path: requestPath, contentFormat: request.headers['Content-Format'], payload: Buffer.from(request.payload) });
    response.code = answer(requestPath);
    response.end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', () => resolve()));
  cleanups.push(() => new Promise((resolve) => server.close(() => resolve(undefined))));
  return { port: (server as any)._sock.address().port, received };
}

/** RFC 8428 table 4, spelled out here rather than taken from the encoder under test. */
const CBOR_LABELS: Record<number, string> = { [-2]: 'bn', [-3]: 'bt', [-4]: 'bu', 0: 'n', 1: 'u', 2: 'v', 6: 't' };

function cborPack(payload: Buffer): Record<string, unknown>[] {
  const decoded = decodeCbor(payload) as unknown[];
  assert.ok(Array.isArray(decoded), 'a SenML CBOR pack is an array');
  return decoded.map((record) => {
    const entries = record instanceof Map ? [...record.entries()] : Object.entries(record as object);
    const labelled: Record<string, unknown> = {};
    for (const [key, value] of entries) {
      const label = CBOR_LABELS[Number(key)];
      assert.ok(label, `unknown SenML CBOR label ${String(key)}`);
      labelled[label] = value;
    }
    return labelled;
  });
}

interface ResolvedRecord {
  name: string;
  timeMs: number;
  unit?: string;
  value: number;
}

/** RFC 8428 section 4.6 resolution: base values carry forward through the pack. */
function resolvePack(pack: Record<string, unknown>[]): ResolvedRecord[] {
  let bn = '';
  let bt = 0;
  let bu: string | undefined;
  return pack.map((record) => {
    if (record.bn !== undefined) bn = record.bn as string;
    if (record.bt !== undefined) bt = record.bt as number;
    if (record.bu !== undefined) bu = record.bu as string;
    return {
      name: bn + ((record.n as string | undefined) ?? ''),
      // Readings have millisecond times; seconds as a float round back to the exact millisecond.
      timeMs: Math.round((bt + ((record.t as number | undefined) ?? 0)) * 1000),
      unit: (record.u as string | undefined) ?? bu,
      value: record.v as number,
    };
  });
}

function expectedRecord(reading: SeenReading): ResolvedRecord {
  return { name: `${reading.device}/${reading.sensor}/`, timeMs: Date.parse(reading.time), unit: reading.unit, value: reading.value };
}

const recordKey = (record: ResolvedRecord) => `${record.name}@${record.timeMs}`;

/**
 * SenML records against the reference readings (the same sensors through a `batch` sink): per
 * sensor, up to the last time both have seen, exactly the same records (name, time, unit, value).
 */
function assertSenmlMatches(records: ResolvedRecord[], reference: SeenReading[], sensors: string[], what: string): void {
  for (const sensor of sensors) {
    const expected = new Map(reference.filter((r) => r.sensor === sensor).map((r) => [recordKey(expectedRecord(r)), expectedRecord(r)]));
    const actual = new Map(records.filter((r) => r.name.endsWith(`/${sensor}/`)).map((r) => [recordKey(r), r]));
    assert.ok(expected.size >= 10 && actual.size >= 10, `${what} ${sensor}: too few readings (${expected.size} reference, ${actual.size} SenML)`);
    const cutoff = Math.min(Math.max(...[...expected.values()].map((r) => r.timeMs)), Math.max(...[...actual.values()].map((r) => r.timeMs)));
    const upTo = (map: Map<string, ResolvedRecord>) => [...map.values()].filter((r) => r.timeMs <= cutoff).sort((a, b) => a.timeMs - b.timeMs);
    assert.deepEqual(upTo(actual), upTo(expected), `${what} ${sensor}: SenML records differ from the readings`);
  }
}

test('SenML JSON and CBOR from the coap sink decode independently and match the readings exactly', { timeout: 90_000 }, async () => {
  const receiver = await startCoapReceiver();
  const url = `coap://127.0.0.1:${receiver.port}`;
  const sensors = ['senml-a', 'senml-b'];
  const dir = manifests({
    'sensors.yaml': sensors.map((name) => counterSensor(name, { interval: '50ms', samplesPerRead: 3 })).join('---\n'),
    'sinks.yaml': [
      coapSink('coap-ref', { url, payload: 'batch', path: 'ref/{sensor}' }),
      coapSink('coap-senml-json', { url, payload: 'senml-json', path: 'json/{sensor}' }),
      coapSink('coap-senml-cbor', { url, payload: 'senml-cbor', path: 'cbor/{sensor}' }),
    ].join('---\n'),
  });
  const agent = await startAgent(dir);
  const of = (prefix: string) => receiver.received.filter((request) => request.path.startsWith(prefix));
  await waitFor(() => ['ref/', 'json/', 'cbor/'].every((prefix) => of(prefix).length >= 10), { timeoutMs: 30_000, what: 'requests on every path' });
  await stopSensors(agent, dir, 'sensors.yaml', sensors);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.equal(await agent.stop(), 0);

  const reference = of('ref/').flatMap((request) => JSON.parse(request.payload.toString('utf8')) as SeenReading[]);
  assert.ok(of('json/').every((request) => request.contentFormat === 'application/senml+json'), 'content-format 110');
  assert.ok(of('cbor/').every((request) => request.contentFormat === 'application/senml+cbor'), 'content-format 112');
  const jsonRecords = of('json/').flatMap((request) => resolvePack(JSON.parse(request.payload.toString('utf8'))));
  const cborRecords = of('cbor/').flatMap((request) => resolvePack(cborPack(request.payload)));
  assertSenmlMatches(jsonRecords, reference, sensors, 'coap senml-json');
  assertSenmlMatches(cborRecords, reference, sensors, 'coap senml-cbor');
});

test('SenML JSON and CBOR from the mqtt sink (MQTT 5, Mosquitto) decode independently and match the readings exactly', { timeout: 90_000 }, async () => {
  const broker = await Mosquitto.start();
  cleanups.push(() => broker.stop());
  const messages: { topic: string; payload: Buffer; contentType?: string }[] = [];
  const client = await mqtt.connectAsync(broker.url, { protocolVersion: 5, clean: true });
  cleanups.push(() => client.endAsync(true));
  client.on('message', (topic, payload, packet) => messages.push({ topic, payload: Buffer.from(payload), contentType: packet.properties?.contentType }));
  await client.subscribeAsync('#', { qos: 1 });
  const mqttSink = (name: string, payload: string, prefix: string) => `apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: ${name} }
spec:
  selector: { matchLabels: { app: coap-test } }
  mqtt: { url: "${broker.url}", protocolVersion: 5, qos: 1, payload: ${payload}, topic: "${prefix}/{sensor}" }
  batch: { maxReadings: 50, maxDelay: 50ms }
`;
  const sensors = ['mqtt-senml-a', 'mqtt-senml-b'];
  const dir = manifests({
    'sensors.yaml': sensors.map((name) => counterSensor(name, { interval: '50ms', samplesPerRead: 3 })).join('---\n'),
    'sinks.yaml': [mqttSink('mqtt-ref', 'batch', 'ref'), mqttSink('mqtt-senml-json', 'senml-json', 'json'), mqttSink('mqtt-senml-cbor', 'senml-cbor', 'cbor')].join('---\n'),
  });
  const agent = await startAgent(dir);
  const of = (prefix: string) => messages.filter((message) => message.topic.startsWith(prefix));
  await waitFor(() => ['ref/', 'json/', 'cbor/'].every((prefix) => of(prefix).length >= 10), { timeoutMs: 30_000, what: 'messages on every topic' });
  await stopSensors(agent, dir, 'sensors.yaml', sensors);
  await new Promise((resolve) => setTimeout(resolve, 1000));
  assert.equal(await agent.stop(), 0);

  const reference = of('ref/').flatMap((message) => JSON.parse(message.payload.toString('utf8')) as SeenReading[]);
  assert.ok(of('json/').every((message) => message.contentType === 'application/senml+json'), `MQTT 5 content type: ${of('json/')[0]?.contentType}`);
  assert.ok(of('cbor/').every((message) => message.contentType === 'application/senml+cbor'), `MQTT 5 content type: ${of('cbor/')[0]?.contentType}`);
  const jsonRecords = of('json/').flatMap((message) => resolvePack(JSON.parse(message.payload.toString('utf8'))));
  const cborRecords = of('cbor/').flatMap((message) => resolvePack(cborPack(message.payload)));
  assertSenmlMatches(jsonRecords, reference, sensors, 'mqtt senml-json');
  assertSenmlMatches(cborRecords, reference, sensors, 'mqtt senml-cbor');
});

test('4.xx is permanent: dropped with a reason, visible as sensorlet_sink_rejected_total and the Sink\'s rejected fact; the outbox keeps moving', { timeout: 90_000 }, async () => {
  // The receiver refuses one path for good (4.03) and accepts the other.
  const receiver = await startCoapReceiver((requestPath) => (requestPath.startsWith('forbidden/') ? '4.03' : '2.04'));
  const url = `coap://127.0.0.1:${receiver.port}`;
  const dir = manifests({
    'sensors.yaml': counterSensor('refused-a', { interval: '50ms' }),
    'sinks.yaml': [coapSink('coap-refused', { url, path: 'forbidden/{sensor}' }), coapSink('coap-accepted', { url, path: 'ok/{sensor}' })].join('---\n'),
  });
  const agent = await startAgent(dir);
  const rejected = await waitFor(
    async () => {
      const facts = await sinkFacts(agent, 'coap-refused');
      return facts.rejected?.['4.03'] >= 20 ? facts : undefined;
    },
    { timeoutMs: 20_000, what: 'rejected fact on Sink coap-refused' },
  );
  // Dropped, not retried: the outbox does not pile up behind the refused readings.
  assert.ok(rejected.queued < 100, `queued ${rejected.queued}`);
  const requests = receiver.received.filter((request) => request.path.startsWith('forbidden/'));
  const sent = requests.map((request) => (JSON.parse(request.payload.toString('utf8')) as SeenReading).seq);
  assert.equal(new Set(sent).size, sent.length, 'a refused reading is never sent again');
  const metrics = await agent.metrics();
  const counted = metricValue(metrics, 'sensorlet_sink_rejected_total', 'code="4.03"');
  assert.ok(/sensorlet_sink_rejected_total\{namespace="default",sink="coap-refused",code="4.03"\} \d+/.test(metrics), 'metric labelled with namespace, sink and code');
  assert.ok(counted >= 20, `sensorlet_sink_rejected_total ${counted}`);
  assert.equal(metricValue(metrics, 'sensorlet_sink_rejected_total', 'sink="coap-accepted"'), 0);
  assert.deepEqual((await sinkFacts(agent, 'coap-accepted')).rejected, {});
  assert.equal((await agent.condition('Sink', 'coap-refused', 'Ready'))?.status, 'True');
  assert.match(agent.stdout + agent.stderr, /dropped for good: server answered 4\.03/, 'the drop is logged with its reason');
  assert.equal(await agent.stop(), 0);
});
