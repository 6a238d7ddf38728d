// pymodbus (Debian's python3-pymodbus, 3.0.x API) as an independent Modbus server for driver tests,
// over TCP on 127.0.0.1 or RTU on a tty (one end of a socat pty pair). Unit `unit` serves the
// given tables; other unit ids are ignored, so requests to them time out as on a real bus.
// `registers()` / `setRegisters()` read and change the server's own memory over its stdin, never
// through Modbus: what a test checks there is what the device holds, not what a client says.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export const SYSTEM_PYTHON = '/usr/bin/python3';

export interface ModbusTables {
  unit: number;
  coils: number[];
  discrete: number[];
  holding: number[];
  input: number[];
}

const SERVER_SCRIPT = `
import asyncio, json, sys, threading
from pymodbus.server import StartAsyncTcpServer, StartAsyncSerialServer
from pymodbus.datastore import ModbusSequentialDataBlock, ModbusSlaveContext, ModbusServerContext
from pymodbus.framer.rtu_framer import ModbusRtuFramer

cfg = json.loads(sys.argv[1])
def block(values):
    return ModbusSequentialDataBlock(0, values)
# zero_mode: protocol address N is table index N (pymodbus otherwise adds one).
slave = ModbusSlaveContext(co=block(cfg["coils"]), di=block(cfg["discrete"]), hr=block(cfg["holding"]), ir=block(cfg["input"]), zero_mode=True)
context = ModbusServerContext(slaves={cfg["unit"]: slave}, single=False)

# Test control over stdin: {"id", "op": "get"|"set", "fx": 1|3, "address", "count"|"values"}.
def control():
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "get":
            values = [int(v) for v in slave.getValues(request["fx"], request["address"], request["count"])]
        else:
            slave.setValues(request["fx"], request["address"], request["values"])
            values = []
        print("reply " + json.dumps({"id": request["id"], "values": values}), flush=True)
threading.Thread(target=control, daemon=True).start()

async def main():
    print("starting", flush=True)
    if cfg["mode"] == "tcp":
        await StartAsyncTcpServer(context=context, address=("127.0.0.1", cfg["port"]), ignore_missing_slaves=True)
    else:
        await StartAsyncSerialServer(context=context, framer=ModbusRtuFramer, port=cfg["port"], baudrate=cfg["baudRate"], ignore_missing_slaves=True)

asyncio.run(main())
`;

function requirePymodbus(): string {
  // A missing peer must fail loudly, never skip.
  if (!existsSync(SYSTEM_PYTHON)) throw new Error(`${SYSTEM_PYTHON} is missing: apt-get install python3-pymodbus`);
  const probe = spawnSync(SYSTEM_PYTHON, ['-c', 'import pymodbus; print(pymodbus.__version__)'], { encoding: 'utf8' });
  if (probe.status !== 0) throw new Error(`pymodbus is missing for ${SYSTEM_PYTHON}: apt-get install python3-pymodbus\n${probe.stderr}`);
  return probe.stdout.trim();
}

export class PymodbusServer {
  private child: ChildProcess | undefined;
  output = '';
  private nextId = 0;
  private readonly waiting = new Map<number, (values: number[]) => void>();

  private constructor() {}

  static async start(target: { tcpPort: number } | { serialPath: string; baudRate?: number }, tables: ModbusTables): Promise<PymodbusServer> {
    requirePymodbus();
    const script = path.join(os.tmpdir(), `sensorlet-pymodbus-server-${process.pid}.py`);
    writeFileSync(script, SERVER_SCRIPT);
    const cfg =
      'tcpPort' in target
        ? { mode: 'tcp', port: target.tcpPort, ...tables }
        : { mode: 'rtu', port: target.serialPath, baudRate: target.baudRate ?? 9600, ...tables };
    const server = new PymodbusServer();
    const child = spawn(SYSTEM_PYTHON, [script, JSON.stringify(cfg)], { stdio: ['pipe', 'pipe', 'pipe'] });
    server.child = child;
    const collect = (chunk: Buffer) => (server.output = (server.output + chunk.toString()).slice(-4000));
    child.stdout!.on('data', collect);
    let pending = '';
    child.stdout!.on('data', (chunk: Buffer) => {
      pending += chunk.toString();
      const lines = pending.split('\n');
      pending = lines.pop()!;
      for (const line of lines) {
        if (!line.startsWith('reply ')) continue;
        const reply = JSON.parse(line.slice(6)) as { id: number; values: number[] };
        server.waiting.get(reply.id)?.(reply.values);
        server.waiting.delete(reply.id);
      }
    });
    child.stderr!.on('data', collect);
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`pymodbus did not start: ${server.output}`)), 10_000);
      child.once('exit', (code) => reject(new Error(`pymodbus exited with ${code}: ${server.output}`)));
      child.stdout!.on('data', () => {
        if (server.output.includes('starting')) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    return server;
  }

  private control(request: Record<string, unknown>): Promise<number[]> {
    const child = this.child;
    if (!child) throw new Error('pymodbus is not running');
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`pymodbus did not answer ${JSON.stringify(request)}: ${this.output}`)), 5_000);
      this.waiting.set(id, (values) => {
        clearTimeout(timer);
        resolve(values);
      });
      child.stdin!.write(`${JSON.stringify({ id, ...request })}\n`);
    });
  }

  /** The raw values the server holds: holding registers (table 3) or coils (table 1). */
  registers(table: 'holding' | 'coils', address: number, count: number): Promise<number[]> {
    return this.control({ op: 'get', fx: table === 'holding' ? 3 : 1, address, count });
  }

  /** Changes the server's memory behind every client's back, as a local panel or a reset would. */
  async setRegisters(table: 'holding' | 'coils', address: number, values: number[]): Promise<void> {
    await this.control({ op: 'set', fx: table === 'holding' ? 3 : 1, address, values });
  }

  async stop(): Promise<void> {
    const child = this.child;
    this.child = undefined;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
}
