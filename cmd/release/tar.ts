// A deterministic tar writer for the release artifacts (image layers, the OCI archive, the tarball).
//
// Why our own and not GNU tar: every entry's owner, mode and time is decided here, per entry (the
// image's state dir belongs to uid 65532 while everything else is root's, whoever runs the build),
// and the bytes do not depend on the build machine's tar version, umask, file order or clock. Entries
// are written in the order given (callers sort them), with mtime SOURCE_DATE_EPOCH, numeric ids and
// empty user/group names. Format: POSIX ustar, with a PAX header for a path that does not fit.
import { closeSync, createReadStream, createWriteStream, openSync, readSync, writeSync, statSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { createGzip, constants as zlibConstants } from 'node:zlib';
import { pipeline } from 'node:stream/promises';
import { Transform } from 'node:stream';

export type TarEntry =
  | { type: 'dir'; path: string; mode: number; uid?: number; gid?: number }
  | { type: 'file'; path: string; mode: number; source: string; uid?: number; gid?: number }
  | { type: 'data'; path: string; mode: number; data: Buffer; uid?: number; gid?: number }
  | { type: 'symlink'; path: string; target: string };

const BLOCK = 512;

function octal(value: number, width: number): string {
  return value.toString(8).padStart(width - 1, '0') + '\0';
}

function pax(records: Record<string, string>): Buffer {
  let text = '';
  for (const [key, value] of Object.entries(records)) {
    const body = ` ${key}=${value}\n`;
    // The length prefix counts itself.
    let length = Buffer.byteLength(body) + 1;
    while (String(length).length + Buffer.byteLength(body) !== length) length = String(length).length + Buffer.byteLength(body);
    text += `${length}${body}`;
  }
  return Buffer.from(text, 'utf8');
}

/** Splits a path into ustar's prefix (≤155) and name (≤100), or undefined when it does not fit. */
function splitUstar(name: string): { prefix: string; name: string } | undefined {
  if (Buffer.byteLength(name) <= 100) return { prefix: '', name };
  for (let cut = name.indexOf('/'); cut !== -1; cut = name.indexOf('/', cut + 1)) {
    const prefix = name.slice(0, cut);
    const rest = name.slice(cut + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100 && rest.length > 0) return { prefix, name: rest };
  }
  return undefined;
}

function header(fields: { name: string; mode: number; uid: number; gid: number; size: number; mtime: number; typeflag: string; linkname?: string }): Buffer {
  const block = Buffer.alloc(BLOCK);
  const split = splitUstar(fields.name) ?? { prefix: '', name: fields.name.slice(0, 100) };
  block.write(split.name, 0, 100, 'utf8');
  block.write(octal(fields.mode & 0o7777, 8), 100, 'ascii');
  block.write(octal(fields.uid, 8), 108, 'ascii');
  block.write(octal(fields.gid, 8), 116, 'ascii');
  block.write(octal(fields.size, 12), 124, 'ascii');
  block.write(octal(fields.mtime, 12), 136, 'ascii');
  block.write('        ', 148, 'ascii');
  block.write(fields.typeflag, 156, 'ascii');
  if (fields.linkname) block.write(fields.linkname, 157, 100, 'utf8');
  block.write('ustar\u000000', 257, 'ascii');
  block.write(split.prefix, 345, 155, 'utf8');
  let sum = 0;
  for (const byte of block) sum += byte;
  block.write(octal(sum, 7) + ' ', 148, 'ascii');
  return block;
}

/** Writes the entries as one tar file; returns its sha256 (the layer's diff_id) and size. */
export function writeTar(file: string, entries: TarEntry[], mtime: number): { sha256: string; size: number } {
  const fd = openSync(file, 'w');
  const hash = createHash('sha256');
  let size = 0;
  const put = (buffer: Buffer) => {
    writeSync(fd, buffer);
    hash.update(buffer);
    size += buffer.length;
  };
  const padding = (length: number) => {
    const rest = length % BLOCK;
    if (rest) put(Buffer.alloc(BLOCK - rest));
  };
  try {
    for (const entry of entries) {
      const name = entry.type === 'dir' ? `${entry.path.replace(/\/$/, '')}/` : entry.path;
      const linkname = entry.type === 'symlink' ? entry.target : undefined;
      const size = entry.type === 'file' ? statSync(entry.source).size : entry.type === 'data' ? entry.data.length : 0;
      const needsPax = !splitUstar(name) || (linkname !== undefined && Buffer.byteLength(linkname) > 100);
      if (needsPax) {
        const records: Record<string, string> = { path: name };
        if (linkname !== undefined) records.linkpath = linkname;
        const body = pax(records);
        put(header({ name: 'PaxHeader', mode: 0o644, uid: 0, gid: 0, size: body.length, mtime, typeflag: 'x' }));
        put(body);
        padding(body.length);
      }
      const owner = entry.type === 'symlink' ? { uid: 0, gid: 0 } : { uid: entry.uid ?? 0, gid: entry.gid ?? 0 };
      const mode = entry.type === 'symlink' ? 0o777 : entry.mode;
      const typeflag = entry.type === 'dir' ? '5' : entry.type === 'symlink' ? '2' : '0';
      put(header({ name, mode, ...owner, size, mtime, typeflag, linkname }));
      if (entry.type === 'data') {
        put(entry.data);
        padding(entry.data.length);
      } else if (entry.type === 'file') {
        const source = openSync(entry.source, 'r');
        const chunk = Buffer.alloc(1 << 20);
        let copied = 0;
        try {
          for (let read; (read = readSync(source, chunk, 0, chunk.length, null)) > 0; ) {
            put(chunk.subarray(0, read));
            copied += read;
          }
        } finally {
          closeSync(source);
        }
        if (copied !== size) throw new Error(`${entry.source} changed while it was archived`);
        padding(size);
      }
    }
    put(Buffer.alloc(BLOCK * 2));
  } finally {
    closeSync(fd);
  }
  return { sha256: hash.digest('hex'), size };
}

/** gzip without a name or time in the header (the same input and level give the same bytes). */
export async function gzipFile(source: string, target: string, level = 9): Promise<{ sha256: string; size: number }> {
  const hash = createHash('sha256');
  let size = 0;
  const measure = new Transform({
    transform(chunk: Buffer, _encoding, done) {
      hash.update(chunk);
      size += chunk.length;
      done(null, chunk);
    },
  });
  await pipeline(createReadStream(source), createGzip({ level, memLevel: 9, strategy: zlibConstants.Z_DEFAULT_STRATEGY }), measure, createWriteStream(target));
  return { sha256: hash.digest('hex'), size };
}
