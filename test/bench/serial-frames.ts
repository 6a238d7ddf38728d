// CPU cost of parsing serial frames: text lines through the delimiter framer and a named-group regex,
// and CRC-checked binary frames through the binary framer and typed fields — the serial driver's
// per-frame work. Reported as CPU % of one core at 1000 frames/s. `npm run bench` may import
// `benchSerialFrameParsing`; `node dist/test/bench/serial-frames.js` runs it alone.
import { pathToFileURL } from 'node:url';
import { createTextParser } from '../../pkg/drivers/text-values.js';
import { BinaryFramer, TextFramer } from '../../pkg/drivers/serial/framer.js';
import { withChecksum } from '../../pkg/drivers/serial/checksum.js';
import { readField } from '../../pkg/drivers/serial/binary-fields.js';

export interface FrameParsingResult {
  kind: 'text' | 'binary';
  frames: number;
  microsPerFrame: number;
  /** CPU % of one core spent parsing at 1000 frames/s. */
  cpuPercentAt1kPerSecond: number;
}

function measure(kind: 'text' | 'binary', frames: number, chunk: Buffer, handle: (chunk: Buffer) => number): FrameParsingResult {
  let parsed = 0;
  const start = process.cpuUsage();
  while (parsed < frames) parsed += handle(chunk);
  const used = process.cpuUsage(start);
  const micros = (used.user + used.system) / parsed;
  return { kind, frames: parsed, microsPerFrame: micros, cpuPercentAt1kPerSecond: (micros * 1000) / 1e6 * 100 };
}

export function benchSerialFrameParsing(frames = 200_000): FrameParsingResult[] {
  // Devices write a few frames per USB transfer; 8 per chunk is typical of a 1k frames/s stream.
  const text = new TextFramer('\r\n', 65_536);
  const parse = createTextParser({ pattern: 'T=(?<temperature>-?[0-9.]+) H=(?<humidity>[0-9.]+)', scale: 1 });
  const textChunk = Buffer.from('T=21.53 H=40.2\r\n'.repeat(8));
  const textResult = measure('text', frames, textChunk, (chunk) => {
    let count = 0;
    for (const event of text.push(chunk)) if (event.kind === 'frame' && parse(event.bytes.toString('utf8'))) count++;
    return count;
  });

  const binary = new BinaryFramer({ start: Buffer.from('aa02', 'hex'), size: 8, checksum: { type: 'crc16-modbus', from: 0 }, maxLength: 65_536 });
  const frame = withChecksum('crc16-modbus', Buffer.from('aa02ff85c801', 'hex'));
  const binaryChunk = Buffer.concat(new Array(8).fill(frame));
  const binaryResult = measure('binary', frames, binaryChunk, (chunk) => {
    let count = 0;
    for (const event of binary.push(chunk)) {
      if (event.kind !== 'frame') continue;
      readField(event.bytes, 2, 'int16be');
      readField(event.bytes, 4, 'uint16le');
      count++;
    }
    return count;
  });
  return [textResult, binaryResult];
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  for (const result of benchSerialFrameParsing()) {
    console.log(`serial ${result.kind} frames: ${result.microsPerFrame.toFixed(2)} µs/frame, ${result.cpuPercentAt1kPerSecond.toFixed(2)} % of one core at 1000 frames/s`);
  }
}
