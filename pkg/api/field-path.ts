// Field paths as users read them (`spec.driver.simulated.period`, `spec.selector.matchExpressions[0].key`,
// `metadata.labels["sensorlet.io/site"]`), and finding the manifest line such a path points at.

export type PathSegment = string | number;

const PLAIN_KEY = /^[A-Za-z_$][A-Za-z0-9_$-]*$/;

export function joinPath(segments: readonly PathSegment[]): string {
  let out = '';
  for (const segment of segments) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else if (PLAIN_KEY.test(segment)) out += out === '' ? segment : `.${segment}`;
    else out += `[${JSON.stringify(segment)}]`;
  }
  return out;
}

/** Inverse of joinPath. */
export function splitPath(path: string): PathSegment[] {
  const segments: PathSegment[] = [];
  const token = /([A-Za-z_$][A-Za-z0-9_$-]*)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]|\./y;
  while (token.lastIndex < path.length) {
    const match = token.exec(path);
    if (!match) break; // not a path joinPath would write: keep what was understood
    if (match[1] !== undefined) segments.push(match[1]);
    else if (match[2] !== undefined) segments.push(Number(match[2]));
    else if (match[3] !== undefined) segments.push(JSON.parse(match[3]) as string);
  }
  return segments;
}

/** A JSON pointer (ajv's instancePath, `/spec/driver/0`) as path segments. */
export function pointerSegments(pointer: string): PathSegment[] {
  if (pointer === '') return [];
  return pointer
    .slice(1)
    .split('/')
    .map((part) => part.replace(/~1/g, '/').replace(/~0/g, '~'))
    .map((part) => (/^(0|[1-9][0-9]*)$/.test(part) ? Number(part) : part));
}

interface Line {
  number: number;
  text: string;
}

/** Column of the first content character, or -1 for lines that hold no YAML content. */
function contentColumn(text: string): number {
  const column = text.search(/\S/);
  if (column < 0 || text[column] === '#') return -1;
  if (/^(---|\.\.\.)(\s|$)/.test(text)) return -1;
  return column;
}

const KEY_AT = /^(?:"((?:[^"\\]|\\.)*)"|'((?:[^']|'')*)'|([^\s"'#:][^:#]*?))\s*:(?:\s|$)/;

function keyAt(text: string, column: number): string | undefined {
  const match = KEY_AT.exec(text.slice(column));
  if (!match) return undefined;
  if (match[1] !== undefined) return JSON.parse(`"${match[1]}"`) as string;
  if (match[2] !== undefined) return match[2].replace(/''/g, "'");
  return match[3];
}

/** Index of the first line after `start` that belongs to the parent again (column <= `column`). */
function endOfBlock(lines: Line[], start: number, column: number, allowSequenceAtColumn: boolean): number {
  for (let i = start + 1; i < lines.length; i++) {
    const c = contentColumn(lines[i].text);
    if (c < 0) continue;
    // `key:\n- item` puts a block sequence at the key's own column; it still belongs to the key.
    if (c === column && allowSequenceAtColumn && lines[i].text[c] === '-') continue;
    if (c <= column) return i;
  }
  return lines.length;
}

/**
 * The 1-based line of the field at `path` in a block-style YAML (or pretty-printed JSON) document,
 * following keys by indentation. Returns the deepest line it could follow, so a missing field points
 * at its parent; undefined when not even the first key is found (e.g. flow style).
 */
export function locateFieldLine(documentLines: readonly string[], firstLine: number, path: string): number | undefined {
  let scope: Line[] = documentLines.map((text, index) => ({ number: firstLine + index, text }));
  let found: number | undefined;
  for (const segment of splitPath(path)) {
    const firstContent = scope.find((line) => contentColumn(line.text) >= 0);
    if (!firstContent) break;
    const column = contentColumn(firstContent.text);
    if (typeof segment === 'number') {
      const items = scope.flatMap((line, index) => (contentColumn(line.text) === column && line.text[column] === '-' ? [index] : []));
      const start = items[segment];
      if (start === undefined) break;
      const end = endOfBlock(scope, start, column, false);
      const first = scope[start];
      // Blank the dash so the item's first key lines up with the keys below it.
      scope = [{ number: first.number, text: `${first.text.slice(0, column)} ${first.text.slice(column + 1)}` }, ...scope.slice(start + 1, end)];
      found = first.number;
    } else {
      const index = scope.findIndex((line) => contentColumn(line.text) === column && keyAt(line.text, column) === segment);
      if (index < 0) break;
      found = scope[index].number;
      const end = endOfBlock(scope, index, column, true);
      scope = scope.slice(index + 1, end);
    }
  }
  return found;
}
