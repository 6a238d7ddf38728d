// The serial driver on real ttys: socat presents a TCP socket as a pty, and the test speaks for
// the device on that socket (see test/support/socat.ts).
import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { SensorletError } from '../../api/errors.js';
import type { Driver } from '../driver.js';
import { EmulatedSerialDevice, tempDir } from '../../../test/support/socat.js';
import { driverContext, StreamRecorder } from '../../../test/support/driver-context.js';
import { waitFor } from '../../../test/support/ports.js';
import { withChecksum } from './checksum.js';
import { serialDriver, type SerialConfig } from './serial.js';

const temp = tempDir();
const devices: EmulatedSerialDevice[] = [];
const drivers: Driver[] = [];

async function device(name: string): Promise<EmulatedSerialDevice> {
  const emulated = new EmulatedSerialDevice(temp.dir, name);
  await emulated.start();
  devices.push(emulated);
  return emulated;
}

function create(config: SerialConfig, options: Parameters<typeof driverContext>[0] = {}): Driver {
  assert.deepEqual(serialDriver.validate!(config, 'spec.driver.serial'), []);
  const driver = serialDriver.create(config, driverContext(options));
  drivers.push(driver);
  return driver;
}

async function readCode(driver: Driver, timeoutMs: number): Promise<string> {
  const error = await driver.read!(AbortSignal.timeout(timeoutMs)).then(
    (samples) => assert.fail(`expected an error, got ${JSON.stringify(samples)}`),
    (error: unknown) => error,
  );
  assert.ok(error instanceof SensorletError, String(error));
  return error.code;
}

/** Request/response reads retry like the runner would until the port is open. */
async function readWhenOpen(driver: Driver, timeoutMs = 1_000) {
  return waitFor(() => driver.read!(AbortSignal.timeout(timeoutMs)), { timeoutMs: 5_000, intervalMs: 100, what: 'a successful read' });
}

before(() => undefined);
after(async () => {
  await Promise.all(drivers.map((driver) => driver.close()));
  await Promise.all(devices.map((emulated) => emulated.stop()));
  temp.remove();
});

test('streams text frames with named groups, scale and offset', async () => {
  const dev = await device('ttyText');
  const recorder = new StreamRecorder();
  create({ port: dev.devicePath, frame: { delimiter: '\r\n', pattern: 'T=(?<value>-?[0-9.]+)' }, scale: 10, offset: 1 }).stream!(recorder);
  await waitFor(async () => {
    await dev.send('T=2.5\r\n');
    return recorder.samples.length > 0;
  }, { what: 'first streamed sample' });
  assert.equal(recorder.samples[0].value, 26);
  await dev.send('T=-1\r\nT=0.5\r\n');
  await recorder.waitForSample((sample) => sample.value === 6);
  assert.ok(recorder.samples.some((sample) => sample.value === -9));
});

test('two Sensors share one open port; each takes its own frames; garbage is BadFrame and they recover', async () => {
  const dev = await device('ttyShared');
  const shared = new Map<string, unknown>();
  const temperature = new StreamRecorder();
  const multi = new StreamRecorder();
  create({ port: dev.devicePath, frame: { pattern: '^T=(?<value>[0-9.]+)$' } }, { shared, name: 'temp' }).stream!(temperature);
  create({ port: dev.devicePath, frame: { pattern: '^H=(?<humidity>[0-9.]+) P=(?<pressure>[0-9.]+)$' } }, { shared, name: 'multi' }).stream!(multi);
  assert.equal([...shared.keys()].filter((key) => key.startsWith('serial:')).length, 1, 'one shared port');
  await waitFor(async () => {
    await dev.send('T=21.5\nH=40 P=1013\n');
    return temperature.samples.length > 0 && multi.samples.length > 0;
  }, { what: 'samples for both Sensors' });
  assert.equal(temperature.samples[0].value, 21.5);
  assert.deepEqual(multi.samples[0].values, { humidity: 40, pressure: 1013 });
  assert.equal(temperature.reasons().length, 0, 'frames for the other Sensor are not bad frames');

  const mark = temperature.mark();
  await dev.send('\u0000\u00ff#!garbage\n');
  await temperature.waitForFail('BadFrame', mark);
  await multi.waitForFail('BadFrame', mark);
  await dev.send('T=22\nH=41 P=1012\n');
  await temperature.waitForRecovered(mark);
  await multi.waitForRecovered(mark);
  assert.ok(temperature.samples.some((sample) => sample.value === 22));
});

