// Typed fields at byte offsets inside a binary frame.
export type FieldType =
  | 'int8' | 'uint8'
  | 'int16be' | 'int16le' | 'uint16be' | 'uint16le'
  | 'int32be' | 'int32le' | 'uint32be' | 'uint32le'
  | 'float32be' | 'float32le';

export const FIELD_SIZE: Record<FieldType, number> = {
  int8: 1, uint8: 1,
  int16be: 2, int16le: 2, uint16be: 2, uint16le: 2,
  int32be: 4, int32le: 4, uint32be: 4, uint32le: 4,
  float32be: 4, float32le: 4,
};

export function readField(frame: Buffer, byteOffset: number, type: FieldType): number {
  switch (type) {
    case 'int8': return frame.readInt8(byteOffset);
    case 'uint8': return frame.readUInt8(byteOffset);
    case 'int16be': return frame.readInt16BE(byteOffset);
    case 'int16le': return frame.readInt16LE(byteOffset);
    case 'uint16be': return frame.readUInt16BE(byteOffset);
    case 'uint16le': return frame.readUInt16LE(byteOffset);
    case 'int32be': return frame.readInt32BE(byteOffset);
    case 'int32le': return frame.readInt32LE(byteOffset);
    case 'uint32be': return frame.readUInt32BE(byteOffset);
    case 'uint32le': return frame.readUInt32LE(byteOffset);
    case 'float32be': return frame.readFloatBE(byteOffset);
    case 'float32le': return frame.readFloatLE(byteOffset);
  }
}
