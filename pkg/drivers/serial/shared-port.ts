// One open serial port per device path, shared by every Sensor that names it (a multi-value device
// on one RS-485 line or USB adapter). The port reopens itself with capped backoff when the device
// disappears (USB unplug) and comes back, and serialises request/response exchanges.
import { existsSync } from 'node:fs';
import type { SerialPort } from 'serialport';
import { lazyRequire } from '../../api/lazy-require.js';

const serialport = lazyRequire<typeof import('serialport')>('serialport');
import { SensorletError, messageOf } from '../../api/errors.js';
import type { Logger } from '../../observability/logger.js';
import { SerialQueue, backoffDelay } from '../serialize.js';

export interface LineSettings {
  path: string;
  baudRate: number;
  dataBits: 5 | 6 | 7 | 8;
  parity: 'none' | 'even' | 'odd' | 'mark' | 'space';
  stopBits: 1 | 1.5 | 2;
}

export type PortState = { up: true } | { up: false; error: SensorletError };

export interface PortListener {
  data(chunk: Buffer): void;
  state(state: PortState): void;
}

/** Reopen delays: fast enough to notice a replug quickly, capped so a missing port costs little. */
/**
 * How often an open port checks that its device node still exists. An unplugged USB adapter's
 * node disappears; the hang-up event alone was seen not to arrive (a pty whose far end closed).
 */
export const PRESENCE_CHECK_MS = 1_000;
export const REOPEN_BASE_MS = 100;
export const REOPEN_MAX_MS = 2_000;

export class SharedSerialPort {
  /** Serialises request/response exchanges on this port. */
  readonly requests = new SerialQueue();
  private port: SerialPort | undefined;
  private readonly listeners = new Set<PortListener>();
  private references = 0;
  private attempt = 0;
  private reopenTimer: NodeJS.Timeout | undefined;
  private presenceTimer: NodeJS.Timeout | undefined;
  private closed = false;
  private lastError: SensorletError | undefined = new SensorletError('PortNotFound', 'port not opened yet');

  constructor(
    readonly settings: LineSettings,
    private readonly logger: Logger,
  ) {}

  get isOpen(): boolean {
    return this.port?.isOpen === true;
  }

  /** Why the port is not open, when it is not. */
  get error(): SensorletError | undefined {
    return this.isOpen ? undefined : this.lastError;
  }

  retain(): void {
    this.references++;
    if (this.references === 1) this.open();
  }

  /** Returns true when this was the last user and the port is now closed. */
  async release(): Promise<boolean> {
    this.references--;
    if (this.references > 0) return false;
    this.closed = true;
    clearTimeout(this.reopenTimer);
    clearInterval(this.presenceTimer);
    const port = this.port;
    this.port = undefined;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
    return true;
  }

  subscribe(listener: PortListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  async write(bytes: Buffer): Promise<void> {
    const port = this.port;
    if (!port?.isOpen) throw this.lastError ?? new SensorletError('DeviceGone', `${this.settings.path} is not open`);
    await new Promise<void>((resolve, reject) => {
      port.write(bytes, (error) => (error ? reject(portError(this.settings.path, error)) : resolve()));
    });
  }

  private open(): void {
    if (this.closed) return;
    const { path, baudRate, dataBits, parity, stopBits } = this.settings;
    const port = new (serialport().SerialPort)({ path, baudRate, dataBits, parity, stopBits, autoOpen: false });
    this.port = port;
    port.on('data', (chunk: Buffer) => {
      for (const listener of this.listeners) listener.data(chunk);
    });
    // Errors also arrive as 'close' (disconnect) or in the open callback; this keeps them from throwing.
    port.on('error', (error) => this.logger.debug({ port: path, err: messageOf(error) }, 'serial port error'));
    port.on('close', (error: (Error & { disconnected?: boolean }) | null) => {
      if (this.closed || this.port !== port) return;
      this.down(new SensorletError('DeviceGone', `${path} disappeared${error ? `: ${error.message}` : ''}`));
    });
    port.open((error) => {
      if (this.closed || this.port !== port) {
        if (!error) port.close();
        return;
      }
      if (error) return this.down(portError(path, error));
      this.attempt = 0;
      this.lastError = undefined;
      this.logger.info({ port: path }, 'serial port open');
      this.watchPresence(port);
      this.notify({ up: true });
    });
  }

  private watchPresence(port: SerialPort): void {
    clearInterval(this.presenceTimer);
    this.presenceTimer = setInterval(() => {
      if (this.closed || this.port !== port) return clearInterval(this.presenceTimer);
      if (!existsSync(this.settings.path)) this.down(new SensorletError('DeviceGone', `${this.settings.path} disappeared (its device node is gone)`));
    }, PRESENCE_CHECK_MS);
    this.presenceTimer.unref();
  }

  private down(error: SensorletError): void {
    clearInterval(this.presenceTimer);
    const wasReported = this.lastError?.code === error.code && this.attempt > 0;
    this.lastError = error;
    this.port?.removeAllListeners('data');
    if (this.port?.isOpen) this.port.close(() => undefined);
    this.port = undefined;
    if (!wasReported) {
      this.logger.warn({ port: this.settings.path, reason: error.code, err: error.message }, 'serial port down');
    }
    this.notify({ up: false, error });
    const delay = backoffDelay(this.attempt++, REOPEN_BASE_MS, REOPEN_MAX_MS);
    this.reopenTimer = setTimeout(() => this.open(), delay);
    this.reopenTimer.unref();
  }

  private notify(state: PortState): void {
    for (const listener of this.listeners) listener.state(state);
  }
}

function portError(path: string, error: Error): SensorletError {
  const message = error.message;
  if (/no such file|ENOENT|cannot open/i.test(message) && !/permission/i.test(message)) {
    return new SensorletError('PortNotFound', `${path}: ${message}`, { cause: error });
  }
  if (/permission|EACCES/i.test(message)) return new SensorletError('PermissionDenied', `${path}: ${message}`, { cause: error });
  if (/lock/i.test(message)) return new SensorletError('PortBusy', `${path}: ${message}`, { cause: error });
  return new SensorletError('DeviceGone', `${path}: ${message}`, { cause: error });
}

/** The agent-wide port for `settings.path`, created on first use; release it when done. */
export function acquireSharedPort(shared: Map<string, unknown>, settings: LineSettings, logger: Logger): SharedSerialPort {
  const key = `serial:${settings.path}`;
  let port = shared.get(key) as SharedSerialPort | undefined;
  if (port) {
    const first = port.settings;
    if (first.baudRate !== settings.baudRate || first.dataBits !== settings.dataBits || first.parity !== settings.parity || first.stopBits !== settings.stopBits) {
      logger.warn({ port: settings.path, using: first, requested: settings }, 'Sensors disagree on line settings for a shared port; the first one wins');
    }
  } else {
    port = new SharedSerialPort(settings, logger);
    shared.set(key, port);
  }
  port.retain();
  return port;
}

export async function releaseSharedPort(shared: Map<string, unknown>, port: SharedSerialPort): Promise<void> {
  const key = `serial:${port.settings.path}`;
  // Delete first so a Sensor created during the close gets a fresh port.
  if (port['references'] === 1 && shared.get(key) === port) shared.delete(key);
  await port.release();
}