test('a 10 MB line without a delimiter is discarded as BadFrame; memory stays bounded; the Sensor recovers', async () => {
  const dev = await device('ttyFlood');
  const recorder = new StreamRecorder();
  const driver = create({ port: dev.devicePath, frame: { pattern: 'T=(?<value>[0-9.]+)', maxLength: 4096 } });
  driver.stream!(recorder);
  await waitFor(async () => {
    await dev.send('T=1\n');
    return recorder.samples.length > 0;
  });
  const rssBefore = process.memoryUsage().rss;
  const block = Buffer.alloc(1024 * 1024, 'A');
  for (let i = 0; i < 10; i++) await dev.send(block);
  await dev.send('\nT=2\n');
  await recorder.waitForSample((sample) => sample.value === 2, 0, 30_000);
  assert.deepEqual(recorder.reasons(), ['BadFrame']);
  await waitFor(() => recorder.events.some((event) => event.kind === 'recovered'));
  assert.ok(driver.stats!().badFrames >= 1);
  const grownMb = (process.memoryUsage().rss - rssBefore) / 1024 / 1024;
  assert.ok(grownMb < 50, `rss grew by ${grownMb.toFixed(1)} MB`);
});

test('unplug yields DeviceGone; replug reopens the port by itself and the Sensor recovers', async () => {
  const dev = await device('ttyUnplug');
  const recorder = new StreamRecorder();
  create({ port: dev.devicePath, frame: { pattern: 'T=(?<value>[0-9.]+)' } }).stream!(recorder);
  await waitFor(async () => {
    await dev.send('T=1\n');
    return recorder.samples.length > 0;
  });
  const mark = recorder.mark();
  await dev.unplug();
  // A saturated machine can take seconds to report the pty's hang-up; the wait tolerates that.
  await recorder.waitForFail('DeviceGone', mark, 15_000);
  // While it is gone, reopening fails with PortNotFound (and backs off).
  await recorder.waitForFail('PortNotFound', mark);
  await dev.replug();
  await waitFor(async () => {
    await dev.send('T=7\n');
    return recorder.samples.some((sample) => sample.value === 7);
  }, { timeoutMs: 10_000, intervalMs: 200, what: 'a sample after replug' });
  await recorder.waitForRecovered(mark);
});

test('a streaming device that goes quiet yields Timeout, and recovers when it talks again', async () => {
  const dev = await device('ttyQuiet');
  const recorder = new StreamRecorder();
  create({ port: dev.devicePath, frame: { pattern: 'T=(?<value>[0-9.]+)' } }, { intervalMs: 100, timeoutMs: 300 }).stream!(recorder);
  await recorder.waitForFail('Timeout', 0, 5_000);
  await waitFor(async () => {
    await dev.send('T=3\n');
    return recorder.events.some((event) => event.kind === 'recovered');
  });
});

// A binary request/response device: request AA 01 <register> <crc16>, reply AA 02 <int16be> <uint16le> <crc16>.
function binaryConfig(dev: EmulatedSerialDevice, register: number): SerialConfig {
  return {
    port: dev.devicePath,
    mode: 'request',
    request: { hex: withChecksum('crc16-modbus', Buffer.from([0xaa, 0x01, register])).toString('hex') },
    frame: {
      binary: {
        start: 'aa02',
        size: 8,
        checksum: { type: 'crc16-modbus' },
        fields: [
          { name: 'temperature', byteOffset: 2, type: 'int16be', scale: 0.1 },
          { name: 'register', byteOffset: 4, type: 'uint16le' },
        ],
      },
    },
  };
}

function reply(register: number, tenthsOfDegree: number): Buffer {
  const body = Buffer.alloc(6);
  body.writeUInt16BE(0xaa02, 0);
  body.writeInt16BE(tenthsOfDegree, 2);
  body.writeUInt16LE(register, 4);
  return withChecksum('crc16-modbus', body);
}

test('request/response binary frames with CRC; two Sensors on one port are serialised', async () => {
  const dev = await device('ttyBinary');
  let inFlight = 0;
  let overlapped = false;
  dev.onRequest = (data, emulated) => {
    // Answer each request after a delay; a second request arriving meanwhile means no serialisation.
    if (++inFlight > 1) overlapped = true;
    const register = data[2];
    setTimeout(() => {
      inFlight--;
      void emulated.send(reply(register, register === 1 ? -123 : 456));
    }, 30);
  };
  const shared = new Map<string, unknown>();
  const first = create(binaryConfig(dev, 1), { shared });
  const second = create(binaryConfig(dev, 2), { shared });
  await readWhenOpen(first);
  for (let round = 0; round < 5; round++) {
    const [a, b] = await Promise.all([first.read!(AbortSignal.timeout(1_000)), second.read!(AbortSignal.timeout(1_000))]);
    assert.deepEqual(a[0].values, { temperature: -12.3, register: 1 });
    assert.deepEqual(b[0].values, { temperature: 45.6, register: 2 });
  }
  assert.equal(overlapped, false);
});

