// Duration and quantity parsing. The schema patterns catch the shape; these give the numbers.

const DURATION_UNITS_MS: Record<string, number> = {
  ns: 1e-6,
  us: 1e-3,
  µs: 1e-3,
  ms: 1,
  s: 1000,
  m: 60_000,
  h: 3_600_000,
};
const DURATION_PART = /([0-9]+(?:\.[0-9]+)?)(ns|us|µs|ms|s|m|h)/gy;

/** Parses a Go-style duration ("1m30s") into milliseconds; throws on anything else. */
export function parseDuration(text: string): number {
  if (typeof text !== 'string' || text.length === 0) throw new Error(`invalid duration ${JSON.stringify(text)}`);
  DURATION_PART.lastIndex = 0;
  let total = 0;
  let consumed = 0;
  for (let match = DURATION_PART.exec(text); match; match = DURATION_PART.exec(text)) {
    total += Number(match[1]) * DURATION_UNITS_MS[match[2]];
    consumed = DURATION_PART.lastIndex;
  }
  if (consumed !== text.length) {
    throw new Error(`invalid duration ${JSON.stringify(text)}: use a number and a unit, like 250ms, 5s, 1m30s`);
  }
  return total;
}

const QUANTITY_SUFFIX: Record<string, number> = {
  '': 1,
  k: 1e3,
  M: 1e6,
  G: 1e9,
  T: 1e12,
  P: 1e15,
  E: 1e18,
  Ki: 2 ** 10,
  Mi: 2 ** 20,
  Gi: 2 ** 30,
  Ti: 2 ** 40,
  Pi: 2 ** 50,
  Ei: 2 ** 60,
};

/** Parses a Kubernetes quantity ("64Mi") into a number of units (bytes for sizes). */
export function parseQuantity(text: string): number {
  const match = /^([0-9]+(?:\.[0-9]+)?)([KMGTPE]i|[kMGTPE])?$/.exec(String(text));
  if (!match) throw new Error(`invalid quantity ${JSON.stringify(text)}: use a number and an optional suffix, like 64Mi or 500k`);
  return Math.floor(Number(match[1]) * QUANTITY_SUFFIX[match[2] ?? '']);
}
