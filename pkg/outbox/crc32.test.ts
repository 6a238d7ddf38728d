import { it } from 'node:test';
import assert from 'node:assert/strict';
import { crc32, crc32Table } from './crc32.js';

it('computes the standard CRC-32 check value, natively and with the table fallback', () => {
  const check = Buffer.from('123456789');
  assert.equal(crc32(check), 0xcbf43926);
  assert.equal(crc32Table(check), 0xcbf43926);
  const data = Buffer.from(Array.from({ length: 10_007 }, (_, i) => (i * 131 + 7) & 0xff));
  for (const [start, end] of [[0, data.length], [3, 9_001], [5, 6], [0, 0]]) {
    assert.equal(crc32Table(data, start, end), crc32(data, start, end), `range ${start}..${end}`);
  }
});
