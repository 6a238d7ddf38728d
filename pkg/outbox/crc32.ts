// CRC-32 (IEEE 802.3, the zlib/PNG polynomial) for chunk framing. node:zlib has crc32 only from
// Node 20.15 / 22.2, and the agent supports every Node 20, so it is used when present (about 4 GB/s)
// with a slicing-by-8 table implementation as the fallback (about 400 MB/s, still well above the
// outbox's JSON encode rate).
import * as zlib from 'node:zlib';

// One flat Int32Array of 8 tables: entries above 2^31 in a Uint32Array would load as doubles, and
// an array of tables adds a lookup per byte; both measured at less than half the speed.
const TABLE = buildTable();

function buildTable(): Int32Array {
  const table = new Int32Array(256 * 8);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    table[n] = c;
  }
  for (let n = 0; n < 256; n++) {
    let c = table[n];
    for (let t = 1; t < 8; t++) {
      c = table[c & 0xff] ^ (c >>> 8);
      table[t * 256 + n] = c;
    }
  }
  return table;
}

const nativeCrc32 = (zlib as unknown as { crc32?: (data: Uint8Array) => number }).crc32;

export function crc32(data: Uint8Array, start = 0, end = data.length): number {
  if (nativeCrc32) return nativeCrc32(start === 0 && end === data.length ? data : data.subarray(start, end)) >>> 0;
  return crc32Table(data, start, end);
}

/** The portable implementation; exported so tests check it against the native one. */
export function crc32Table(data: Uint8Array, start = 0, end = data.length): number {
  const t = TABLE;
  let crc = -1; // 0xffffffff as int32
  let i = start;
  for (; i + 8 <= end; i += 8) {
    const a = crc ^ (data[i] | (data[i + 1] << 8) | (data[i + 2] << 16) | (data[i + 3] << 24));
    crc =
      t[1792 + (a & 0xff)] ^
      t[1536 + ((a >>> 8) & 0xff)] ^
      t[1280 + ((a >>> 16) & 0xff)] ^
      t[1024 + (a >>> 24)] ^
      t[768 + data[i + 4]] ^
      t[512 + data[i + 5]] ^
      t[256 + data[i + 6]] ^
      t[data[i + 7]];
  }
  for (; i < end; i++) crc = t[(crc ^ data[i]) & 0xff] ^ (crc >>> 8);
  return ~crc >>> 0;
}
