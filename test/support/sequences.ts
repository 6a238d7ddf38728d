// Assertions on what a consumer of at-least-once delivery sees.
import assert from 'node:assert/strict';

/** First occurrences of each seq, in arrival order, must be exactly first..last, increasing. */
export function assertInOrderWithoutGaps(readings: { seq: number }[], what: string): void {
  const seen = new Set<number>();
  const firsts = readings.filter((reading) => (seen.has(reading.seq) ? false : (seen.add(reading.seq), true)));
  assert.ok(firsts.length > 0, `${what}: nothing arrived`);
  firsts.forEach((reading, index) => assert.equal(reading.seq, firsts[0].seq + index, `${what}: gap or reorder at ${index}`));
}
