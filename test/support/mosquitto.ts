// A real Mosquitto broker for a test: started on a free loopback port, stopped by the test.
// `user root` keeps the broker from dropping to the mosquitto user, which could not read test files.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import net from 'node:net';
import path from 'node:path';
import { freePort, waitFor } from './ports.js';

export interface MosquittoOptions {
  port?: number;
  /** Extra listener/config lines (TLS listeners, ACLs). */
  extraConfig?: string;
  /** Replaces the default plain listener entirely. */
  config?: (port: number, dir: string) => string;
}

export class Mosquitto {
  /** The broker's folder (config, persistence); one per broker. */
  readonly dir: string;
  private process: ChildProcess | undefined;
  output = '';
  constructor(readonly port: number, private readonly configText: string, dir?: string) {
    this.dir = dir ?? mkdtempSync(path.join(tmpdir(), 'sensorlet-mosquitto-'));
  }

  static async start(options: MosquittoOptions = {}): Promise<Mosquitto> {
    const port = options.port ?? (await freePort());
    const dir = mkdtempSync(path.join(tmpdir(), 'sensorlet-mosquitto-'));
    const config =
      options.config?.(port, dir) ??
      [`user root`, `listener ${port} 127.0.0.1`, `allow_anonymous true`, `max_inflight_messages 0`, `max_queued_messages 0`, options.extraConfig ?? ''].join('\n');
    const broker = new Mosquitto(port, config, dir);
    await broker.restart();
    return broker;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  async restart(): Promise<void> {
    if (!existsSync('/usr/sbin/mosquitto')) throw new Error('mosquitto is not installed: run the README test command (apt-get install mosquitto)');
    const file = path.join(this.dir, 'mosquitto.conf');
    writeFileSync(file, this.configText + '\n');
    const child = spawn('/usr/sbin/mosquitto', ['-c', file], { stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d) => (this.output += d));
    child.stderr!.on('data', (d) => (this.output += d));
    this.process = child;
    await waitFor(() => canConnect(this.port), { timeoutMs: 10_000, what: `mosquitto on ${this.port}: ${this.output}` });
  }

  async stop(): Promise<void> {
    const child = this.process;
    this.process = undefined;
    if (!child || child.exitCode !== null) return;
    const exited = new Promise((resolve) => child.once('exit', resolve));
    child.kill('SIGTERM');
    await exited;
  }
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(true);
    });
    socket.once('error', () => resolve(false));
  });
}
