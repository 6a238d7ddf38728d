// The one way to compile and run a regular expression written by a manifest author (serial frame,
// file and command `pattern`, Certificate `identity.uriPattern` / `dnsPattern`). Such patterns run
// on RE2 semantics (re2js: pure JavaScript, so it works on every architecture the agent ships for),
// never on V8's backtracking engine: `^(a+)+(?<value>[0-9])$` against 37 characters would hold the
// event loop for minutes there. RE2 matches in time linear in the input, but its constant grows
// with the size of the compiled program and the number of groups it tracks, so every match also has
// a budget: a pattern is refused when it is too large to scan a useful amount of text, and a text
// longer than a pattern may scan is reported instead of matched. A pattern whose syntax proves that
// V8's own engine gives the same matches in linear time also runs there (see pattern-native.ts):
// RE2 still accepts it and sets its budget.
import type { RE2JS, RE2JSSyntaxException } from 're2js';
import { SensorletError } from './errors.js';
import { lazyRequire } from './lazy-require.js';
import { nativeEquivalent } from './pattern-native.js';

/** Loaded with the first pattern: an agent whose manifests have none does not pay its ~3 MB of RSS. */
const re2js = lazyRequire<typeof import('re2js')>('re2js');

/** Longer sources are not compiled at all (compiling is linear in the source, but not free). */
export const MAX_PATTERN_SOURCE = 4096;
/** No match scans more characters than this, however cheap the pattern. */
export const MAX_PATTERN_INPUT = 65_536;
/**
 * Work allowed for one match, in program instructions × tracked positions × input characters.
 * Measured with hostile patterns and inputs at this budget, re2js takes under ~30 ms on one core
 * of the development machine; ordinary patterns (20-50 instructions) may scan the full
 * MAX_PATTERN_INPUT.
 */
const MATCH_BUDGET = 8_000_000;
/** A pattern that could not scan even this many characters within MATCH_BUDGET is refused. */
const MIN_SCANNABLE_INPUT = 1024;

const UNANCHORED = 0;

/** The part of re2js's compiled program used here (RE2JS.re2(); typed loosely by re2js itself). */
interface CompiledProgram {
  numberOfInstructions(): number;
  /** [matched, [start0, end0, start1, end1, ...]] with -1 for a group that took no part. */
  matchWithGroup(input: string, start: number, end: number, anchor: number, ngroup: number): [boolean, number[] | null];
}

export interface UserPattern {
  readonly source: string;
  /** Capture groups, not counting the whole match (index 0). */
  readonly groupCount: number;
  /** Group name → group index (1-based), for named groups only. */
  readonly groupIndex: Readonly<Record<string, number>>;
  /** The longest text (in UTF-16 code units) one match may scan. */
  readonly maxInputLength: number;
  /**
   * Searches `text` (unanchored, leftmost-first like RegExp.exec): the text of each group (index
   * 0: the whole match; undefined for a group that took no part), or undefined when it does not
   * match. Throws PatternInputTooLong when `text` is longer than `maxInputLength`.
   */
  exec(text: string): readonly (string | undefined)[] | undefined;
}

/** RE2's descriptions of what JavaScript (backtracking) syntax accepts but RE2 does not. */
const NOT_LINEAR = ['invalid or unsupported Perl syntax', 'invalid escape sequence', 'invalid named capture'];

/** Compiles a user pattern; throws InvalidPattern (terminal: only a new spec fixes it). */
export function compilePattern(source: string): UserPattern {
  if (source.length > MAX_PATTERN_SOURCE) {
    throw invalid(`pattern is ${source.length} characters long; at most ${MAX_PATTERN_SOURCE} are allowed`);
  }
  const { RE2JS: engine, RE2JSSyntaxException: SyntaxException } = re2js();
  let compiled: RE2JS;
  try {
    compiled = engine.compile(source);
  } catch (error) {
    const detail = error instanceof SyntaxException ? syntaxDetail(source, error) : (error as Error).message;
    throw invalid(`invalid regular expression ${JSON.stringify(source)}: ${detail}`);
  }
  const program = compiled.re2() as unknown as CompiledProgram;
  const groupCount = compiled.groupCount();
  const ngroup = groupCount + 1;
  // Each of the program's instructions may hold a thread that copies 2 × ngroup positions per step.
  const costPerCharacter = program.numberOfInstructions() * (ngroup + 1);
  const maxInputLength = Math.min(MAX_PATTERN_INPUT, Math.floor(MATCH_BUDGET / costPerCharacter));
  if (maxInputLength < MIN_SCANNABLE_INPUT) {
    throw invalid(
      `pattern is too complex for its matching budget (${program.numberOfInstructions()} instructions, ${groupCount} groups); ` +
        'use fewer or smaller repetitions, alternatives and groups',
    );
  }
  const groupIndex: Record<string, number> = Object.assign(Object.create(null) as Record<string, number>, compiled.namedGroups());
  // The V8 form must number its groups as RE2 does (`x|` matches the empty text with every group unset).
  const candidate = nativeEquivalent(source);
  const native = candidate && new RegExp(`${candidate.source}|`, candidate.flags).exec('')!.length === ngroup ? candidate : undefined;
  const tooLong = (text: string) =>
    new SensorletError('PatternInputTooLong', `text of ${text.length} characters is longer than the ${maxInputLength} this pattern may scan`);
  return {
    source,
    groupCount,
    groupIndex,
    maxInputLength,
    exec: native
      ? (text) => {
          if (text.length > maxInputLength) throw tooLong(text);
          return native.exec(text) ?? undefined;
        }
      : (text) => {
          if (text.length > maxInputLength) throw tooLong(text);
          const [matched, positions] = program.matchWithGroup(text, 0, text.length, UNANCHORED, ngroup);
          if (!matched || !positions) return undefined;
          const groups: (string | undefined)[] = new Array(ngroup);
          for (let i = 0; i < ngroup; i++) groups[i] = positions[2 * i] < 0 ? undefined : text.slice(positions[2 * i], positions[2 * i + 1]);
          return groups;
        },
  };
}

/** Why `source` cannot be used as a user pattern, or undefined when it can. */
export function patternProblem(source: string): string | undefined {
  try {
    compilePattern(source);
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

function syntaxDetail(source: string, error: RE2JSSyntaxException): string {
  const description = error.getDescription();
  const at = error.getPattern();
  let detail = at && at !== source ? `${description} ${JSON.stringify(at)}` : description;
  if (NOT_LINEAR.includes(description)) {
    detail += '; linear-time (RE2) syntax is required: no lookahead, lookbehind or backreferences';
    if (at?.startsWith('\\u')) detail += ', and \\x{00B0} instead of \\u00B0';
  }
  return detail;
}

function invalid(message: string): SensorletError {
  return new SensorletError('InvalidPattern', message, { terminal: true });
}
