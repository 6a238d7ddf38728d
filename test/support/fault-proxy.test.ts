// The fault proxy against a real echo server on loopback.
import { after, before, describe, it } from 'node:test';
import assert from 'node:assert/strict';
import net from 'node:net';
import { FaultProxy } from './fault-proxy.js';

let echo: net.Server;
let echoPort: number;

before(async () => {
  echo = net.createServer((socket) => {
    socket.on('error', () => undefined);
    socket.pipe(socket);
  });
  await new Promise<void>((resolve) => echo.listen(0, '127.0.0.1', resolve));
  echoPort = (echo.address() as net.AddressInfo).port;
});
after(() => new Promise<void>((resolve) => echo.close(() => resolve())));

async function connect(port: number): Promise<net.Socket> {
  const socket = net.connect({ port, host: '127.0.0.1' });
  await new Promise<void>((resolve, reject) => {
    socket.once('connect', resolve);
    socket.once('error', reject);
  });
  return socket;
}

/** Sends `payload` and resolves with the time until all of it echoed back, or undefined on timeout. */
async function roundTrip(socket: net.Socket, payload: Buffer, timeoutMs = 3000): Promise<number | undefined> {
  const started = Date.now();
  let received = 0;
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      socket.off('data', onData);
      resolve(undefined);
    }, timeoutMs);
    const onData = (data: Buffer): void => {
      received += data.length;
      if (received >= payload.length) {
        clearTimeout(timer);
        socket.off('data', onData);
        resolve(Date.now() - started);
      }
    };
    socket.on('data', onData);
    socket.write(payload);
  });
}

describe('FaultProxy', () => {
  it('passes traffic through unchanged', async () => {
    const proxy = await FaultProxy.start(echoPort);
    const socket = await connect(proxy.port);
    const chunks: Buffer[] = [];
    socket.on('data', (data: Buffer) => chunks.push(data));
    const elapsed = await roundTrip(socket, Buffer.from('hello through the proxy'));
    assert.ok(elapsed !== undefined && elapsed < 200);
    assert.equal(Buffer.concat(chunks).toString(), 'hello through the proxy');
    assert.equal(proxy.connections, 1);
    socket.destroy();
    await proxy.stop();
  });

  it('adds latency with jitter in each direction, keeping byte order', async () => {
    const proxy = await FaultProxy.start(echoPort);
    proxy.set({ latencyMs: 60, jitterMs: 20 });
    const socket = await connect(proxy.port);
    const chunks: Buffer[] = [];
    socket.on('data', (data: Buffer) => chunks.push(data));
    const payload = Buffer.from(Array.from({ length: 2000 }, (_, i) => i % 251));
    const parts = [payload.subarray(0, 500), payload.subarray(500, 1000), payload.subarray(1000)];
    const done = roundTrip(socket, parts[0]);
    socket.write(parts[1]);
    socket.write(parts[2]);
    const elapsed = await done;
    assert.ok(elapsed !== undefined && elapsed >= 110, `round trip ${elapsed} ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
    assert.deepEqual(Buffer.concat(chunks), payload, 'in order, nothing lost');
    socket.destroy();
    await proxy.stop();
  });

  it('caps bandwidth', async () => {
    const proxy = await FaultProxy.start(echoPort);
    proxy.set({ bytesPerSecond: 50_000 });
    const socket = await connect(proxy.port);
    // 20 kB each way through a 50 kB/s link: at least 0.4 s one way.
    const elapsed = await roundTrip(socket, Buffer.alloc(20_000, 7));
    assert.ok(elapsed !== undefined && elapsed >= 350, `took ${elapsed} ms`);
    proxy.clear();
    const fast = await roundTrip(socket, Buffer.alloc(20_000, 7));
    assert.ok(fast !== undefined && fast < 300, `after clear took ${fast} ms`);
    socket.destroy();
    await proxy.stop();
  });

  it('resets every connection mid-stream', async () => {
    const proxy = await FaultProxy.start(echoPort);
    const socket = await connect(proxy.port);
    await roundTrip(socket, Buffer.from('before'));
    const closed = new Promise<string | undefined>((resolve) => {
      let code: string | undefined;
      socket.on('error', (error: NodeJS.ErrnoException) => (code = error.code));
      socket.on('close', () => resolve(code));
    });
    proxy.resetAll();
    assert.equal(await closed, 'ECONNRESET');
    assert.equal(proxy.connections, 0);
    const again = await connect(proxy.port);
    assert.ok((await roundTrip(again, Buffer.from('after'))) !== undefined, 'new connections work');
    again.destroy();
    await proxy.stop();
  });

  it('blackholes traffic both ways without closing, until lifted for new connections', async () => {
    const proxy = await FaultProxy.start(echoPort);
    const socket = await connect(proxy.port);
    let closed = false;
    socket.on('close', () => (closed = true));
    proxy.set({ blackhole: true });
    assert.equal(await roundTrip(socket, Buffer.from('into the void'), 300), undefined);
    const during = await connect(proxy.port); // accepted, but leads nowhere
    assert.equal(await roundTrip(during, Buffer.from('nobody home'), 200), undefined);
    assert.equal(closed, false, 'the socket stays open');
    proxy.set({ blackhole: false });
    assert.equal(await roundTrip(socket, Buffer.from('still dead'), 200), undefined, 'a holed stream stays dead');
    const after = await connect(proxy.port);
    assert.ok((await roundTrip(after, Buffer.from('back'))) !== undefined);
    for (const s of [socket, during, after]) s.destroy();
    await proxy.stop();
  });
});
