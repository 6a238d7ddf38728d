import { test } from 'node:test';
import assert from 'node:assert/strict';
import { BinaryFramer, TextFramer, type FrameEvent } from './framer.js';
import { crc16Modbus, withChecksum } from './checksum.js';

const frames = (events: FrameEvent[]) => events.flatMap((e) => (e.kind === 'frame' ? [e.bytes.toString()] : []));
const bad = (events: FrameEvent[]) => events.flatMap((e) => (e.kind === 'bad' ? [e.error.code] : []));

test('crc16-modbus matches the reference value', () => {
  // "01 03 00 00 00 0A" is the textbook read-holding-registers request; its CRC is C5 CD on the wire.
  assert.equal(crc16Modbus(Buffer.from('01030000000A', 'hex')), 0xcdc5);
});

test('text framer joins lines split across chunks', () => {
  const framer = new TextFramer('\r\n', 100);
  assert.deepEqual(frames(framer.push(Buffer.from('T=1\r'))), []);
  assert.deepEqual(frames(framer.push(Buffer.from('\nT=2\r\nT='))), ['T=1', 'T=2']);
  assert.deepEqual(frames(framer.push(Buffer.from('3\r\n'))), ['T=3']);
});

test('text framer drops a 10 MB line without a delimiter, reports it once, and keeps memory bounded', () => {
  const framer = new TextFramer('\n', 65_536);
  const chunk = Buffer.alloc(64 * 1024, 'x');
  const events: FrameEvent[] = [];
  for (let i = 0; i < 160; i++) {
    events.push(...framer.push(chunk));
    assert.ok(framer['pending'].length <= 65_536, 'pending stays within maxLength');
  }
  events.push(...framer.push(Buffer.from('tail\nT=4\n')));
  assert.deepEqual(bad(events), ['BadFrame']);
  assert.deepEqual(frames(events), ['T=4']);
});

test('binary framer: garbage, partial frames and bad checksums resynchronise on the start bytes', () => {
  const framer = new BinaryFramer({ start: Buffer.from('aa55', 'hex'), size: 6, checksum: { type: 'crc16-modbus', from: 0 }, maxLength: 64 });
  const good = withChecksum('crc16-modbus', Buffer.from('aa550102', 'hex'));
  const corrupt = Buffer.from(good);
  corrupt[3] ^= 0xff;
  const events = [
    ...framer.push(Buffer.from('0102', 'hex')), // garbage
    ...framer.push(good.subarray(0, 3)), // partial
    ...framer.push(good.subarray(3)),
    ...framer.push(corrupt),
    ...framer.push(good),
  ];
  assert.equal(events.filter((e) => e.kind === 'frame').length, 2);
  assert.deepEqual(bad(events), ['BadFrame', 'ChecksumMismatch']);
});

test('binary framer with a length field', () => {
  const framer = new BinaryFramer({ start: Buffer.from('02', 'hex'), lengthField: { byteOffset: 1, type: 'uint8', adjust: 3 }, checksum: { type: 'xor8', from: 1 }, maxLength: 64 });
  const frame = withChecksum('xor8', Buffer.from('0203010203', 'hex'), 1);
  const events = framer.push(Buffer.concat([frame, frame.subarray(0, 2)]));
  assert.equal(events.filter((e) => e.kind === 'frame').length, 1);
  assert.equal(bad(events).length, 0);
  assert.equal(framer.push(frame.subarray(2)).filter((e) => e.kind === 'frame').length, 1);
});
