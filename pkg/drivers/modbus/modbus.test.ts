// The Modbus driver against pymodbus, an independent server: TCP on 127.0.0.1 and RTU over a
// socat pty pair.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { SensorletError } from '../../api/errors.js';
import type { Driver } from '../driver.js';
import { driverContext } from '../../../test/support/driver-context.js';
import { freePort, waitFor } from '../../../test/support/ports.js';
import { PymodbusServer, type ModbusTables } from '../../../test/support/pymodbus.js';
import { startPtyPair, tempDir, type Socat } from '../../../test/support/socat.js';
import { decodeRegisters, modbusDriver, type ModbusConfig } from './modbus.js';

/** The registers a device holds, encoded independently of the decoder under test. */
function words(kind: 'int16' | 'uint16' | 'int32' | 'uint32' | 'float32', value: number, wordOrder: 'bigEndian' | 'littleEndian' = 'bigEndian'): number[] {
  const bytes = Buffer.alloc(4);
  if (kind === 'int16') return [(value + 0x10000) & 0xffff];
  if (kind === 'uint16') return [value];
  if (kind === 'int32') bytes.writeInt32BE(value);
  if (kind === 'uint32') bytes.writeUInt32BE(value);
  if (kind === 'float32') bytes.writeFloatBE(value);
  const pair = [bytes.readUInt16BE(0), bytes.readUInt16BE(2)];
  return wordOrder === 'bigEndian' ? pair : pair.reverse();
}

const holding = [
  ...words('int16', -1234), // 0
  ...words('uint16', 65000), // 1
  ...words('int32', -123456789), // 2-3
  ...words('uint32', 4000000000), // 4-5
  ...words('float32', 21.5), // 6-7
  ...words('float32', -3.14159, 'littleEndian'), // 8-9
  ...words('int32', 70000, 'littleEndian'), // 10-11
];
const tables: ModbusTables = {
  unit: 1,
  coils: [1, 0, 1, 1, 0, 0, 0, 0],
  discrete: [0, 1, 0, 0, 0, 0, 0, 0],
  holding: [...holding, ...new Array(20 - holding.length).fill(0)],
  input: [2215, 1, 2, 3, ...new Array(16).fill(0)],
};

async function read(driver: Driver, timeoutMs = 2_000) {
  return driver.read!(AbortSignal.timeout(timeoutMs));
}

async function readCode(driver: Driver, timeoutMs = 3_000): Promise<string> {
  const error = await read(driver, timeoutMs).then(
    (samples) => assert.fail(`expected an error, got ${JSON.stringify(samples)}`),
    (error: unknown) => error,
  );
  assert.ok(error instanceof SensorletError, String(error));
  return error.code;
}

