// Which user patterns may also run on V8's own engine, and their V8 form. RE2 (re2js) stays the
// engine that accepts a pattern and defines what it means; V8's compiled matcher is an order of
// magnitude faster per match (serial frames are matched hundreds of times a second), so a pattern
// gets it when two things can be shown from its syntax alone:
//
// 1. Same meaning. The pattern is a sequence of single-character items (a literal, `.`, a class,
//    `\d \w \s` and their negations, each with an optional greedy quantifier) inside unquantified
//    groups, with no alternation and `^` / `$` only at its very ends. Every item is written out for
//    V8 as the exact set of code points RE2 gives it (`\s` is [\t\n\f\r ] in RE2 but much more in
//    JavaScript, `.` excludes only \n in RE2), with the `u` flag so both step over whole code
//    points, and groups keep their numbers. Without alternation or repeated groups, RE2's
//    leftmost-first match is exactly the one a backtracking engine finds first.
//
// 2. Linear time. Backtracking costs more than a scan only when a character given back by a greedy
//    item can be taken by what follows it. So each item whose count may vary must take no
//    character that any item up to the next mandatory one can take ("deterministic"): then a
//    give-back fails before consuming anything, and one match attempt costs O(items × characters
//    it consumed). An unanchored search makes an attempt at every position, so the characters
//    consumed by failed attempts must not overlap by more than a bounded amount: the pattern is
//    anchored with `^`, or its first item is exactly one character of a set no later item can
//    take (an attempt then stops at the next start), or it cannot fail once its first mandatory
//    item (a single one, behind at most MAX_OPTIONAL_LEAD optional single characters) has
//    matched (no `$`, nothing mandatory after it). Total work is then O(items × text length),
//    which the caller's matching budget (instructions × characters) already bounds.
//
// Anything else, or anything this parser does not know, runs on RE2 alone.

/** One item: a set of code points as sorted, disjoint inclusive [from, to] pairs, taken min..max times. */
interface Item {
  ranges: number[];
  min: number;
  max: number;
}

interface Parsed {
  anchoredStart: boolean;
  anchoredEnd: boolean;
  items: Item[];
  /** The V8 source (used with the `u` flag). */
  source: string;
}

const MAX_CODE_POINT = 0x10ffff;
/** Optional single characters allowed before the first mandatory item of a pattern that cannot fail after it. */
const MAX_OPTIONAL_LEAD = 3;

const DIGIT = [0x30, 0x39];
const WORD = [0x30, 0x39, 0x41, 0x5a, 0x5f, 0x5f, 0x61, 0x7a];
const SPACE = [0x09, 0x0a, 0x0c, 0x0d, 0x20, 0x20];
const NOT_NEWLINE = [0, 0x09, 0x0b, MAX_CODE_POINT];
const CONTROL_ESCAPES: Record<string, number> = { t: 0x09, n: 0x0a, v: 0x0b, f: 0x0c, r: 0x0d };

/** Thrown inside the parser for syntax it does not handle; the pattern then runs on RE2 alone. */
class Unsupported extends Error {}

/**
 * A V8 RegExp with the same matches and groups as RE2 gives `source` and a linear bound on its
 * work, or undefined. `source` must already have been accepted by RE2.
 */
export function nativeEquivalent(source: string): RegExp | undefined {
  let parsed: Parsed;
  try {
    parsed = parse(source);
  } catch (error) {
    if (error instanceof Unsupported) return undefined;
    throw error;
  }
  if (!deterministic(parsed.items) || !boundedRestarts(parsed)) return undefined;
  try {
    return new RegExp(parsed.source, 'u');
  } catch {
    return undefined;
  }
}

