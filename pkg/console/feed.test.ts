import { test } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import { EventEmitter } from 'node:events';
import type { AddressInfo } from 'node:net';
import { Counter, Registry } from 'prom-client';
import { ConsoleFeed, MAX_CLIENTS } from './feed.js';
import { ReadingHistory } from './history.js';

interface Item {
  kind: string;
  metadata: { name: string; namespace: string };
  spec: unknown;
  status: { nodes: Record<string, unknown>[] };
}

const sensorItem = (name: string, reason = 'Reading'): Item => ({
  kind: 'Sensor',
  metadata: { name, namespace: 'default' },
  spec: { driver: { simulated: {} }, interval: '1s' },
  status: { nodes: [{ name: 'gw', conditions: [{ type: 'Ready', status: 'True', reason, message: '' }] }] },
});

/** A feed over a real HTTP server, as the admin server serves it. */
async function serve(items: Item[], snapshotStallMs?: number) {
  const registry = new Registry();
  const published = new Counter({ name: 'sensorlet_sink_published_total', help: 'h', labelNames: ['sink'], registers: [registry] });
  const history = new ReadingHistory();
  const feed = new ConsoleFeed({
    overview: () => ({ device: 'gw', node: 'gw', version: '0.0.0', startedAt: new Date(0).toISOString(), ready: true }),
    resources: () => ({ apiVersion: 'v1', kind: 'List', items: [...items], errors: [] }),
    acknowledged: () => published.get(),
    history,
  }, snapshotStallMs);
  const server = http.createServer((request, response) => void feed.subscribe(request, response));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/`;
  return {
    feed,
    history,
    published,
    url,
    async close() {
      feed.close();
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Reads events from a stream until `until` says enough (bounded in time). */
async function events(url: string, until: (events: { name: string; data: any }[]) => boolean, timeoutMs = 5000) {
  const abort = new AbortController();
  const timer = setTimeout(() => abort.abort(), timeoutMs);
  const seen: { name: string; data: any }[] = [];
  try {
    const response = await fetch(url, { signal: abort.signal });
    assert.equal(response.headers.get('content-type'), 'text/event-stream; charset=utf-8');
    let buffer = '';
    const decoder = new TextDecoder();
    for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) {
      buffer += decoder.decode(chunk, { stream: true });
      let end: number;
      while ((end = buffer.indexOf('\n\n')) >= 0) {
        const block = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const name = /^event: (.*)$/m.exec(block)?.[1];
        const data = /^data: (.*)$/m.exec(block)?.[1];
        if (name && data) seen.push({ name, data: JSON.parse(data) });
      }
      if (until(seen)) break;
    }
  } catch (error) {
    if (!abort.signal.aborted) throw error;
  } finally {
    clearTimeout(timer);
    abort.abort();
  }
  return seen;
}

test('every page gets a full snapshot, then updates with only what changed and the new points', async () => {
  const sink: Item = {
    kind: 'Sink',
    metadata: { name: 'out', namespace: 'default' },
    spec: { mqtt: {} },
    status: { nodes: [{ name: 'gw', conditions: [], connected: true, queued: 0 }] },
  };
  const items = [sensorItem('a'), sensorItem('b'), sink];
  const served = await serve(items);
  try {
    const now = Date.now();
    served.history.record('Sensor/default/a', [{ device: 'gw', sensor: 'a', namespace: 'default', seq: 1, time: new Date(now - 2000).toISOString(), value: 1, quality: 'good' }]);
    const streams = [1, 2, 3].map(() => events(served.url, (seen) => seen.some((event) => event.name === 'update')));
    setTimeout(() => {
      items[1] = sensorItem('b', 'Changed');
      served.published.inc({ sink: 'out' }, 10);
      served.history.record('Sensor/default/a', [{ device: 'gw', sensor: 'a', namespace: 'default', seq: 2, time: new Date(now).toISOString(), value: 2, quality: 'good' }]);
    }, 200);
    for (const seen of await Promise.all(streams)) {
      const [snapshot, update] = seen;
      assert.equal(snapshot.name, 'snapshot');
      assert.deepEqual(snapshot.data.resources.map((view: { name: string }) => view.name).sort(), ['a', 'b', 'out']);
      assert.deepEqual(snapshot.data.series['Sensor/default/a'].v.slice(0, 1), [1]);
      assert.equal(update.name, 'update');
      // b changed; a changed too (its rate moved with the new reading), and sends only its new point.
      assert.ok(update.data.changed.some((view: { name: string; conditions: { reason: string }[] }) => view.name === 'b' && view.conditions[0].reason === 'Changed'));
      assert.deepEqual(update.data.points['Sensor/default/a'].v, [2]);
      // 10 readings acknowledged in the second between two ticks.
      const rate = update.data.changed.find((view: { name: string }) => view.name === 'out')?.deliveryRate;
      assert.ok(rate > 8 && rate <= 10.5, `delivery rate ${rate}`);
    }
  } finally {
    await served.close();
  }
});

test('at most MAX_CLIENTS pages at once; nobody watching stops the timer', async () => {
  const served = await serve([sensorItem('a')]);
  const aborts: AbortController[] = [];
  try {
    for (let i = 0; i < MAX_CLIENTS; i++) {
      const abort = new AbortController();
      aborts.push(abort);
      const response = await fetch(served.url, { signal: abort.signal });
      assert.equal(response.status, 200);
    }
    const refused = await fetch(served.url);
    assert.equal(refused.status, 503);
    await refused.text();
    for (const abort of aborts) abort.abort();
    const deadline = Date.now() + 5000;
    while (served.feed.clientCount > 0 && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
    assert.equal(served.feed.clientCount, 0);
  } finally {
    for (const abort of aborts) abort.abort();
    await served.close();
  }
});

test('a page that stops taking its snapshot is cut after the stall budget, and forgotten', async () => {
  const served = await serve([sensorItem('a')], 300);
  // A response whose socket never drains (loopback buffers hold tens of MB, so a real one would
  // need a snapshot larger than that to fill).
  class StuckResponse extends EventEmitter {
    destroyed = false;
    writeHead() {}
    write() {
      return false;
    }
    destroy() {
      this.destroyed = true;
      this.emit('close');
    }
  }
  const stuck = new StuckResponse();
  try {
    const started = Date.now();
    await served.feed.subscribe({} as http.IncomingMessage, stuck as unknown as http.ServerResponse);
    assert.equal(stuck.destroyed, true);
    assert.ok(Date.now() - started >= 300, 'waited for the stall budget');
    assert.equal(served.feed.clientCount, 0);
  } finally {
    await served.close();
  }
});