function suite(name: string, setup: () => Promise<{ link: Pick<ModbusConfig, 'tcp' | 'rtu'>; stop(): Promise<void> }>) {
  describe(name, () => {
    let link: Pick<ModbusConfig, 'tcp' | 'rtu'>;
    let stop: () => Promise<void>;
    const shared = new Map<string, unknown>();
    const drivers: Driver[] = [];
    const create = (config: Omit<ModbusConfig, 'tcp' | 'rtu'>, timeoutMs = 1_000) => {
      const full = { ...link, ...config } as ModbusConfig;
      assert.deepEqual(modbusDriver.validate!(full, 'spec.driver.modbus'), []);
      const driver = modbusDriver.create(full, driverContext({ shared, timeoutMs }));
      drivers.push(driver);
      return driver;
    };

    before(async () => {
      ({ link, stop } = await setup());
      // The server may still be binding: the first read retries like the runner would.
      const probe = create({ address: 1 });
      await waitFor(() => read(probe).then(() => true), { timeoutMs: 10_000, intervalMs: 200, what: 'pymodbus to answer' });
    });
    after(async () => {
      await Promise.all(drivers.map((driver) => driver.close()));
      await stop();
    });

    test('typed registers decode exactly, with word order and scale', async () => {
      const value = async (config: Omit<ModbusConfig, 'tcp' | 'rtu'>) => (await read(create(config)))[0].value;
      assert.equal(await value({ address: 0, type: 'int16' }), -1234);
      assert.equal(await value({ address: 1, type: 'uint16' }), 65000);
      assert.equal(await value({ address: 2, type: 'int32' }), -123456789);
      assert.equal(await value({ address: 4, type: 'uint32' }), 4000000000);
      assert.equal(await value({ address: 6, type: 'float32' }), 21.5);
      assert.equal(await value({ address: 8, type: 'float32', wordOrder: 'littleEndian' }), Math.fround(-3.14159));
      assert.equal(await value({ address: 10, type: 'int32', wordOrder: 'littleEndian' }), 70000);
      // 2215 * 0.01 - 20 is 2.150000000000002 in binary floating point; the reading is the decimal meant.
      assert.equal(await value({ function: 4, address: 0, scale: 0.01, offset: -20 }), 2.15);
      assert.deepEqual((await read(create({ function: 4, address: 1, count: 3 })))[0].values, { '1': 1, '2': 2, '3': 3 });
    });

    test('coils and discrete inputs', async () => {
      assert.deepEqual((await read(create({ function: 1, address: 0, count: 4 })))[0].values, { '0': 1, '1': 0, '2': 1, '3': 1 });
      assert.equal((await read(create({ function: 2, address: 1 })))[0].value, 1);
    });

    test('Sensors on one link are serialised and all get their answers', async () => {
      const many = Array.from({ length: 8 }, (_, i) => create({ address: i % 2, type: i % 2 ? 'uint16' : 'int16' }));
      const results = await Promise.all(many.map((driver) => read(driver, 5_000)));
      assert.deepEqual(results.map((samples) => samples[0].value), many.map((_, i) => (i % 2 ? 65000 : -1234)));
      assert.equal([...shared.keys()].filter((key) => key.startsWith('modbus:')).length, 1);
    });

    test('an exception response is ModbusException; a silent unit is Timeout; the link keeps working', async () => {
      assert.equal(await readCode(create({ address: 500 })), 'ModbusException');
      assert.equal(await readCode(create({ unitId: 9, address: 0 }, 300)), 'Timeout');
      assert.equal((await read(create({ address: 1 })))[0].value, 65000);
    });
  });
}

suite('modbus TCP (pymodbus)', async () => {
  const port = await freePort();
  const server = await PymodbusServer.start({ tcpPort: port }, tables);
  return { link: { tcp: { host: '127.0.0.1', port } }, stop: () => server.stop() };
});

suite('modbus RTU over a pty pair (pymodbus)', async () => {
  const temp = tempDir('sensorlet-modbus-');
  const pair: { a: string; b: string; socat: Socat } = await startPtyPair(temp.dir);
  const server = await PymodbusServer.start({ serialPath: pair.b, baudRate: 19200 }, tables).catch(async (error: unknown) => {
    // A peer that fails to start must fail the suite, not leave socat holding the process open.
    await pair.socat.stop();
    temp.remove();
    throw error;
  });
  return {
    link: { rtu: { port: pair.a, baudRate: 19200 } },
    async stop() {
      await server.stop();
      await pair.socat.stop();
      temp.remove();
    },
  };
});

test('connection refused is a coded error', async () => {
  const port = await freePort();
  const driver = modbusDriver.create({ tcp: { host: '127.0.0.1', port }, address: 0 }, driverContext());
  assert.equal(await readCode(driver), 'ConnectionRefused');
  await driver.close();
});

test('decodeRegisters and validate', () => {
  assert.deepEqual(decodeRegisters([0xffff, 0x7fff], 'int16', 'bigEndian'), [-1, 32767]);
  assert.deepEqual(decodeRegisters(words('float32', 1.5, 'littleEndian'), 'float32', 'littleEndian'), [1.5]);
  const errors = modbusDriver.validate!({ tcp: { host: 'x' }, address: 65530, count: 100, type: 'float32' }, 'spec.driver.modbus');
  assert.deepEqual(errors.map((error) => error.path), ['spec.driver.modbus.count', 'spec.driver.modbus.address']);
});