function parse(source: string): Parsed {
  const chars = Array.from(source); // code points, as RE2 reads the source
  const items: Item[] = [];
  let out = '';
  let at = 0;
  let depth = 0;
  let anchoredStart = false;
  let anchoredEnd = false;
  if (chars[0] === '^') {
    anchoredStart = true;
    out += '^';
    at = 1;
  }
  while (at < chars.length) {
    const c = chars[at];
    if (c === '$') {
      if (at !== chars.length - 1 || depth !== 0) throw new Unsupported();
      anchoredEnd = true;
      out += '$';
      at++;
      continue;
    }
    if (c === '(') {
      at++;
      if (chars[at] !== '?') {
        out += '(';
      } else if (chars[at + 1] === ':') {
        out += '(?:';
        at += 2;
      } else {
        // (?<name>...) or (?P<name>...): a numbered group for V8; names come from RE2.
        at += chars[at + 1] === 'P' ? 2 : 1;
        if (chars[at] !== '<') throw new Unsupported();
        at++;
        while (at < chars.length && /^[A-Za-z0-9_]$/.test(chars[at])) at++;
        if (chars[at] !== '>') throw new Unsupported();
        at++;
        out += '(';
      }
      depth++;
      continue;
    }
    if (c === ')') {
      if (depth === 0) throw new Unsupported();
      depth--;
      out += ')';
      at++;
      // A repeated group can capture more than once, where RE2 and V8 differ, and is not a single item.
      if (at < chars.length && '*+?{'.includes(chars[at])) throw new Unsupported();
      continue;
    }
    let ranges: number[];
    if (c === '[') {
      [ranges, at] = parseClass(chars, at + 1);
    } else if (c === '.') {
      ranges = NOT_NEWLINE;
      at++;
    } else if (c === '\\') {
      const escaped = escapeSet(chars[at + 1]);
      if (!escaped) throw new Unsupported();
      ranges = escaped;
      at += 2;
    } else if ('|*+?{^$'.includes(c)) {
      throw new Unsupported();
    } else {
      ranges = literal(c);
      at++;
    }
    let min = 1;
    let max = 1;
    const q = chars[at];
    if (q === '*' || q === '+' || q === '?') {
      min = q === '+' ? 1 : 0;
      max = q === '?' ? 1 : Infinity;
      at++;
    } else if (q === '{') {
      const close = chars.indexOf('}', at);
      const counts = close < 0 ? null : /^\{([0-9]+)(,([0-9]*))?\}$/.exec(chars.slice(at, close + 1).join(''));
      if (!counts) throw new Unsupported(); // RE2 reads it as a literal brace; V8 (with u) refuses it
      min = Number(counts[1]);
      max = counts[2] === undefined ? min : counts[3] === '' ? Infinity : Number(counts[3]);
      at = close + 1;
    }
    // Lazy and possessive forms, and anything stacked on a quantifier.
    if (at < chars.length && '*+?{'.includes(chars[at])) throw new Unsupported();
    if (max < min) throw new Unsupported();
    items.push({ ranges, min, max });
    out += classSource(ranges) + (min === 1 && max === 1 ? '' : `{${min},${max === Infinity ? '' : max}}`);
  }
  if (depth !== 0) throw new Unsupported();
  return { anchoredStart, anchoredEnd, items, source: out };
}

/** `[...]` from just after the `[`: its code point set and the index after its `]`. */
function parseClass(chars: string[], at: number): [number[], number] {
  let negated = false;
  if (chars[at] === '^') {
    negated = true;
    at++;
  }
  // RE2 reads a `]` right after `[` or `[^` as a literal; keep it simple and leave that to RE2.
  if (chars[at] === ']') throw new Unsupported();
  let ranges: number[] = [];
  for (;;) {
    const c = chars[at];
    if (c === undefined || c === '[') throw new Unsupported(); // `[:alpha:]` and friends
    if (c === ']') {
      at++;
      break;
    }
    const [low, lowSet, next] = classAtom(chars, at);
    at = next;
    if (lowSet) {
      ranges = union(ranges, lowSet);
      continue;
    }
    if (chars[at] === '-' && chars[at + 1] !== ']' && chars[at + 1] !== undefined) {
      const [high, highSet, afterHigh] = classAtom(chars, at + 1);
      if (highSet || high < low) throw new Unsupported();
      ranges = union(ranges, [low, high]);
      at = afterHigh;
    } else {
      ranges = union(ranges, [low, low]);
    }
  }
  return [negated ? complement(ranges) : ranges, at];
}

/** One class member: a code point, or a set (`\d`...), and the index after it. */
function classAtom(chars: string[], at: number): [number, number[] | undefined, number] {
  const c = chars[at];
  if (c !== '\\') return [literal(c)[0], undefined, at + 1];
  const escaped = escapeSet(chars[at + 1]);
  if (!escaped) throw new Unsupported();
  if (escaped.length === 2 && escaped[0] === escaped[1]) return [escaped[0], undefined, at + 2];
  return [0, escaped, at + 2];
}

