import { test } from 'node:test';
import assert from 'node:assert/strict';
import { MAX_MESSAGE_LENGTH, outcomeOf, rollUp, type NodeOutcome } from './rollup.js';

const condition = (type: string, status: string, reason = 'Reason', message = '') => ({ type, status, reason, message });

test('outcomeOf: Degraded=True wins, then Ready=True, else NotReady with the reason; messages are cut', () => {
  assert.deepEqual(outcomeOf({ observedGeneration: 2, conditions: [condition('Ready', 'True', 'Reading', 'fine')] }), { state: 'Ready', reason: 'Reading', observedGeneration: 2 });
  assert.deepEqual(outcomeOf({ conditions: [condition('Ready', 'False', 'PortMissing', 'no /dev/ttyUSB0'), condition('Degraded', 'True', 'PortMissing', 'no /dev/ttyUSB0')] }), {
    state: 'Degraded',
    reason: 'PortMissing',
    message: 'no /dev/ttyUSB0',
  });
  assert.equal(outcomeOf({ conditions: [condition('Ready', 'Unknown', 'Starting')] }).state, 'NotReady');
  assert.equal(outcomeOf({}).state, 'NotReady');
  const long = outcomeOf({ conditions: [condition('Ready', 'False', 'X'.repeat(500), 'm'.repeat(5000))] });
  assert.equal(long.message!.length, MAX_MESSAGE_LENGTH);
  assert.equal(long.reason!.length, 128);
});

test('rollUp: counts like a DaemonSet, the worst five nodes (Unknown first), the oldest live generation', () => {
  const outcomes: NodeOutcome[] = [
    ...Array.from({ length: 995 }, (_, i): NodeOutcome => ({ name: `ok-${i}`, state: 'Ready', observedGeneration: 4 })),
    { name: 'slow', state: 'NotReady', reason: 'Starting', observedGeneration: 3 },
    { name: 'b-broken', state: 'Degraded', reason: 'DriverError', observedGeneration: 4 },
    { name: 'a-broken', state: 'Degraded', reason: 'DriverError', observedGeneration: 4 },
    { name: 'dead-2', state: 'Unknown', reason: 'NodeHeartbeatStale' },
    { name: 'dead-1', state: 'Unknown', reason: 'NodeHeartbeatStale', observedGeneration: 1 },
    { name: 'slow-2', state: 'NotReady', reason: 'Starting', observedGeneration: 4 },
  ];
  const status = rollUp(outcomes);
  assert.deepEqual({ ...status, worstNodes: status.worstNodes.map((node) => node.name) }, {
    desired: 1001,
    ready: 995,
    degraded: 2,
    unknown: 2,
    readyOfDesired: '995/1001',
    observedGeneration: 3,
    worstNodes: ['dead-1', 'dead-2', 'a-broken', 'b-broken', 'slow'],
  });
  assert.deepEqual(rollUp([]), { desired: 0, ready: 0, degraded: 0, unknown: 0, readyOfDesired: '0/0', worstNodes: [] });
});
