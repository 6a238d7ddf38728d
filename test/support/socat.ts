// Real pseudo-terminals for serial tests, made by socat. Either a pty pair (both ends are ttys, e.g.
// a Modbus RTU server on one end and the driver on the other), or a pty bridged to a TCP server the
// test runs as the device emulator. Stopping socat is an "unplug": the tty disappears; starting it
// again with the same link path is the "replug".
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { freePort, waitFor } from './ports.js';
import { DEFAULT_SERIAL_ALLOW_PREFIXES } from '../../pkg/policy/policy.js';

/** Agent flags that let serial Sensors open the tests' socat pseudo-terminals (/dev/pts/N), as an operator would. */
export const PTY_SERIAL_ARGS = ['--serial-allow-prefix', ...DEFAULT_SERIAL_ALLOW_PREFIXES, '/dev/pts/'];

const SOCAT = '/usr/bin/socat';

function requireSocat(): void {
  // A missing peer must fail the test loudly, never skip it.
  if (!existsSync(SOCAT)) throw new Error(`${SOCAT} is missing: apt-get install socat`);
}

export function tempDir(prefix = 'sensorlet-serial-'): { dir: string; remove(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), prefix));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

/** One socat process whose addresses create the given pty links. */
export class Socat {
  private child: ChildProcess | undefined;

  constructor(
    private readonly addresses: [string, string],
    private readonly links: string[],
  ) {}

  async start(): Promise<void> {
    requireSocat();
    if (this.child) throw new Error('socat already running');
    const child = spawn(SOCAT, [...this.addresses], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr!.on('data', (chunk) => (stderr = (stderr + chunk).slice(-2000)));
    this.child = child;
    let exited = false;
    child.once('exit', () => (exited = true));
    await waitFor(
      () => {
        if (exited) throw new Error(`socat exited: ${stderr}`);
        return this.links.every((link) => existsSync(link));
      },
      { timeoutMs: 5_000, intervalMs: 20, what: `socat links ${this.links.join(', ')}` },
    );
  }

  /** Unplug: kills socat and waits until its ptys are gone. */
  async stop(): Promise<void> {
    const child = this.child;
    if (!child) return;
    this.child = undefined;
    if (child.exitCode === null && child.signalCode === null) {
      const exited = new Promise((resolve) => child.once('exit', resolve));
      child.kill('SIGTERM');
      await exited;
    }
    // socat removes its links on SIGTERM; make sure a stale link never fakes a replug.
    for (const link of this.links) rmSync(link, { force: true });
  }
}

/** Two linked ptys: what is written to one is read from the other. */
export async function startPtyPair(dir: string): Promise<{ a: string; b: string; socat: Socat }> {
  const a = path.join(dir, 'ttyA');
  const b = path.join(dir, 'ttyB');
  const socat = new Socat([`pty,raw,echo=0,link=${a}`, `pty,raw,echo=0,link=${b}`], [a, b]);
  await socat.start();
  return { a, b, socat };
}

/**
 * A device emulator: the test speaks for the device over TCP, socat presents it as a tty at
 * `devicePath`. `unplug()` / `replug()` stop and restart socat.
 */
export class EmulatedSerialDevice {
  readonly devicePath: string;
  private server: net.Server | undefined;
  private socat: Socat | undefined;
  private socket: net.Socket | undefined;
  private port = 0;
  /** Everything the driver wrote to the device since the last `takeReceived()`. */
  private received: Buffer[] = [];
  /** Called with each chunk the driver writes; the emulator answers requests here. */
  onRequest: ((data: Buffer, device: EmulatedSerialDevice) => void) | undefined;

  constructor(dir: string, name = 'ttyDEV') {
    this.devicePath = path.join(dir, name);
  }

  async start(): Promise<void> {
    this.port = await freePort();
    this.server = net.createServer((socket) => {
      this.socket?.destroy();
      this.socket = socket;
      socket.on('data', (data) => {
        this.received.push(data);
        this.onRequest?.(data, this);
      });
      socket.on('error', () => undefined);
      socket.on('close', () => {
        if (this.socket === socket) this.socket = undefined;
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(this.port, '127.0.0.1', resolve));
    await this.replug();
  }

  get connected(): boolean {
    return this.socket !== undefined && !this.socket.destroyed;
  }

  async replug(): Promise<void> {
    this.socat = new Socat([`pty,raw,echo=0,link=${this.devicePath}`, `tcp:127.0.0.1:${this.port}`], [this.devicePath]);
    await this.socat.start();
    await waitFor(() => this.connected, { timeoutMs: 5_000, what: 'socat to connect to the emulator' });
  }

  async unplug(): Promise<void> {
    await this.socat?.stop();
    this.socat = undefined;
    this.socket?.destroy();
    this.socket = undefined;
  }

  /** Bytes the device sends to the driver. Resolves when handed to the socket. */
  async send(data: string | Buffer): Promise<void> {
    const socket = this.socket;
    if (!socket) throw new Error('emulated device is unplugged');
    await new Promise<void>((resolve, reject) => socket.write(data, (error) => (error ? reject(error) : resolve())));
  }

  takeReceived(): Buffer {
    const all = Buffer.concat(this.received);
    this.received = [];
    return all;
  }

  async stop(): Promise<void> {
    await this.unplug();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
  }
}