/** A character of the source as a one-point set; a lone surrogate in the source is left to RE2. */
function literal(c: string): number[] {
  const point = c.codePointAt(0)!;
  if (point >= 0xd800 && point <= 0xdfff) throw new Unsupported();
  return [point, point];
}

/** What `\c` stands for in RE2, for the escapes handled here. */
function escapeSet(c: string | undefined): number[] | undefined {
  if (c === undefined) return undefined;
  switch (c) {
    case 'd': return DIGIT;
    case 'D': return complement(DIGIT);
    case 'w': return WORD;
    case 'W': return complement(WORD);
    case 's': return SPACE;
    case 'S': return complement(SPACE);
  }
  if (Object.hasOwn(CONTROL_ESCAPES, c)) return [CONTROL_ESCAPES[c], CONTROL_ESCAPES[c]];
  // RE2: an escaped ASCII punctuation character (or space) is that character.
  if (/^[!-/:-@[-`{-~ ]$/.test(c)) return [c.charCodeAt(0), c.charCodeAt(0)];
  return undefined; // \b, \A, \z, \x, \p, \Q, octal...
}

function classSource(ranges: number[]): string {
  let text = '[';
  for (let i = 0; i < ranges.length; i += 2) {
    text += ranges[i] === ranges[i + 1] ? hex(ranges[i]) : `${hex(ranges[i])}-${hex(ranges[i + 1])}`;
  }
  return `${text}]`;
}

const hex = (point: number) => `\\u{${point.toString(16)}}`;

/** Sorted, merged union of two range lists. */
function union(a: number[], b: number[]): number[] {
  const pairs: [number, number][] = [];
  for (const list of [a, b]) for (let i = 0; i < list.length; i += 2) pairs.push([list[i], list[i + 1]]);
  pairs.sort((x, y) => x[0] - y[0]);
  const merged: number[] = [];
  for (const [from, to] of pairs) {
    const last = merged.length - 1;
    if (merged.length > 0 && from <= merged[last] + 1) merged[last] = Math.max(merged[last], to);
    else merged.push(from, to);
  }
  return merged;
}

function complement(ranges: number[]): number[] {
  const result: number[] = [];
  let next = 0;
  for (let i = 0; i < ranges.length; i += 2) {
    if (ranges[i] > next) result.push(next, ranges[i] - 1);
    next = ranges[i + 1] + 1;
  }
  if (next <= MAX_CODE_POINT) result.push(next, MAX_CODE_POINT);
  return result;
}

function intersects(a: number[], b: number[]): boolean {
  let i = 0;
  let j = 0;
  while (i < a.length && j < b.length) {
    if (a[i + 1] < b[j]) i += 2;
    else if (b[j + 1] < a[i]) j += 2;
    else return true;
  }
  return false;
}

/** No character a variable-count item takes can be taken by the items that may follow it directly. */
function deterministic(items: Item[]): boolean {
  for (let i = 0; i < items.length; i++) {
    if (items[i].min === items[i].max) continue;
    for (let j = i + 1; j < items.length; j++) {
      if (intersects(items[i].ranges, items[j].ranges)) return false;
      if (items[j].min >= 1) break;
    }
  }
  return true;
}

/** Failed attempts of an unanchored search consume overlapping text only a bounded number of times. */
function boundedRestarts({ anchoredStart, anchoredEnd, items }: Parsed): boolean {
  if (anchoredStart) return true;
  if (items.length === 0) return false;
  const [first, ...rest] = items;
  if (first.min === 1 && first.max === 1 && rest.every((item) => !intersects(first.ranges, item.ranges))) return true;
  if (anchoredEnd) return false;
  const mandatory = items.findIndex((item) => item.min >= 1);
  return (
    mandatory >= 0 &&
    mandatory <= MAX_OPTIONAL_LEAD &&
    items[mandatory].min === 1 &&
    items.slice(0, mandatory).every((item) => item.max <= 1) &&
    items.slice(mandatory + 1).every((item) => item.min === 0)
  );
}
