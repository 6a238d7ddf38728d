import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { Registry } from 'prom-client';
import { startAdminServer, type AdminServer } from './server.js';

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
