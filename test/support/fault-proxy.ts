// A user-space fault-injecting TCP proxy for tests, like toxiproxy (this kernel has no netem).
// It listens on 127.0.0.1 and forwards to a target port; faults are switched on demand:
//   - latency with jitter (per direction, order preserved: TCP never reorders bytes)
//   - a bandwidth cap in bytes/s (per direction, paced in small slices)
//   - resetAll(): every connection gets a TCP RST mid-stream
//   - blackhole: sockets stay open but traffic is silently swallowed both ways, like a network
//     partition; only an application keepalive notices. A connection that lost bytes to the
//     blackhole stays dead after the blackhole lifts (its byte stream has a hole in it), the way a
//     half-open connection does once the peer gave up on it; new connections work again.
import net from 'node:net';

export interface FaultSettings {
  latencyMs: number;
  jitterMs: number;
  /** 0 means unlimited. */
  bytesPerSecond: number;
  blackhole: boolean;
}

const PASS_THROUGH: FaultSettings = { latencyMs: 0, jitterMs: 0, bytesPerSecond: 0, blackhole: false };
/** Above this many queued bytes a direction pauses its source, so a slow link pushes back. */
const HIGH_WATER_BYTES = 1 << 20;

class Direction {
  private readonly queue: Array<{ data: Buffer; dueAt: number }> = [];
  private queuedBytes = 0;
  private lastDueAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private ended = false;

  constructor(
    private readonly link: Link,
    private readonly from: net.Socket,
    private readonly to: net.Socket,
  ) {
    from.on('data', (data: Buffer) => this.onData(data));
    from.on('end', () => {
      this.ended = true;
      this.flush();
    });
  }

  private onData(data: Buffer): void {
    const settings = this.link.proxy.settings;
    if (settings.blackhole || this.link.poisoned) {
      this.link.poisoned = true;
      return;
    }
    const now = Date.now();
    if (settings.latencyMs === 0 && settings.jitterMs === 0 && settings.bytesPerSecond === 0 && this.queue.length === 0) {
      this.to.write(data);
      return;
    }
    const slice = settings.bytesPerSecond > 0 ? Math.max(1, Math.floor(settings.bytesPerSecond / 50)) : data.length;
    for (let offset = 0; offset < data.length; offset += slice) {
      const piece = data.subarray(offset, offset + slice);
      let dueAt = now + settings.latencyMs + Math.random() * settings.jitterMs;
      if (settings.bytesPerSecond > 0) dueAt = Math.max(dueAt, this.lastDueAt) + (piece.length / settings.bytesPerSecond) * 1000;
      dueAt = Math.max(dueAt, this.lastDueAt);
      this.lastDueAt = dueAt;
      this.queue.push({ data: piece, dueAt });
      this.queuedBytes += piece.length;
    }
    if (this.queuedBytes > HIGH_WATER_BYTES) this.from.pause();
    this.flush();
  }

  private flush(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
    const now = Date.now();
    while (this.queue.length > 0 && this.queue[0].dueAt <= now) {
      const { data } = this.queue.shift()!;
      this.queuedBytes -= data.length;
      if (this.link.proxy.settings.blackhole || this.link.poisoned) {
        this.link.poisoned = true;
        continue;
      }
      if (!this.to.destroyed) this.to.write(data);
    }
    if (this.queuedBytes <= HIGH_WATER_BYTES && this.from.isPaused()) this.from.resume();
    if (this.queue.length > 0) {
      this.timer = setTimeout(() => this.flush(), Math.max(0, this.queue[0].dueAt - now));
    } else if (this.ended && !this.link.poisoned && !this.to.destroyed) {
      this.to.end();
    }
  }

  stop(): void {
    clearTimeout(this.timer);
    this.queue.length = 0;
  }
}

class Link {
  poisoned = false;
  private readonly directions: Direction[] = [];

  constructor(
    readonly proxy: FaultProxy,
    readonly client: net.Socket,
    readonly upstream: net.Socket | undefined,
  ) {
    const onGone = (): void => this.destroy();
    client.on('error', onGone);
    client.on('close', onGone);
    if (upstream) {
      upstream.on('error', onGone);
      upstream.on('close', onGone);
      this.directions.push(new Direction(this, client, upstream), new Direction(this, upstream, client));
    } else {
      // Opened during a blackhole: it never reaches the target; everything sent is swallowed.
      this.poisoned = true;
      client.on('data', () => undefined);
      client.on('end', () => undefined);
    }
  }

  reset(): void {
    for (const socket of [this.client, this.upstream]) {
      if (socket && !socket.destroyed) socket.resetAndDestroy();
    }
    this.destroy();
  }

  destroy(): void {
    for (const direction of this.directions) direction.stop();
    this.client.destroy();
    this.upstream?.destroy();
    this.proxy.forget(this);
  }
}

export class FaultProxy {
  settings: FaultSettings = { ...PASS_THROUGH };
  private readonly links = new Set<Link>();
  /** Client connections accepted since the start (open or not). */
  accepted = 0;
  private readonly server: net.Server;
  private constructor(
    private readonly targetPort: number,
    private readonly targetHost: string,
  ) {
    this.server = net.createServer((client) => this.accept(client));
  }

  static async start(targetPort: number, targetHost = '127.0.0.1'): Promise<FaultProxy> {
    const proxy = new FaultProxy(targetPort, targetHost);
    await new Promise<void>((resolve, reject) => {
      proxy.server.once('error', reject);
      proxy.server.listen(0, '127.0.0.1', () => resolve());
    });
    return proxy;
  }

  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }

  get url(): string {
    return `mqtt://127.0.0.1:${this.port}`;
  }

  /** Client connections open now. */
  get connections(): number {
    return this.links.size;
  }

  /** Changes some faults; the others keep their values. Applies to data arriving from now on. */
  set(settings: Partial<FaultSettings>): void {
    this.settings = { ...this.settings, ...settings };
  }

  /** Back to a clean pass-through link for new data (dead blackholed connections stay dead). */
  clear(): void {
    this.settings = { ...PASS_THROUGH };
  }

  /** Every open connection, both sides, gets a TCP RST now. */
  resetAll(): void {
    for (const link of [...this.links]) link.reset();
  }

  async stop(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const link of [...this.links]) link.destroy();
    await closed;
  }

  /** @internal */
  forget(link: Link): void {
    this.links.delete(link);
  }

  private accept(client: net.Socket): void {
    this.accepted++;
    client.setNoDelay(true);
    if (this.settings.blackhole) {
      this.links.add(new Link(this, client, undefined));
      return;
    }
    client.pause();
    const upstream = net.connect({ port: this.targetPort, host: this.targetHost });
    upstream.setNoDelay(true);
    const link = new Link(this, client, upstream);
    this.links.add(link);
    upstream.once('connect', () => client.resume());
  }
}
