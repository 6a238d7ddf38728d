import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RE2JS } from 're2js';
import { nativeEquivalent } from './pattern-native.js';
import { compilePattern } from './pattern.js';

/** What RE2 finds: the text of every group, or undefined without a match. */
function re2Groups(source: string, text: string): (string | undefined)[] | undefined {
  const compiled = RE2JS.compile(source);
  const matcher = compiled.matcher(text);
  if (!matcher.find()) return undefined;
  return Array.from({ length: compiled.groupCount() + 1 }, (_, i) => matcher.group(i) ?? undefined);
}

function nativeGroups(regex: RegExp, text: string): (string | undefined)[] | undefined {
  const match = regex.exec(text);
  return match ? [...match] : undefined;
}

/** A small deterministic random source, so a failure names a reproducible case. */
function random(seed: number): () => number {
  let state = seed;
  return () => {
    state = (state * 1103515245 + 12345) % 2147483648;
    return state / 2147483648;
  };
}

const pick = <T>(next: () => number, list: readonly T[]): T => list[Math.floor(next() * list.length)];

const ATOMS = ['a', 'T', '=', '-', ' ', '°', '😀', ']', '}', '\\.', '\\-', '\\ ', '\\t', '[0-9]', '[0-9.]', '[^;]', '[a-c]', '[-a]', '[a-]', '[^a-c\\d]', '\\d', '\\D', '\\w', '\\W', '\\s', '\\S', '[\\s\\d]', '.', '[^\\n]', '[😀-😂]'];
const QUANTIFIERS = ['', '', '', '?', '*', '+', '{2}', '{1,3}', '{0,}', '{0}'];
/** Characters that tell RE2's meaning of the atoms above from JavaScript's: line ends, Unicode spaces, astral and lone surrogates. */
const ALPHABET = ['a', 'b', 'c', 'T', '=', '-', '.', ' ', '0', '5', '9', ';', '_', ']', '}', '°', '\n', '\r', '\t', '\v', '\f', '\u00a0', '\u2028', '\u2003', '😀', '😁', '\ud83d', '\ude00'];

function randomPattern(next: () => number): string {
  let source = next() < 0.3 ? '^' : '';
  const items = 1 + Math.floor(next() * 5);
  let open = 0;
  for (let i = 0; i < items; i++) {
    if (next() < 0.25) {
      source += pick(next, ['(', '(?:', `(?<g${i}>`, `(?P<p${i}>`]);
      open++;
    }
    source += pick(next, ATOMS) + pick(next, QUANTIFIERS);
    if (open > 0 && next() < 0.4) {
      source += ')';
      open--;
    }
  }
  source += ')'.repeat(open);
  return next() < 0.3 ? `${source}$` : source;
}

function randomText(next: () => number, length: number): string {
  let text = '';
  for (let i = 0; i < length; i++) text += pick(next, ALPHABET);
  return text;
}

test('a pattern run on V8 finds exactly what RE2 finds: same match, same groups, same positions', () => {
  const next = random(20_260_101);
  let native = 0;
  for (let p = 0; p < 2000; p++) {
    const source = randomPattern(next);
    const regex = nativeEquivalent(source);
    if (!regex) continue;
    native++;
    for (let t = 0; t < 30; t++) {
      const text = randomText(next, Math.floor(next() * 12));
      assert.deepEqual(nativeGroups(regex, text), re2Groups(source, text), `pattern ${JSON.stringify(source)} (V8: ${regex.source}) on ${JSON.stringify(text)}`);
    }
  }
  // The generator must keep exercising the V8 path, not only the refusals.
  assert.ok(native > 200, `only ${native} generated patterns ran on V8`);
});

test('common frame patterns run on V8', () => {
  for (const source of [
    'T=(?<temperature>-?[0-9.]+) H=(?<humidity>[0-9.]+)',
    '^(?<value>[0-9]+)$',
    '(?<value>-?[0-9.]+)',
    '^\\$GPGGA,(?P<time>[0-9.]+),(?<lat>[0-9.]+),[NS]',
    'temp:\\s*(?<value>-?[0-9.]+)',
    '^spiffe://[^/]+/tenant/(?<tenant>[^/]+)/device/(?<device>[^/]+)$',
  ]) {
    assert.ok(nativeEquivalent(source), source);
  }
});

test('patterns whose backtracking could take more than linear time stay on RE2', () => {
  for (const source of [
    '^(a+)+(?<value>[0-9])$', // a repeated group
    '^a*a*a*b$', // a give-back that the next item takes
    '(?<value>[0-9]+)[0-9]', // the same, after a group
    '[0-9]+X', // unanchored: every failed attempt rescans the run of digits
    '(?<value>[0-9.]+)$', // unanchored with `$`: the same
    'a[a-z]*X', // first character also taken later: attempts overlap
    '-?-?-?-?(?<value>[0-9]+)', // too many optional leading characters
    '(?<value>x)|y', // alternation
    '\\bT=(?<value>[0-9]+)', // an assertion in the middle
    '(?i)T=(?<value>[0-9]+)', // flags
    'temp:\\s*(?<value>-?\\d+(?:\\.\\d+)?)', // a repeated group
    'T=(?<value>[0-9]+?)', // lazy
    'T{=(?<value>[0-9]+)', // a brace RE2 reads as a literal
    '[[:digit:]]+',
    '\\pN+',
    '\ud83d=(?<value>[0-9]+)', // a lone surrogate in the source
  ]) {
    assert.equal(nativeEquivalent(source), undefined, source);
  }
});

test('through compilePattern, both engines answer the same for frame-like texts', () => {
  const next = random(7);
  for (const source of ['T=(?<temperature>-?[0-9.]+) H=(?<humidity>[0-9.]+)', '(?<value>-?[0-9.]+)', '^(?<value>[0-9]+)$', 'v=(?<value>\\S+)\\s']) {
    const compiled = compilePattern(source);
    for (let t = 0; t < 500; t++) {
      const text = randomText(next, Math.floor(next() * 20)).replace(/a/g, 'T=').replace(/b/g, ' H=').replace(/c/g, 'v=');
      const groups = compiled.exec(text);
      assert.deepEqual(groups && [...groups], re2Groups(source, text), `${source} on ${JSON.stringify(text)}`);
    }
  }
});
