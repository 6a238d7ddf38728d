import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Registry } from 'prom-client';
import { isLoopbackHostHeader, startAdminServer, type AdminServer } from './server.js';

test('close() finishes while a keep-alive client keeps polling (a connection busy at close is not reused for ever)', async () => {
  // Node's server.close() waits for connections that were busy when it was called; a client that
  // reuses its connection at once (keep-alive polling) would hold the agent's shutdown open.
  let admin: AdminServer | undefined;
  let closed: Promise<void> | undefined;
  admin = await startAdminServer('127.0.0.1:0', {
    ready: () => true,
    resources: () => ({ apiVersion: 'v1', kind: 'List', items: [], errors: [] }),
    // The first request closes the server while it is being answered: its connection is busy.
    reload: async () => {
      closed ??= admin!.close();
      await new Promise((resolve) => setTimeout(resolve, 20));
    },
    registry: new Registry(),
  });
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
  let polling = true;
  let answered = 0;
  const poll = (async () => {
    while (polling) {
      const ok = await new Promise<boolean>((resolve) => {
        const request = http.request(`http://${admin!.address}/reload`, { method: 'POST', agent }, (response) => response.resume().on('end', () => resolve(true)));
        request.on('error', () => resolve(false)).end();
      });
      if (!ok) break;
      answered++;
    }
  })();
  try {
    await new Promise((resolve) => setTimeout(resolve, 200));
    assert.ok(closed, 'the first request reached the handler');
    const finished = await Promise.race([closed.then(() => true), new Promise((resolve) => setTimeout(() => resolve(false), 3000))]);
    assert.equal(finished, true, `close() still waiting after 3 s while the client polled ${answered} times`);
  } finally {
    polling = false;
    agent.destroy();
    await poll;
  }
});

test('/metrics written family by family is exactly what registry.metrics() returns', async () => {
  const { Metrics } = await import('../observability/metrics.js');
  const { metricsText } = await import('./server.js');
  const metrics = new Metrics();
  for (let index = 0; index < 50; index++) metrics.readings.inc({ sensor: `s-${index}` }, index);
  metrics.reconcileDuration.observe({ kind: 'Sensor' }, 0.002);
  metrics.queueDepth.set({ sink: 'quote" backslash\\ newline\n' }, NaN);
  metrics.outboxBytes.set({ sink: 'a' }, Infinity);
  metrics.outboxOldest.set({ sink: 'b' }, -Infinity);
  let streamed = '';
  for await (const piece of metricsText(metrics.registry)) streamed += piece;
  // Process metrics (CPU time, memory) move between two reads: compare the rest.
  const stable = (text: string) => text.split('\n').filter((line) => !/^(process|nodejs)_/.test(line)).join('\n');
  assert.equal(stable(streamed), stable(await metrics.registry.metrics()));
  assert.match(streamed, /sink="quote\\" backslash\\\\ newline\\n"\} Nan/);
});

test('a non-loopback address without an authenticator is refused unless the operator opts out', async () => {
  const { checkAdminExposure } = await import('./server.js');
  await assert.rejects(checkAdminExposure('0.0.0.0:9470', { authenticated: false }), (error: Error & { code?: string }) => {
    assert.equal(error.code, 'AdminAuthRequired');
    assert.match(error.message, /--admin-token-file/);
    return true;
  });
  await checkAdminExposure('0.0.0.0:9470', { authenticated: true });
  await checkAdminExposure('[::]:9470', { authenticated: false, allowUnauthenticated: true });
  await checkAdminExposure('127.0.0.5:9470', { authenticated: false });
  await checkAdminExposure('[::1]:9470', { authenticated: false });
});

test('a known path asked with the wrong method is 405 with Allow; an unknown path stays 404', async () => {
  const admin = await startAdminServer('127.0.0.1:0', {
    ready: () => true,
    resources: () => ({ apiVersion: 'v1', kind: 'List', items: [], errors: [] }),
    reload: async () => {},
    registry: new Registry(),
  });
  try {
    const ask = (method: string, path: string) => fetch(`http://${admin.address}${path}`, { method });
    const getReload = await ask('GET', '/reload');
    assert.equal(getReload.status, 405);
    assert.equal(getReload.headers.get('allow'), 'POST');
    assert.match(await getReload.text(), /use POST/);
    for (const path of ['/metrics', '/api/v1/resources', '/healthz', '/readyz']) {
      const posted = await ask('POST', path);
      assert.equal(posted.status, 405, path);
      assert.equal(posted.headers.get('allow'), 'GET, HEAD', path);
      await posted.text();
    }
    assert.equal((await ask('HEAD', '/healthz')).status, 200, 'HEAD is GET without a body');
    assert.equal((await ask('POST', '/reload')).status, 200);
    assert.equal((await ask('GET', '/nowhere')).status, 404);
    // The console is off here: its paths are unknown, whatever the method.
    for (const path of ['/console/events', '/console/']) {
      assert.equal((await ask('POST', path)).status, 404, path);
      assert.equal((await ask('GET', path)).status, 404, path);
    }
  } finally {
    await admin.close();
  }
});

test('Host headers a loopback API without authentication accepts, and those it refuses', () => {
  for (const host of ['localhost', 'LOCALHOST:9464', '127.0.0.1', '127.0.0.1:9464', '127.1.2.3:80', '[::1]', '[::1]:9464', 'sensorlet-admin.local:9464', undefined]) {
    assert.equal(isLoopbackHostHeader(host, 'sensorlet-admin.local'), true, String(host));
  }
  for (const host of ['evil.example', 'evil.example:9464', 'localhost.evil.example', '10.0.0.1:9464', '[::2]', '127.0.0.1.evil.example', '127.0.0.1:9464:1', '']) {
    assert.equal(isLoopbackHostHeader(host, 'sensorlet-admin.local'), false, host);
  }
});

test('an admin address in use or malformed is a FlagError naming --admin-addr', async () => {
  const { FlagError } = await import('../api/errors.js');
  const handlers = { ready: () => true, resources: () => ({ apiVersion: 'v1' as const, kind: 'List' as const, items: [], errors: [] }), reload: async () => {}, registry: new Registry() };
  const first = await startAdminServer('127.0.0.1:0', handlers);
  try {
    await assert.rejects(startAdminServer(first.address, handlers), (error: Error) => {
      assert.ok(error instanceof FlagError);
      assert.equal((error as InstanceType<typeof FlagError>).code, 'AdminAddressInUse');
      assert.match(error.message, /^--admin-addr 127\.0\.0\.1:\d+: the address is already in use/);
      return true;
    });
  } finally {
    await first.close();
  }
  await assert.rejects(startAdminServer('127.0.0.1:70000', handlers), /--admin-addr "127\.0\.0\.1:70000": expected HOST:PORT/);
});
