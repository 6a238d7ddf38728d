// Frame checksums found on field devices. Each returns the checksum bytes as they appear on the
// wire, so verifying is a byte comparison with the frame's tail.

export type ChecksumType = 'crc16-modbus' | 'xor8' | 'sum8';

export const CHECKSUM_SIZE: Record<ChecksumType, number> = { 'crc16-modbus': 2, xor8: 1, sum8: 1 };

/** CRC-16/MODBUS (poly 0xA001 reflected, init 0xFFFF), sent low byte first. */
export function crc16Modbus(data: Uint8Array): number {
  let crc = 0xffff;
  for (const byte of data) {
    crc ^= byte;
    for (let bit = 0; bit < 8; bit++) crc = crc & 1 ? (crc >>> 1) ^ 0xa001 : crc >>> 1;
  }
  return crc;
}

export function checksumBytes(type: ChecksumType, data: Uint8Array): Buffer {
  switch (type) {
    case 'crc16-modbus': {
      const crc = crc16Modbus(data);
      return Buffer.from([crc & 0xff, crc >>> 8]);
    }
    case 'xor8': {
      let x = 0;
      for (const byte of data) x ^= byte;
      return Buffer.from([x]);
    }
    case 'sum8': {
      let sum = 0;
      for (const byte of data) sum = (sum + byte) & 0xff;
      return Buffer.from([sum]);
    }
  }
}

/** Appends the checksum of `data[from..]` — what an emulator or a request builder needs. */
export function withChecksum(type: ChecksumType, data: Buffer, from = 0): Buffer {
  return Buffer.concat([data, checksumBytes(type, data.subarray(from))]);
}