test('request/response faults: never answers, partial frame, bad checksum, garbage; each recovers', async () => {
  const dev = await device('ttyFaults');
  let behaviour: 'silent' | 'partial' | 'corrupt' | 'garbage' | 'good' = 'good';
  dev.onRequest = (_data, emulated) => {
    const good = reply(1, 200);
    if (behaviour === 'silent') return;
    if (behaviour === 'partial') void emulated.send(good.subarray(0, 5));
    if (behaviour === 'corrupt') {
      const corrupt = Buffer.from(good);
      corrupt[3] ^= 0x01;
      void emulated.send(corrupt);
    }
    if (behaviour === 'garbage') void emulated.send(Buffer.concat([Buffer.from('zzzz'), good]));
    if (behaviour === 'good') void emulated.send(good);
  };
  const driver = create(binaryConfig(dev, 1));
  assert.equal((await readWhenOpen(driver))[0].values!.temperature, 20);

  behaviour = 'silent';
  assert.equal(await readCode(driver, 300), 'Timeout');
  behaviour = 'partial';
  assert.equal(await readCode(driver, 300), 'Timeout');
  behaviour = 'corrupt';
  assert.equal(await readCode(driver, 1_000), 'ChecksumMismatch');
  behaviour = 'garbage'; // garbage before a good reply is skipped (and counted)
  assert.equal((await driver.read!(AbortSignal.timeout(1_000)))[0].values!.temperature, 20);
  behaviour = 'good'; // the partial frame left over earlier must not spoil this reply
  assert.equal((await driver.read!(AbortSignal.timeout(1_000)))[0].values!.temperature, 20);
  assert.ok(driver.stats!().badFrames >= 2);
});

test('request mode on a missing port is PortNotFound; text replies that never match are NoMatch', async () => {
  const missing = create({ port: '/dev/ttyUSB-sensorlet-test-missing', mode: 'request', request: { text: 'R\n' }, frame: { pattern: 'T=(?<value>[0-9.]+)' } });
  await new Promise((resolve) => setTimeout(resolve, 100));
  assert.equal(await readCode(missing, 300), 'PortNotFound');

  const dev = await device('ttyWrong');
  dev.onRequest = (_data, emulated) => void emulated.send('ERR busy\n');
  const wrong = create({ port: dev.devicePath, mode: 'request', request: { text: 'R\n' }, frame: { pattern: 'T=(?<value>[0-9.]+)' } });
  await waitFor(async () => (await readCode(wrong, 300)) === 'NoMatch', { what: 'NoMatch' });
  dev.onRequest = (_data, emulated) => void emulated.send('T=5\n');
  assert.equal((await wrong.read!(AbortSignal.timeout(1_000)))[0].value, 5);
});

test('validate reports bad regexes and fields that do not fit, with field paths', () => {
  const errors = serialDriver.validate!(
    { port: '/dev/x', frame: { binary: { size: 4, checksum: { type: 'crc16-modbus' }, fields: [{ name: 'v', byteOffset: 1, type: 'int16be' }] } } },
    'spec.driver.serial',
  );
  assert.deepEqual(errors.map((error) => error.path), ['spec.driver.serial.frame.binary.fields[0].byteOffset']);
  const regex = serialDriver.validate!({ port: '/dev/x', frame: { pattern: 'T=(?<value>[0-9' } }, 'spec.driver.serial');
  assert.deepEqual(regex.map((error) => error.path), ['spec.driver.serial.frame.pattern']);
  const request = serialDriver.validate!({ port: '/dev/x', mode: 'request', frame: { pattern: '(?<value>.*)' } }, 'spec.driver.serial');
  assert.deepEqual(request.map((error) => error.path), ['spec.driver.serial.request']);
});

test('isolation: a hung device delays neither another port nor, beyond its timeout, a Sensor sharing its port', async () => {
  const hung = await device('ttyHung');
  const healthy = await device('ttyHealthy');
  healthy.onRequest = (_data, emulated) => void emulated.send('T=1\n');
  const config = (dev: EmulatedSerialDevice): SerialConfig => ({ port: dev.devicePath, mode: 'request', request: { text: 'R\n' }, frame: { pattern: 'T=(?<value>[0-9.]+)' } });
  const shared = new Map<string, unknown>();
  const stuck = create(config(hung), { shared });
  const neighbour = create({ ...config(hung), request: { text: 'S\n' } }, { shared });
  const other = create(config(healthy), { shared });
  await readWhenOpen(other);
  await waitFor(() => shared.size >= 2 && (readCode(stuck, 100).then((code) => code === 'Timeout')));

  // The hung Sensor keeps timing out at 300 ms; the other port answers within a few ms meanwhile.
  const hangs = Array.from({ length: 3 }, () => readCode(stuck, 300));
  const latencies: number[] = [];
  for (let i = 0; i < 10; i++) {
    const started = performance.now();
    await other.read!(AbortSignal.timeout(1_000));
    latencies.push(performance.now() - started);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.ok(Math.max(...latencies) < 100, `other port latencies ${latencies.map((l) => l.toFixed(1)).join(', ')}`);
  assert.deepEqual(await Promise.all(hangs), ['Timeout', 'Timeout', 'Timeout']);

  // Same port: the neighbour waits at most for one exchange to time out, then gets its own Timeout.
  const started = performance.now();
  const [first, second] = await Promise.all([readCode(stuck, 300), readCode(neighbour, 700)]);
  assert.deepEqual([first, second], ['Timeout', 'Timeout']);
  assert.ok(performance.now() - started < 1_000);
});
