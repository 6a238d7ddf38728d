// How bytes read from a device, a file, a program or a peer may appear in errors, conditions, logs
// and metrics: by their size, and at most a few harmless characters. Whatever a manifest points a
// driver at may be a secret (a key file, /proc/self/environ, a token), and a pattern can select any
// window of it, so content is never quoted: only the file driver, whose paths the operator allowed,
// may add a short preview, and that preview keeps only characters that cannot spell a credential
// of any length.

/** The most characters of untrusted input a message may show. */
export const PREVIEW_MAX_CHARS = 8;
const HARMLESS = /^[A-Za-z0-9 .,:=+-]*/;

/**
 * `12 bytes`, or with `preview` (only for input from an operator-allowed source) `12 bytes,
 * starting "T=21.5"`: at most PREVIEW_MAX_CHARS characters, cut at the first one outside
 * [A-Za-z0-9 .,:=+-].
 */
export function describeUntrusted(input: string | Buffer, options: { preview?: boolean } = {}): string {
  const size = typeof input === 'string' ? Buffer.byteLength(input, 'utf8') : input.length;
  const counted = `${size} byte${size === 1 ? '' : 's'}`;
  if (!options.preview) return counted;
  // A UTF-8 character takes at most 4 bytes: that many bytes hold the first PREVIEW_MAX_CHARS of them.
  const text = typeof input === 'string' ? input : input.subarray(0, PREVIEW_MAX_CHARS * 4).toString('utf8');
  const shown = HARMLESS.exec(text.slice(0, PREVIEW_MAX_CHARS))![0];
  return shown === '' ? counted : `${counted}, starting "${shown}"`;
}
