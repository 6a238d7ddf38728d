// Issue 7 bench: readings/s end to end through the real agent (`sensorlet run`), measured as the
// rate the far end acknowledged (sensorlet_sink_published_total), in one run:
//   coapPerRequest  CoAP over UDP to libcoap, `payload: reading` (one confirmable request per reading)
//   coapSenml       CoAP over UDP to libcoap, `payload: senml-json` (one SenML pack per request,
//                   split to the default 1152-byte maxMessageSize)
//   mqttPerMessage  MQTT QoS 1 to Mosquitto, `payload: reading` (one message per reading)
// Each figure is one agent with a counter sensor offering far more than the sink can take, so the
// figure is the delivery path's. Peers are started and stopped here; every wait is bounded.
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import net from 'node:net';
import { pathToFileURL } from 'node:url';
import { LIBCOAP_SERVER } from '../support/libcoap.js';
import { Mosquitto } from '../support/mosquitto.js';
import { freePort, waitFor } from '../support/ports.js';
import { BENCH_POLICY_ARGS, AgentProcess, counterSensor, deliveredRate, manifestsDir, mqttSink } from './harness.js';

const WARMUP_MS = Number(process.env.BENCH_COAP_WARMUP_MS ?? 2000);
const WINDOW_MS = Number(process.env.BENCH_COAP_WINDOW_MS ?? 4000);

/**
 * coap-server-openssl without per-PDU logging (the test helper logs every PDU at -v 7, which
 * would measure libcoap's logging, not the agent). `-d` lets PUT create the resources.
 */
async function startQuietLibcoap(): Promise<{ url: string; stop(): Promise<void> }> {
  if (!existsSync(LIBCOAP_SERVER)) throw new Error('coap-server-openssl is not installed: run the README test command (apt-get install libcoap3-bin)');
  const port = await freePort();
  let output = '';
  const child: ChildProcess = spawn(LIBCOAP_SERVER, ['-A', '127.0.0.1', '-p', String(port), '-d', '1000', '-v', '3'], { stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (data) => (output = (output + data).slice(-4000)));
  child.stderr!.on('data', (data) => (output = (output + data).slice(-4000)));
  const stop = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), 3000);
    await exited;
    clearTimeout(timer);
  };
  try {
    // It opens UDP and TCP on the same port; TCP answering means it is up.
    await waitFor(() => canConnect(port), { timeoutMs: 10_000, what: `coap-server-openssl on ${port}: ${output}` });
  } catch (error) {
    await stop();
    throw error;
  }
  return { url: `coap://127.0.0.1:${port}`, stop };
}

function coapSink(name: string, url: string, payload: 'reading' | 'senml-json'): string {
  return `apiVersion: sensorlet.io/v1alpha1
kind: Sink
metadata: { name: ${name} }
spec:
  selector: {}
  coap: { url: "${url}", method: PUT, payload: ${payload}, path: "bench/{device}/{sensor}" }
  batch: { maxReadings: 500, maxDelay: 50ms }
  outbox: { maxBytes: 2Gi, whenFull: dropNewest }
`;
}

async function agentRate(files: Record<string, string>, sink: string): Promise<number> {
  const agent = await AgentProcess.start({ manifests: manifestsDir(files), deviceId: 'bench', extraArgs: BENCH_POLICY_ARGS });
  try {
    return await deliveredRate(agent, sink, WARMUP_MS, WINDOW_MS);
  } finally {
    await agent.stop();
    await agent.kill();
  }
}

export async function benchCoap(): Promise<{ coapPerRequest: number; coapSenml: number; mqttPerMessage: number }> {
  // Offer more than each path delivers (50k readings/s), so the figures are the delivery paths',
  // not the sensor's; not much more, since producing readings costs the agent CPU too (100k/s and
  // up measured the sensor's cost on a 2-CPU box and lowered every figure).
  const sensor = counterSensor('counter', '10ms', 500);
  // SenML packs carry ~40 readings per request and outrun 50k/s: offer 150k/s there.
  const fastSensor = counterSensor('counter', '10ms', 1500);
  const libcoap = await startQuietLibcoap();
  let coapPerRequest: number;
  let coapSenml: number;
  try {
    coapPerRequest = await agentRate({ 'sensor.yaml': sensor, 'sink.yaml': coapSink('bench-coap', libcoap.url, 'reading') }, 'bench-coap');
    coapSenml = await agentRate({ 'sensor.yaml': fastSensor, 'sink.yaml': coapSink('bench-coap-senml', libcoap.url, 'senml-json') }, 'bench-coap-senml');
  } finally {
    await libcoap.stop();
  }
  const broker = await Mosquitto.start();
  let mqttPerMessage: number;
  try {
    mqttPerMessage = await agentRate({ 'sensor.yaml': sensor, 'sink.yaml': mqttSink('bench-mqtt', broker.url, { payload: 'reading', maxReadings: 500, maxDelay: '50ms' }) }, 'bench-mqtt');
  } finally {
    await broker.stop();
  }
  return { coapPerRequest, coapSenml, mqttPerMessage };
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ port, host: '127.0.0.1' });
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}

// `node dist/test/bench/coap.js` runs it alone.
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const result = await benchCoap();
  console.log(`CoAP, one reading per request (readings/s): ${result.coapPerRequest.toFixed(0)}`);
  console.log(`CoAP, SenML JSON packs (readings/s):        ${result.coapSenml.toFixed(0)}`);
  console.log(`MQTT QoS 1, one reading per message (readings/s): ${result.mqttPerMessage.toFixed(0)}`);
}
