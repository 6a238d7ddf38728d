import { test } from 'node:test';
import assert from 'node:assert/strict';
import { ReadingHistory } from './history.js';
import { resourceView } from './view.js';

const context = { history: new ReadingHistory(), now: Date.now(), deliveryRate: () => 2.5 };

test('a view carries the conditions and the facts of its kind, in bounded form', () => {
  const view = resourceView(
    {
      kind: 'Sink',
      metadata: { name: 'out', namespace: 'team-a', generation: 3 },
      spec: { mqtt: { url: 'mqtt://broker:1883' } },
      status: {
        nodes: [
          {
            name: 'gw',
            observedGeneration: 3,
            conditions: [{ type: 'Connected', status: 'False', reason: 'ConnectionRefused', message: 'x'.repeat(5000), lastTransitionTime: '2026-01-01T00:00:00Z' }],
            protocol: 'mqtt',
            url: 'mqtt://broker:1883',
            connected: false,
            queued: 12,
            oldestQueued: '2026-01-01T00:00:00.000Z',
            dropped: { dropOldest: 3 },
            internal: 'not shown',
          },
        ],
      },
    },
    context,
  );
  assert.equal(view.key, 'Sink/team-a/out');
  assert.equal(view.connected, false);
  assert.equal(view.queued, 12);
  assert.deepEqual(view.dropped, { dropOldest: 3 });
  assert.equal(view.deliveryRate, 2.5);
  assert.equal(view.internal, undefined, 'only the facts the page shows');
  assert.equal(view.conditions[0].message.length, 1000);
});

test('a Sensor view has no spec beyond its driver kind, interval and unit', () => {
  const view = resourceView(
    { kind: 'Sensor', metadata: { name: 's', namespace: 'default' }, spec: { driver: { command: { argv: ['/bin/secret-tool', '--password=hunter2'] } }, interval: '1s' }, status: { nodes: [] } },
    context,
  );
  assert.equal(view.driver, 'command');
  assert.doesNotMatch(JSON.stringify(view), /hunter2|secret-tool/);
});
